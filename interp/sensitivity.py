"""Sensitivity: how the output and the layers respond when the input moves.

    interp.sensitivity(model, x, "predicted", kind="noise", scales=(0, 0.1, 0.5))  # NoiseSensitivity
    interp.sensitivity(model, x, labels, kind="layer", noise=0.1)                   # LayerSensitivity

Written here, not taken from Captum: Captum measures the sensitivity of
*explanations* (``sensitivity_max``, ``infidelity``: the ``explanation`` kind uses them,
with perturbations drawn from our seeded generator), not of outputs and layers. What this
module adds: Gaussian input noise scaled to the data's spread, drawn from a seeded
generator of its own (the same seed gives the same result, and the global RNG is left
alone), token models perturbed in the space of the embedding that reads the ids, layer
responses read through :func:`interp.capture` and layer ablation through
:func:`interp.capture.intervene`. Results are frozen dataclasses of tensors, plotted by
:mod:`interp.figures`, and registered with :mod:`interp.results` so they can be saved.

Figures: :mod:`interp.figures.sensitivity`; the dashboard's Sensitivity view and the
reports compose them through :mod:`interp.study.sensitivity`.
"""

from __future__ import annotations

import inspect
import math
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from . import lrp as lrp_module
from . import results
from ._checks import check_batch, refuse_batch_statistics, resolve_target, scores_of
from .attribution import attribute, attribute_at_embeddings, explain
from .attribution import methods as attribution_methods
from .capture import intervene, module_names, probe_batch_axes, recording, replace_part, select_layers
from .errors import InputError, InterpError, UnknownNameError
from .inplace import out_of_place
from .inputs import Inputs, blame, per_input
from .space import Space, exclusive, prepare

DEFAULT_SCALES = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
ROWS_PER_EVAL = 512  # perturbed copies per forward


# ---------------------------------------------------------------------------- results

@results.register
@dataclass(frozen=True)
class NoiseSensitivity:
    """How the target score moves under Gaussian input noise, per noise scale and sample.

    ``scales``: the noise standard deviations, as fractions of the data's ``std``.
    ``score_change``: (scales, batch) root-mean-square change of the target score over
    ``draws`` noisy copies (for a linear score ``w . x`` and unit ``std`` it is
    ``||w|| sigma``); ``score_change_std``: the spread of |change| over the copies (for
    bands). ``probability_change``: the same for the softmax probability of the target
    (None for single-output models). ``agreement``: (scales,) share of noisy copies
    whose prediction is the clean one; ``accuracy``: (scales,) share predicting
    ``labels``, when labels were given."""

    kind = "noise"
    scales: torch.Tensor
    score_change: torch.Tensor
    score_change_std: torch.Tensor
    probability_change: torch.Tensor | None
    agreement: torch.Tensor
    accuracy: torch.Tensor | None
    target: torch.Tensor
    score: torch.Tensor
    std: float
    draws: int
    seed: int
    embedding: str | None = None


@results.register
@dataclass(frozen=True)
class LayerSensitivity:
    """How each layer responds to input noise, and how much the output needs it.

    ``layers``: the layer outputs measured, in model order. ``change``: (layers,) mean
    relative change ``||a(x + d) - a(x)|| / ||a(x)||`` under input noise of relative
    size ``noise``; ``change_std``: its spread over samples. ``ablation``: (layers,) the
    share of samples still predicted right (``labels``) or as before (no labels) when the
    layer's output is replaced by its mean over the batch (or, with ``ablate=r``, perturbed
    by noise of r times its std; ``ablated_by`` says which); ``baseline``: that share
    with nothing replaced. With ``measure="score"`` (the default for models with one
    output and no labels, which have no prediction to keep; give it for outputs that are
    not classes, such as latent units) ``ablation`` is the relative change of the target
    score over the batch, ``||s_ablated - s|| / ||s||``, ``baseline`` 0 and
    ``measured_against`` "score"."""

    kind = "layer"
    layers: tuple[str, ...]
    change: torch.Tensor
    change_std: torch.Tensor
    ablation: torch.Tensor
    baseline: float
    noise: float
    draws: int
    seed: int
    measured_against: str = "labels"
    ablated_by: str = "batch mean"


