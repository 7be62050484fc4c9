"""What to explain when a model's output is not one score per class.

Attribution, LRP and sensitivity explain one score per sample: ``model(x)[i, target]``.
Classifiers give such scores directly. These small wrappers turn other models into
ones that do, without touching them (they hold the model as a child module and add
no parameters, hooks or state):

- :class:`OutputPart` picks one part of a tuple or dict output, e.g. a VAE encoder's
  mean, so each latent unit becomes a target.
- :class:`ReconstructionError` scores an autoencoder by how badly it reconstructs
  its input, one score per sample (target 0).

A GAN's discriminator already gives one score per sample (its "real" logit).
"""

from __future__ import annotations

from collections.abc import Hashable

import torch
from torch import nn

from .errors import InputError


class OutputPart(nn.Module):
    """``model(x)[part]`` as (batch, units): e.g. ``OutputPart(vae.encoder, 0)`` is the mean of
    a VAE's latent code, and target ``k`` explains latent unit ``k``."""

    def __init__(self, model: nn.Module, part: Hashable):
        super().__init__()
        self.model, self.part = model, part

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        try:
            chosen = out[self.part]
        except (IndexError, KeyError, TypeError):
            have = list(out.keys()) if isinstance(out, dict) else (
                f"{len(out)} parts" if isinstance(out, (tuple, list)) else type(out).__name__)
            raise InputError(f"the model's output has no part {self.part!r} (it has {have})") from None
        if not isinstance(chosen, torch.Tensor):
            raise InputError(f"part {self.part!r} of the model's output is {type(chosen).__name__}; "
                             "expected a tensor")
        return chosen.flatten(1) if chosen.ndim > 2 else chosen

    def extra_repr(self) -> str:
        return f"part={self.part!r}"


class ReconstructionError(nn.Module):
    """Per-sample mean squared error between ``model(x)`` and ``x``, shaped (batch, 1):
    target 0 explains which inputs make the reconstruction worse."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(f"ReconstructionError needs a model whose output is shaped like its "
                             f"input {tuple(x.shape)}; got {got}")
        return ((out - x) ** 2).flatten(1).mean(1, keepdim=True)


__all__ = ["OutputPart", "ReconstructionError"]
