"""Input checks shared by every public entry point: finite values, a model that
refuses an input turned into an InputError that shows what was given, and the one
target helper (an int, one int per sample, or ``"predicted"``) of every analysis that
explains a score."""

from __future__ import annotations

import torch
from torch import nn

from .errors import InputError, TargetError


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
                         f"expected {expected_input(model)}") from exc


def expected_input(model: nn.Module) -> str:
    """What the model's first layer takes, in words, for error messages."""
    for m in model.modules():
        if next(m.children(), None) is not None:
            continue
        p = next(m.parameters(), None)
        dtype = str(p.dtype).replace("torch.", "") if p is not None else "float32"
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
            return f"integer token ids in [0, {m.num_embeddings - 1}], shaped (batch, tokens)"
        if isinstance(m, nn.Linear):
            return f"{dtype} inputs whose last dimension is {m.in_features} (its first layer is {m})"
        if isinstance(m, nn.modules.conv._ConvNd):
            dims = len(m.kernel_size)
            where = ", ".join(["H", "W", "D"][:dims]) if dims > 1 else "L"
            return f"{dtype} inputs shaped (batch, {m.in_channels}, {where}) (its first layer is {m})"
        if isinstance(m, nn.RNNBase):
            return f"{dtype} sequences with {m.input_size} features per step (its first layer is {m})"
    return "a batch the model accepts"


def check_batch(model: nn.Module, x, verb: str) -> None:
    """InputError unless ``model`` is an nn.Module and ``x`` a non-empty batch tensor
    (batch first, at least 2-D); ``verb`` names the analysis in the message."""
    if not isinstance(model, nn.Module):
        raise InputError(f"{verb} needs an nn.Module; got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"the input must be a batch tensor (batch first, at least 2-D); got {got}")
    if x.shape[0] == 0:
        raise InputError("the input batch is empty")


def scores_of(output, where: str = "the model") -> torch.Tensor:
    """The model's output as (batch, scores): (B, K) as it is, (B,) as (B, 1); anything
    else is an InputError saying how to wrap the model."""
    if not isinstance(output, torch.Tensor):
        raise InputError(f"{where} returned {type(output).__name__}; expected one tensor of scores "
                         "shaped (batch, outputs) (wrap it, e.g. interp.objectives.OutputPart(model, 0))")
    if output.ndim == 1:
        return output[:, None]
    if output.ndim != 2:
        raise InputError(f"{where} returned scores shaped {tuple(output.shape)}; expected (batch, outputs) "
                         "(wrap it to give one score per output, e.g. "
                         "interp.objectives.ReconstructionError(model) for an autoencoder)")
    return output


def resolve_target(target, scores: torch.Tensor) -> torch.Tensor:
    """One output index per sample, as a LongTensor (B,), from ``target``: an int (the same
    for every sample), a sequence or tensor of ints (one per sample) or ``"predicted"``
    (the arg-max of ``scores``). ``scores`` is (B, K); indices outside [0, K) raise a
    TargetError. The one target helper of attribute, lrp and sensitivity."""
    n, k = scores.shape
    if isinstance(target, str):
        if target != "predicted":
            raise TargetError(f"target {target!r} is not understood; expected an output index, "
                              f"one index per sample, or 'predicted'")
        return scores.detach().argmax(1)
    if isinstance(target, bool) or target is None:
        raise TargetError(f"target must be an output index in [0, {k - 1}], one index per sample, "
                          f"or 'predicted'; got {target!r}")
    if isinstance(target, int):
        t = torch.full((n,), target, dtype=torch.long)
    else:
        try:
            t = torch.as_tensor(target)
        except (TypeError, ValueError, RuntimeError):
            raise TargetError(f"target must be an output index, one index per sample, or 'predicted'; "
                              f"got {type(target).__name__}") from None
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TargetError(f"target must hold integer output indices; got dtype "
                              f"{str(t.dtype).replace('torch.', '')}")
        t = t.reshape(-1).to(torch.long) if t.ndim <= 1 else t
        if t.ndim != 1 or (len(t) != n and len(t) != 1):
            raise TargetError(f"target must be one index, or one per sample ({n}); got shape "
                              f"{tuple(torch.as_tensor(target).shape)}")
        t = t.expand(n).clone() if len(t) == 1 else t
    t = t.to(scores.device)
    bad = (t < 0) | (t >= k)
    if bool(bad.any()):
        raise TargetError(f"target {int(t[bad][0])} is out of range: the model gives {k} output"
                          f"{'s' if k != 1 else ''}, so targets must lie in [0, {k - 1}]")
    return t