@results.register
@dataclass(frozen=True)
class OcclusionSensitivity:
    """How much the target score drops when a window of the input is set to a baseline
    (images, token sequences): ``maps`` shaped like the input (one value per token for
    token ids), ``baseline`` how the occluded part was filled ("zero", "mean" over the
    batch, "blur" of each image, a number, or a token id)."""

    kind = "occlusion"
    maps: torch.Tensor
    target: torch.Tensor
    score: torch.Tensor
    baseline: str
    window: object
    stride: object


@results.register
@dataclass(frozen=True)
class FeatureSweep:
    """Individual conditional expectation (ICE) curves of one feature of tabular inputs:
    the target score of each sample as ``feature`` takes the values of ``grid``, the
    others fixed (``curves``: (batch, grid)); ``mean`` is their average, the partial
    dependence."""

    kind = "occlusion"
    feature: int
    grid: torch.Tensor
    curves: torch.Tensor
    mean: torch.Tensor
    target: torch.Tensor


@results.register
@dataclass(frozen=True)
class ExplanationSensitivity:
    """How robust explanations are, per method (attribution methods by name, LRP as
    ``lrp:<composite>``) and sample: Captum's ``sensitivity_max`` (the largest change
    of the explanation, relative to its norm, under uniform input noise of ``radius``
    times the data's std) and ``infidelity`` (the mean squared error between the
    explanation's predicted and the true change of the score under Gaussian noise)."""

    kind = "explanation"
    methods: tuple[str, ...]
    sensitivity_max: torch.Tensor   # (methods, batch)
    infidelity: torch.Tensor        # (methods, batch)
    target: torch.Tensor
    radius: float
    draws: int
    seed: int


# ---------------------------------------------------------------------------- input space

@dataclass
class _Inputs:
    """Where noise is added: per explained input of the model, the input itself or for token
    ids the output of the embedding that reads them (:mod:`interp.space`); ``run`` takes
    one tensor per explained input, for the batch or for copies of it."""

    space: Space

    @property
    def values(self) -> tuple[torch.Tensor, ...]:
        return tuple(a.detach() for a in self.space.inputs)

    @property
    def embedding(self):
        return self.space.embedding

    def run(self, values: tuple[torch.Tensor, ...]) -> torch.Tensor:
        n = len(self.space.inputs[0])
        reps = len(values[0]) // n
        return self.space.run(values, torch.arange(n).repeat(reps) if reps > 1 else None)


def _inputs(model: nn.Module, structure: Inputs, embedding) -> _Inputs:
    """The space to perturb, found as the attribution methods find it."""
    return _Inputs(prepare(model, structure, embedding, graph=False))


def _noise(shape, scale: torch.Tensor, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=like.dtype).to(like.device) * scale


def _check_scales(scales) -> torch.Tensor:
    try:
        s = torch.as_tensor(scales, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"scales must be numbers >= 0; got {scales!r}") from None
    if s.numel() == 0 or not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        raise InputError(f"noise scales must be finite numbers >= 0; got {s.tolist()}")
    return s


def _number(name: str, v, meaning: str = "", strict: bool = False) -> float:
    """``v`` as a float: a finite number >= 0 (> 0 when ``strict``), else an InputError."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 if strict else v >= 0)
    if not ok:
        raise InputError(f"{name} must be a finite number {'>' if strict else '>='} 0{meaning}; got {v!r}")
    return float(v)


def _check_seed(v) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not -2 ** 63 <= v < 2 ** 64:
        raise InputError(f"seed must be an integer in [-2**63, 2**64); got {v!r}")
    return v


def _check_count(name: str, v) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise InputError(f"{name} must be an integer >= 1; got {v!r}")
    return v


def _std(space: _Inputs, std):
    """The data's spread noise is scaled to, per explained input: ``std`` as given (once, or per
    input of several, by name), else the batch's own. A float for one input, a tuple for several."""
    structure = space.space.structure
    given = [g for g, slot in zip(per_input(std, structure, "std"), space.space.slots) if slot is not None]
    spreads = []
    for g, values in zip(given, space.values):
        if g is not None:
            spreads.append(_number("std", g, " (the data's spread)", strict=True))
            continue
        spreads.append(float(values.std()) if values.numel() > 1 else 0.0)
    if not any(s > 0 for s in spreads) or (len(spreads) == 1 and not spreads[0] > 0):
        raise InputError("the input holds one value (or one sample of constants), so its spread is 0; give the "
                         "data's spread with std=...")
    # of several inputs, one that holds one value (a mask of ones) gets no noise
    return spreads[0] if len(spreads) == 1 else tuple(spreads)


