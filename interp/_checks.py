"""Input checks shared by every public entry point: finite values, and a model that
refuses an input turned into an InputError that shows what was given."""

from __future__ import annotations

import torch
from torch import nn

from .errors import InputError


def check_finite(x: torch.Tensor, where: str) -> None:
    """InputError if a floating tensor holds NaN or infinity."""
    # the sum is finite whenever every value is (bar overflow, then the exact check decides)
    if x.is_floating_point() and not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise InputError(f"{where} holds {bad} NaN or infinite values; expected finite inputs")


def run_model(model: nn.Module, x: torch.Tensor, what: str = "input"):
    """``model(x)``; a model that refuses ``x`` (wrong shape, dtype, device) raises an
    InputError naming the shape and dtype given."""
    try:
        return model(x)
    except (RuntimeError, TypeError, IndexError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise InputError(f"the model failed on an {what} of shape {tuple(x.shape)} and dtype "
                         f"{str(x.dtype).replace('torch.', '')} ({type(exc).__name__}: {first}); "
                         "expected a batch the model accepts") from exc
