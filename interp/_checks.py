"""Input checks shared by every public entry point: inputs as :class:`~interp.inputs.Inputs`
with finite values on the model's device, the refusal of batch statistics, and the one
target helper (an int, one int per sample, or ``"predicted"``) of every analysis that
explains a score."""

from __future__ import annotations

import torch
from torch import nn

from .code import calls_any
from .errors import InputError, ModelError, TargetError
from .inputs import Inputs, as_inputs, check_model, expected_input  # noqa: F401  (expected_input: re-exported)


def check_finite(x: torch.Tensor, where: str) -> None:
    """InputError if a floating tensor holds NaN or infinity."""
    # the sum is finite whenever every value is (bar overflow, then the exact check decides)
    if x.is_floating_point() and not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise InputError(f"{where} holds {bad} NaN or infinite values; expected finite inputs")


def run_model(model: nn.Module, x, what: str = "input"):
    """``model(x)`` (``x`` a tensor, a tuple or a dict of inputs, see :mod:`interp.inputs`);
    a model that raises gives a :class:`~interp.inputs.ModelRaised` (an InputError naming the
    shapes and dtypes given), which :func:`interp.inputs.blame` turns into an InputError or
    a ModelError at the edge of the analysis."""
    return as_inputs(x, model, at_least_2d=False).call(model)


def check_batch(model: nn.Module, x, verb: str) -> Inputs:
    """The inputs ``x`` as :class:`~interp.inputs.Inputs` (a batch tensor, batch first and at
    least 2-D, or a tuple or dict of such), checked against ``model`` (an nn.Module with
    values, on the inputs' device) and for NaN or infinity; ``verb`` names the analysis."""
    check_model(model, None, verb)
    inputs = as_inputs(x, model)
    check_model(model, inputs, verb)
    for name, t in zip(inputs.names, inputs.tensors):
        check_finite(t, "the input" if inputs.single else name)
    return inputs


_DROPOUTS = (nn.modules.dropout._DropoutNd,)
_RANDOM_CALLS = frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
                           "rrelu", "bernoulli", "rand", "randn", "randn_like", "rand_like", "normal", "multinomial"})


def refuse_batch_statistics(model: nn.Module, verb: str = "attribution", *, random: bool = False) -> None:
    """ModelError for a model whose results or state a run would make depend on the batch:
    a batch-norm normalising with the batch's own statistics (train mode, or no running
    statistics: one sample's result would depend on the others), any norm updating running
    statistics (train mode: the model would change). With ``random`` also for dropout in
    train mode (the result would be random): what every analysis explaining a score
    refuses. Every analysis that runs the model itself calls this, so the message is the
    same everywhere."""
    for name, m in model.named_modules():
        where = f"module {name or 'model'!r} ({type(m).__name__})"
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (m.training or m.running_mean is None):
            why = "is in train mode" if m.training else "keeps no running statistics (track_running_stats=False)"
            raise ModelError(f"{where} {why}: it normalises with the statistics of the batch, so one sample's "
                             f"{verb} would depend on the others{' and the model would change' if m.training else ''}"
                             "; call model.eval() on a model with running statistics")
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.training and m.track_running_stats:
            raise ModelError(f"{where} is in train mode: it updates its running statistics on every batch, so the "
                             f"model would change while computing its {verb}; call model.eval()")
        if m.training and (type(m).__name__ == "_SpectralNorm" or any(
                type(h).__name__ == "SpectralNorm" for h in m._forward_pre_hooks.values())):
            raise ModelError(f"{where} is in train mode: its spectral norm updates its power-iteration vectors on "
                             f"every forward, so the model would change while computing its {verb}; call "
                             "model.eval()")
        if random and m.training and (
                (isinstance(m, _DROPOUTS) and m.p > 0) or (isinstance(m, nn.RNNBase) and m.dropout > 0)):
            raise ModelError(f"{where} is in train mode: it drops units at random, so the {verb} would be random "
                             "(and differ from call to call); call model.eval()")
        if random and m.training and not type(m).__module__.startswith("torch.") and calls_any(m, _RANDOM_CALLS):
            raise ModelError(f"{where} is in train mode, and its forward draws at random (F.dropout(..., "
                             f"training=self.training), torch.rand...), so the {verb} would be random (and differ "
                             "from call to call); call model.eval()")


def scores_of(output, where: str = "the model") -> torch.Tensor:
    """The model's output as (batch, scores): (B, K) as it is, (B,) as (B, 1); anything
    else is an InputError saying how to wrap the model."""
    logits = getattr(output, "logits", None)  # a Hugging Face ModelOutput (SequenceClassifierOutput, ...)
    if not isinstance(output, torch.Tensor) and isinstance(logits, torch.Tensor):
        if logits.ndim == 3:
            raise InputError(f"{where} returned logits per position {tuple(logits.shape)} (a language model or a "
                             "token classifier); expected one score per output for each sample: explain one "
                             "position, e.g. interp.huggingface.Scores(model, position='last')")
        output = logits
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