def spread(model: nn.Module, x, embedding=None):
    """The spread (std) of ``x`` in the space noise is added to: the inputs themselves, or
    for token ids the embedding that reads them; what ``std=`` of every kind measures noise
    against (give a dataset's, so that one noise level means the same for a sample and for
    the whole set). A float for one input, a tuple for several."""
    structure = check_batch(model, x, "sensitivity")
    refuse_batch_statistics(model, "spread")
    with blame(model, structure, "sensitivity"), exclusive(model), out_of_place(model):
        return _std(_inputs(model, structure, embedding), None)


def _scales(spread) -> tuple[float, ...]:
    return spread if isinstance(spread, tuple) else (spread,)


# ---------------------------------------------------------------------------- kinds

def _noise_kind(model, x, target, *, scales=DEFAULT_SCALES, draws: int = 16, std=None, labels=None,
                seed: int = 0, embedding=None, progress=None) -> NoiseSensitivity:
    s = _check_scales(scales)
    draws = _check_count("draws", draws)
    space = _inputs(model, x, embedding)
    base = space.values
    clean = space.space.scores
    t = resolve_target(target, clean)
    spread = _std(space, std)
    n = len(base[0])
    label = _labels(labels, n, clean.shape[1])
    generator = torch.Generator().manual_seed(seed)
    at_target = clean.gather(1, t[:, None])[:, 0]
    probs = clean.softmax(1).gather(1, t[:, None])[:, 0] if clean.shape[1] > 1 else None
    predicted = clean.argmax(1)
    rms, spread_abs, prob_change, agreement, accuracy = [], [], [], [], []
    _tick(progress, 0, len(s))
    for step, sigma in enumerate(s.tolist(), 1):
        if sigma == 0:  # no noise: every copy is the clean input, whose scores are known
            scores = clean.expand(draws, *clean.shape)
        else:
            with torch.no_grad():
                scores = torch.cat([space.run(copies) for copies in
                                    _noisy(base, draws, [sigma * sp for sp in _scales(spread)], generator)]
                                   ).view(draws, n, -1)
        change = scores.gather(2, t[None, :, None].expand(draws, n, 1))[..., 0] - at_target
        rms.append(change.pow(2).mean(0).sqrt())
        spread_abs.append(change.abs().std(0, unbiased=False))
        if probs is not None:
            p = scores.softmax(2).gather(2, t[None, :, None].expand(draws, n, 1))[..., 0]
            prob_change.append((p - probs).pow(2).mean(0).sqrt())
        guess = scores.argmax(2)
        agreement.append((guess == predicted).double().mean())
        if label is not None:
            accuracy.append((guess == label).double().mean())
        _tick(progress, step, len(s))
    return NoiseSensitivity(scales=s, score_change=torch.stack(rms), score_change_std=torch.stack(spread_abs),
                            probability_change=torch.stack(prob_change) if probs is not None else None,
                            agreement=torch.stack(agreement), accuracy=torch.stack(accuracy) if label is not None
                            else None, target=t, score=at_target, std=spread, draws=draws, seed=seed,
                            embedding=space.embedding)


def _noisy(base: tuple[torch.Tensor, ...], draws: int, scales, generator: torch.Generator):
    """``draws`` noisy copies of the batch (every input, each with noise of its own scale),
    whole batches at a time, about ROWS_PER_EVAL rows per piece: memory holds one piece,
    never all the copies."""
    per = max(1, ROWS_PER_EVAL // len(base[0]))
    for start in range(0, draws, per):
        copies = tuple(b.repeat((min(per, draws - start),) + (1,) * (b.ndim - 1)) for b in base)
        yield tuple(c + _noise(c.shape, scale, generator, c) for c, scale in zip(copies, scales))


def _labels(labels, n: int, k: int) -> torch.Tensor | None:
    if labels is None:
        return None
    t = torch.as_tensor(labels)
    if t.is_floating_point() or t.ndim != 1 or len(t) != n:
        raise InputError(f"labels must be one class index per sample ({n}); got {tuple(t.shape)} "
                         f"{str(t.dtype).replace('torch.', '')}")
    if bool(((t < 0) | (t >= k)).any()):
        raise InputError(f"labels must lie in [0, {k - 1}]")
    return t.long()


def _layer_kind(model, x, target, *, layers=None, noise: float = 0.1, draws: int = 8, std=None, labels=None,
                seed: int = 0, embedding=None, ablate="mean", measure=None, progress=None) -> LayerSensitivity:
    _number("noise", noise, " (relative to the data's std)")
    if ablate != "mean":
        _number("ablate", ablate, " (noise of that size relative to the output's std), or 'mean' (each layer's "
                "output replaced by its batch mean)")
    if measure not in (None, "prediction", "score"):
        raise InputError(f"measure must be 'prediction' (the share still predicted right), 'score' (the "
                         f"relative change of the target score) or None (the first, where there are classes); "
                         f"got {measure!r}")
    draws = _check_count("draws", draws)
    space = _inputs(model, x, embedding)
    base = space.values
    spread = _std(space, std)
    names = [name for name in select_layers(model, layers) if not _is_embedding_of(space, name)]
    n = len(base[0])
    known = probe_batch_axes(model, space.space.structure, names)  # time-major outputs included

    def axis(rec, key: str) -> int:
        base_name = key.split(":")[0]
        return known.get(base_name, rec.batch_axis.get(base_name, 0))

    runs = []
    with torch.no_grad():
        rec = recording(model, lambda: runs.append(space.run(base)), names, batch_axes=known)
    clean = runs[-1]
    # every recorded output (sub-names for tuple outputs, e.g. lstm.out / lstm.h), batch first,
    # less those that do not depend on the input (e.g. position embeddings of a constant range)
    outputs = {key: _batch_first(t, axis(rec, key)) for key, t in rec.activations.items()}
    with torch.no_grad():  # which outputs grow with the batch
        doubled = recording(model, lambda: space.run(tuple(torch.cat([b, b]) for b in base)), names,
                            batch_axes=known)
    outputs = {key: a for key, a in outputs.items() if key in doubled.activations and len(a) == n and len(
        _batch_first(doubled.activations[key], axis(doubled, key))) == 2 * n}
    if not outputs:
        raise InterpError("no layer output was recorded on this input; name layers with layers=...")
    label = _labels(labels, n, clean.shape[1])
    reference = label if label is not None else clean.argmax(1)
    # one output and no labels: no prediction to keep, so the score's move is measured
    by_score = measure == "score" or (measure is None and label is None and clean.shape[1] == 1)
    if measure == "prediction" and clean.shape[1] == 1:
        raise InputError("measure='prediction' needs several outputs to predict among; this model gives one "
                         "score: use measure='score'")
    t = resolve_target(target, clean)
    at_target = clean.gather(1, t[:, None])[:, 0]
    generator = torch.Generator().manual_seed(seed)
    changes: dict[str, list] = {key: [] for key in outputs}
    steps = draws + len(outputs)
    _tick(progress, 0, steps)
    for step in range(1, draws + 1):
        noisy = tuple(b + _noise(b.shape, noise * sp, generator, b) for b, sp in zip(base, _scales(spread))) \
            if noise > 0 else base
        with torch.no_grad():
            rec = recording(model, lambda: space.run(noisy), names, batch_axes=known)  # noqa: B023 - run here
        for key, a in outputs.items():
            b = _batch_first(rec.activations[key], axis(rec, key))
            diff = (b - a).reshape(n, -1).norm(dim=1) / a.reshape(n, -1).norm(dim=1).clamp(min=1e-12)
            changes[key].append(diff)
        _tick(progress, step, steps)
    keys = tuple(outputs)
    change = torch.stack([torch.stack(changes[key]).mean(0) for key in keys])  # (outputs, batch)
    ablation = []
    modules = module_names(model)
    for step, key in enumerate(keys, draws + 1):
        layer = rec.layer_of.get(key)
        if layer not in modules:  # one of several calls of a module ("act:1"): not ablated alone
            ablation.append(torch.tensor(float("nan")))
            _tick(progress, step, steps)
            continue
        sub = _part_of(key, layer)
        scores = _ablated(model, space, base, layer, sub, axis(rec, key), outputs[key],
                          ablate, generator)
        ablation.append(_relative(scores.gather(1, t[:, None])[:, 0] - at_target, at_target) if by_score
                        else (scores.argmax(1) == reference).double().mean())
        _tick(progress, step, steps)
    baseline = 0.0 if by_score else float((clean.argmax(1) == reference).double().mean())
    return LayerSensitivity(layers=keys, change=change.mean(1), change_std=change.std(1, unbiased=False),
                            ablation=torch.stack(ablation).double(), baseline=baseline, noise=float(noise),
                            draws=draws, seed=seed,
                            measured_against="score" if by_score else "labels" if label is not None
                            else "clean predictions",
                            ablated_by="batch mean" if ablate == "mean"
                            else f"noise {float(ablate):g} x the output's std")


def _batch_first(t: torch.Tensor, axis: int) -> torch.Tensor:
    return t if axis == 0 else t.movedim(axis, 0)


def _part_of(key: str, layer: str) -> str:
    """The part of ``layer``'s output that recorded output ``key`` names: "" for the whole
    output, "h" for "lstm.h" (or "lstm[h]", as capture writes it where "lstm.h" is a module)."""
    if key == layer:
        return ""
    part = key[len(layer) + 1:]
    return part[:-1] if key[len(layer)] == "[" else part


def _relative(change: torch.Tensor, of: torch.Tensor) -> torch.Tensor:
    """``||change|| / ||of||`` over the batch (0 where both are 0)."""
    return (change.norm() / of.norm().clamp(min=1e-12)).double()


def _ablated(model, space: _Inputs, base, layer: str, sub: str, axis: int, output: torch.Tensor, ablate,
             generator: torch.Generator) -> torch.Tensor:
    """The model's scores with ``layer``'s output (its part ``sub`` of a tuple output, e.g.
    an LSTM's ``h``, whose batch axis is ``axis``) replaced by its mean over the batch
    (``ablate="mean"``), or perturbed by Gaussian noise of ``ablate`` times its std.
    ``output``: what was recorded, batch first."""
    mean = output.mean(0, keepdim=True)
    scale = float(output.std(unbiased=False)) * ablate if ablate != "mean" else 0.0

    def change(part: torch.Tensor) -> torch.Tensor:
        b = part.movedim(axis, 0)
        if b.shape[1:] != mean.shape[1:]:  # another call of the module, on other shapes: left alone
            return part
        # a tensor of its own (not an expanded view): the forward may write into it in place
        b = mean.expand_as(b).clone() if ablate == "mean" else b + _noise(b.shape, scale, generator, b) \
            if scale > 0 else b
        return b.movedim(0, axis)

    def replace(_name, _args, out):
        if not sub:
            return change(out) if isinstance(out, torch.Tensor) else None
        return replace_part(out, module_names(model)[layer], sub, change)
    with torch.no_grad(), intervene(model, [layer], replace):
        return space.run(base)


def _occlusion_kind(model, x, target, *, window=None, stride=None, baseline="zero", feature=None, grid=20,
                    embedding=None, progress=None):
    if feature is not None:
        return _sweep(model, x, target, feature, grid, progress)
    first = x.tensors[0]
    if x.single and first.is_floating_point() and first.ndim == 2:
        raise InputError("occlusion of tabular inputs sweeps one feature at a time: give feature=<index> "
                         f"in [0, {first.shape[1] - 1}]")
    fill, name = _fills(x, baseline)
    _tick(progress, 0, 1)
    a = explain(model, x, target, "occlusion", embedding=embedding, window=window, stride=stride, baseline=fill)
    _tick(progress, 1, 1)
    return OcclusionSensitivity(maps=a.values, target=a.target, score=a.score, baseline=name,
                                window=a.options["window"], stride=a.options["stride"])


def _fills(x: Inputs, baseline):
    """The fill of occluded windows (for the occlusion method: one value, or a dict by input
    for several inputs) and its name. For several inputs a named baseline applies where it
    can ("mean" to float inputs, "blur" to images); the other inputs are filled with zeros."""
    if x.single or not isinstance(baseline, str):
        return _baseline(x.tensors[0], baseline) if x.single else (baseline, "given")
    fills = {}
    for name, t in zip(x.names, x.tensors):
        applies = t.is_floating_point() and (baseline != "blur" or t.ndim == 4)
        fills[name] = _baseline(t, baseline)[0] if applies else None
    return fills, baseline


def _baseline(x: torch.Tensor, baseline):
    """The fill of occluded windows of one input: (value for the occlusion method, name)."""
    if isinstance(baseline, str):
        if baseline == "zero":
            return None, "zero"
        if not x.is_floating_point():
            raise InputError(f"baseline {baseline!r} applies to float inputs; for token ids give a token id "
                             "(e.g. the padding token)")
        if baseline == "mean":
            return x.mean(0), "mean"
        if baseline == "blur":
            if x.ndim != 4:
                raise InputError(f"baseline 'blur' applies to images (batch, channels, H, W); got {tuple(x.shape)}")
            return _blurred(x), "blur"
        raise InputError(f"baseline {baseline!r} is not understood; expected 'zero', 'mean', 'blur', a number, "
                         "a tensor, or a token id")
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float, torch.Tensor)):
        raise InputError(f"baseline must be 'zero', 'mean', 'blur', a number, a tensor or a token id; got "
                         f"{baseline!r}")
    return baseline, str(baseline) if not isinstance(baseline, torch.Tensor) else "tensor"


def _blurred(x: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Each image blurred by a Gaussian (per channel, edges replicated)."""
    radius = max(1, int(round(2 * sigma)))
    k = torch.exp(-torch.arange(-radius, radius + 1, dtype=x.dtype) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(x.device)
    c = x.shape[1]
    out = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = torch.nn.functional.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return torch.nn.functional.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _sweep(model, x: Inputs, target, feature, grid, progress=None) -> FeatureSweep:
    """ICE curves of one column of a tabular input (``feature``: its index; for several inputs
    ``(input name, index)``)."""
    which = 0
    if not x.single:
        if not (isinstance(feature, tuple) and len(feature) == 2 and feature[0] in x.names):
            raise InputError(f"with several inputs, feature is (input name, column), the input one of "
                             f"{', '.join(map(repr, x.names))}; got {feature!r}")
        which, feature = x.names.index(feature[0]), feature[1]
    table = x.tensors[which]
    if not (table.is_floating_point() and table.ndim == 2):
        raise InputError(f"feature sweeps apply to tabular inputs (batch, features); got {tuple(table.shape)}")
    if not isinstance(feature, int) or isinstance(feature, bool) or not 0 <= feature < table.shape[1]:
        raise InputError(f"feature must be an index in [0, {table.shape[1] - 1}]; got {feature!r}")
    if isinstance(grid, bool) or isinstance(grid, (str, float)):
        raise InputError(f"grid must be a number of points (an integer >= 2) or the values to sweep; got {grid!r}")
    if isinstance(grid, int):
        if grid < 2:
            raise InputError(f"grid must be at least 2 points; got {grid}")
        values = torch.linspace(float(table[:, feature].min()), float(table[:, feature].max()), grid,
                                dtype=table.dtype)
    else:
        try:
            values = torch.as_tensor(grid, dtype=table.dtype).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise InputError(f"grid must be a number of points or finite values; got {grid!r}") from None
        if values.numel() < 1 or not bool(torch.isfinite(values).all()):
            raise InputError("grid must be a number of points or finite values")
    n = x.batch
    with torch.no_grad():
        clean = scores_of(x.copy().call(model))
        t = resolve_target(target, clean)
        copies = [v.detach().repeat((len(values),) + (1,) * (v.ndim - 1)) for v in x.tensors]
        copies[which] = copies[which].clone()
        copies[which][:, feature] = values.repeat_interleave(n)
        per = max(1, ROWS_PER_EVAL // n) * n
        starts = list(range(0, len(values) * n, per))
        scores = []
        _tick(progress, 0, len(starts))
        for step, start in enumerate(starts, 1):
            scores.append(scores_of(x.call(model, [c[start:start + per] for c in copies])))
            _tick(progress, step, len(starts))
        scores = torch.cat(scores)
    curves = scores.view(len(values), n, -1).gather(2, t[None, :, None].expand(len(values), n, 1))[..., 0].T
    return FeatureSweep(feature=feature, grid=values, curves=curves, mean=curves.mean(0), target=t)


def _explanation_kind(model, x, target, *, methods=("gradient", "input_x_gradient", "integrated_gradients"),
                      composites=None, radius: float = 0.02, draws: int = 10, std=None,
                      seed: int = 0, embedding=None, progress=None) -> ExplanationSensitivity:
    from captum.metrics import infidelity, sensitivity_max

    space = _inputs(model, x, embedding)  # token ids: perturbed in the embedding space
    tokens = space.space.tokens
    if tokens and not x.single:
        raise InputError("the explanation kind perturbs token ids in their embedding space for a model of one "
                         "input; with several inputs, give float inputs (or rate the token input alone)")
    if composites is None:  # LRP where it applies: float inputs
        composites = () if tokens else ("epsilon_plus_flat",)
    if tokens and composites:
        raise InputError("LRP composites are rated on float inputs only: token models are perturbed in their "
                         "embedding space, where the LRP engine does not start; give composites=()")
    _number("radius", radius, " (relative to the data's std)")
    draws = _check_count("draws", draws)
    for m in methods:
        if m not in attribution_methods():
            raise UnknownNameError("attribution method", m, attribution_methods())
    for c in composites:
        lrp_module.composites.get(c)  # an unknown name fails here, before any work
    values = space.values
    spreads = _scales(_std(space, std))
    t = resolve_target(target, space.space.scores)
    generator = torch.Generator().manual_seed(seed)
    constants = space.space.constants
    extra = {"additional_forward_args": constants} if constants else {}  # Captum expands them like the inputs

    def same_form(given, parts: tuple):  # Captum hands one input as a tensor, several as a tuple
        return parts if isinstance(given, tuple) else parts[0]

    def tupled(given) -> tuple:
        return given if isinstance(given, tuple) else (given,)

    def uniform(inputs, perturb_radius):  # Captum's default, from our own generator, scaled per input
        return same_form(inputs, tuple(
            a + (2 * torch.rand(a.shape, generator=generator, dtype=a.dtype).to(a.device) - 1) * perturb_radius * sp
            for a, sp in zip(tupled(inputs), spreads)))

    def gaussian(inputs):
        noise = tuple(torch.randn(a.shape, generator=generator, dtype=a.dtype).to(a.device) * radius * sp
                      for a, sp in zip(tupled(inputs), spreads))
        return same_form(inputs, noise), same_form(inputs, tuple(a - d for a, d in zip(tupled(inputs), noise)))

    def model_inputs(inputs, given_constants) -> Inputs:
        """The model's inputs with the explained tensors ``inputs`` (float inputs) in their places."""
        full, k = [], 0
        for slot in space.space.slots:
            if slot is None:
                full.append(given_constants[k])
                k += 1
            else:
                full.append(inputs[slot])
        return x.replace(full)

    def explained(result) -> tuple:
        parts = [result] if x.single else (list(result.values()) if isinstance(result, dict) else list(result))
        return tuple(p.contiguous() for p, slot in zip(parts, space.space.slots) if slot is not None)

    def method(fn):  # Captum hands the inputs (and the constants, expanded with them) and wants the same form back
        def explain_fn(inputs, target, additional_forward_args=None):
            with torch.enable_grad():  # Captum calls it without autograd; the methods need it
                out = fn(tupled(inputs), target, tuple(additional_forward_args or constants))
            return same_form(inputs, out)
        return explain_fn

    def one(m):
        if tokens:  # attributions over the embedding values (per dimension: infidelity needs the input's shape)
            return lambda inputs, target, ids: (attribute_at_embeddings(model, ids[0], inputs[0], target, m,
                                                                        embedding=embedding).contiguous(),)
        return lambda inputs, target, given: explained(attribute(model, model_inputs(inputs, given), target, m))

    explainers = {m: method(one(m)) for m in methods}
    for c in composites:
        explainers[f"lrp:{c}"] = method(lambda inputs, target, given, c=c: explained(
            lrp_module.lrp(model, model_inputs(inputs, given), target, composite=c).relevance))

    if radius == 0:  # no perturbation: both are 0 by definition (computed, batching noise would show)
        zeros = torch.zeros(len(explainers), x.batch, dtype=values[0].dtype)
        return ExplanationSensitivity(methods=tuple(explainers), sensitivity_max=zeros, infidelity=zeros.clone(),
                                      target=t, radius=0.0, draws=draws, seed=seed)
    sens, infid = [], []
    _tick(progress, 0, len(explainers))
    for step, explain_fn in enumerate(explainers.values(), 1):
        generator.manual_seed(seed)  # every method rated on the same perturbations
        sens.append(sensitivity_max(explain_fn, values, perturb_func=uniform, perturb_radius=radius,
                                    n_perturb_samples=draws, target=t, **extra).detach())
        attributions = explain_fn(values, t)
        infid.append(infidelity(space.space.forward, gaussian, values, attributions, target=t,
                                n_perturb_samples=draws, **extra).detach())
        _tick(progress, step, len(explainers))
    return ExplanationSensitivity(methods=tuple(explainers), sensitivity_max=torch.stack(sens),
                                  infidelity=torch.stack(infid), target=t, radius=float(radius), draws=draws,
                                  seed=seed)


def _tick(progress, done: int, total: int) -> None:
    """Report ``done`` of ``total`` steps to the caller's ``progress(done, total)``, if any."""
    if progress is not None:
        progress(done, total)


def _is_embedding_of(space: _Inputs, name: str) -> bool:
    return name in space.space.embeddings


KINDS: dict[str, Callable] = {"noise": _noise_kind, "occlusion": _occlusion_kind, "layer": _layer_kind,
                              "explanation": _explanation_kind}


# ---------------------------------------------------------------------------- the verb

def sensitivity(model: nn.Module, x: torch.Tensor, target="predicted", kind: str = "noise", **options):
    """How ``model`` responds to changes of ``x``, by ``kind``:

    - ``"noise"``: the target score's change under Gaussian input noise, per scale
      (``scales``, fractions of the data's ``std``; ``draws`` copies per sample;
      ``labels`` for an accuracy curve) -> :class:`NoiseSensitivity`;
    - ``"occlusion"``: the score's drop when a window is set to a ``baseline`` ("zero",
      "mean", "blur", a number, a token id) -> :class:`OcclusionSensitivity`; for tabular
      inputs, ICE curves of one ``feature`` over a ``grid`` -> :class:`FeatureSweep`;
    - ``"layer"``: each layer's relative change under input noise (``noise``), and the
      share still predicted right when the layer's output is replaced by its batch
      mean -> :class:`LayerSensitivity`;
    - ``"explanation"``: Captum's ``sensitivity_max`` and ``infidelity`` of attribution
      ``methods`` and LRP ``composites`` -> :class:`ExplanationSensitivity`; token models
      are perturbed and explained in their embedding space (without LRP, whose engine
      starts at the ids).

    ``progress``: a function ``progress(done, total)`` called as the work advances (scales,
    draws and layers, methods), for progress bars; every kind takes it.

    ``target``: an output index, one per sample, or ``"predicted"``. Token ids are
    perturbed in the space of the embedding that reads them. Results are the same for
    the same ``seed``; the model and the global random state are left as they were.
    """
    structure = check_batch(model, x, "sensitivity")
    if not isinstance(kind, str) or kind not in KINDS:
        raise UnknownNameError("sensitivity kind", kind, KINDS)
    accepted = [p for p in inspect.signature(KINDS[kind]).parameters if p not in ("model", "x", "target")]
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise UnknownNameError(f"option of sensitivity kind {kind!r}", unknown[0], accepted)
    if "seed" in options:
        _check_seed(options["seed"])
    if options.get("progress") is not None and not callable(options["progress"]):
        raise InputError(f"progress must be a function progress(done, total) or None; got {options['progress']!r}")
    refuse_batch_statistics(model, "sensitivity", random=True)
    with blame(model, structure, f"sensitivity (kind {kind!r})"), exclusive(model), out_of_place(model):
        return KINDS[kind](model, structure, target, **options)


class _CallableModule(types.ModuleType):
    """``interp.sensitivity`` is both this module and the function :func:`sensitivity`."""

    def __call__(self, *args, **kwargs):
        return sensitivity(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["sensitivity", "spread", "NoiseSensitivity", "OcclusionSensitivity", "FeatureSweep", "LayerSensitivity",
           "ExplanationSensitivity", "KINDS", "DEFAULT_SCALES"]
