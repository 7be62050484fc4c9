"""Sensitivity of subjects: what each view asks of :func:`interp.sensitivity`, and its figures.

Every kind has two parts:

- **the selected sample**, computed when asked (well under a second on the zoo): its
  noise curve, its occlusion map (images, tokens) or its curve as one feature sweeps
  its range (tabular), each layer's response to noise on it, and the robustness of its
  explanations;
- **the test set**, computed in the dashboard's background with a progress bar and
  kept on disk by :mod:`interp.study.cache` (seconds): noise and accuracy curves, ICE curves
  with the partial dependence, the layer profile with ablation, and the explanation
  robustness table. Image and token occlusion has no test-set part: a map belongs to
  one sample. Token models are perturbed (and their explanations computed) in the space
  of their embeddings.

What is explained follows :mod:`interp.study.saliency`'s objectives (a class score; the
reconstruction error or a latent unit; the discriminator's real score). Noise is
scaled to the test set's spread in the space it is added to (the inputs, or for token
models the embeddings), so one σ means the same for a sample and for the test set.
Every run uses a fresh copy of the model (:func:`interp.study.saliency.fresh_model`), so the
long test-set runs share nothing with the dashboard's other views. Both faces
(dashboard and reports) call these functions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import plotly.graph_objects as go
import torch

from .. import figures
from .. import sensitivity as sensitivity_of
from ..errors import InputError, UnknownNameError
from ..sensitivity import spread
from ..subject import Subject
from . import cache
from . import lrp as study_lrp
from . import saliency as sal
from .overview import check_index, memo, population, sample_name

SAMPLE_DRAWS = 64          # noisy copies of the selected sample per noise scale
DATASET_DRAWS = 8          # ... of every sample
LAYER_SAMPLE_DRAWS = 32
LAYER_DATASET_DRAWS = 4
EXPLANATION_DRAWS = 10     # perturbations per sample for sensitivity_max and infidelity
EXPLANATION_SAMPLES = 64   # the first samples the robustness table is computed on
EXPLANATION_PIECE = 16     # ... this many per library call (see _explanations_in_pieces)
SWEEP_GRID = 20
SEED = 0
NOISE_LEVELS = (0.05, 0.1, 0.2, 0.5, 1.0)
ABLATIONS = ("mean", 0.5, 1.0)
PAD = "pad"                # the token baseline: the subject's padding token


@dataclass(frozen=True)
class Settings:
    """What a sensitivity view shows: the kind, what is explained (``objective``, one of
    its ``target``s) and the options of the kind."""

    kind: str = "noise"
    objective: str | None = None
    target: object = None
    baseline: str = "zero"        # occlusion: "zero", "mean", "blur" (images), "pad" (tokens)
    window: int | None = None     # occlusion: window size per position (None: the library's default)
    feature: int = 0              # tabular: the swept feature
    noise: float = 0.1            # layer: input noise, relative to the data's std
    ablate: object = "mean"       # layer: "mean", or noise of that size relative to the output's std


def kinds(subject: Subject) -> list[tuple[str, str]]:
    """(kind, label) of the kinds, as they apply to ``subject`` (tabular data is swept, not occluded)."""
    return [("noise", "input noise"),
            ("occlusion", "feature sweep" if subject.modality == "tabular" else "occlusion"),
            ("layer", "layers"), ("explanation", "explanations")]


def baselines(subject: Subject) -> list[tuple[str, str]]:
    """(value, label) of the occlusion baselines for ``subject``'s inputs."""
    modality = subject.modality
    if modality == "tokens":
        pad = [(PAD, f"padding token {subject.vocab[subject.pad_id]!r}")] if subject.pad_id is not None else []
        return [("zero", "zero embedding"), *pad]
    if modality == "image":
        return [("zero", "zero"), ("mean", "test-set mean"), ("blur", "blurred sample")]
    return [("zero", "zero"), ("mean", "test-set mean")]


def windows(subject: Subject) -> list[int | None]:
    """Occlusion window sizes offered for ``subject`` (None: the library's default)."""
    x = subject.inputs
    if subject.modality == "tokens":
        return [None, 2, 3, 4]
    if subject.modality == "image":
        return [None] + [w for w in (1, 2, 3, 4, 6) if w <= min(x.shape[-2:])]
    return [None]


def objectives(subject: Subject) -> list[sal.Objective]:
    return sal.objectives(subject)


def settings(subject: Subject, **given) -> Settings:
    """Checked settings for ``subject`` (defaults where not given); an InterpError names any
    setting that does not apply."""
    s = Settings(**given)
    known = dict(kinds(subject))
    if s.kind not in known:
        raise UnknownNameError(f"sensitivity kind for {subject.name}", s.kind, known)
    obj = sal.objective(subject, s.objective)
    target = sal.check_target(subject, obj, s.target)
    if s.baseline not in dict(baselines(subject)):
        raise UnknownNameError(f"occlusion baseline for {subject.name}", s.baseline, dict(baselines(subject)))
    if s.window not in windows(subject):
        raise InputError(f"occlusion window {s.window!r} is not offered for {subject.name}; expected one of "
                         f"{windows(subject)}")
    n_features = subject.inputs.shape[1] if subject.modality == "tabular" else 0
    if n_features and not (isinstance(s.feature, int) and 0 <= s.feature < n_features):
        raise InputError(f"feature must be an index in [0, {n_features - 1}]; got {s.feature!r}")
    if s.noise not in NOISE_LEVELS:
        raise InputError(f"noise {s.noise!r} is not offered; expected one of {NOISE_LEVELS}")
    if s.ablate not in ABLATIONS:
        raise InputError(f"ablate {s.ablate!r} is not offered; expected one of {ABLATIONS}")
    return dataclasses.replace(s, objective=obj.key, target=target)


def data_std(subject: Subject, key: str) -> float:
    """The test set's spread in the space noise is added to (inputs, or embeddings)."""
    def compute():
        return spread(sal.fresh_model(subject, key), population(subject))

    return memo(subject, f"sensitivity-std-{key}", compute)


def _labels(subject: Subject, s: Settings, rows: slice):
    """Labels for accuracy, where the model classifies and the class score is explained."""
    labels = subject.labels
    return labels[rows] if labels is not None and subject.is_classifier and s.objective == "class" else None


def _measure(s: Settings) -> str:
    """How layer ablation is rated: by the prediction for class scores, else by how far
    the explained score moves (a latent unit or an error has no prediction to keep)."""
    return "prediction" if s.objective == "class" else "score"


def objective_of(subject: Subject, s: Settings) -> str:
    """What ``s`` explains, in words."""
    obj = sal.objective(subject, s.objective)
    if obj.key == "class":
        return "predicted class score" if s.target == "predicted" else f"score of class {subject.classes[s.target]}"
    return obj.label + (f" (unit {s.target})" if obj.key == "latent" else
                        f" {s.target}" if obj.key == "output" and len(obj.targets) > 1 else "")


def _occlusion_options(subject: Subject, s: Settings) -> tuple[object, str]:
    """The occlusion fill for the library, and its name: the test-set mean is a tensor
    (one sample's own mean would occlude it with itself), the pad token its id."""
    if s.baseline == "mean":
        return population(subject).mean(0), "test-set mean"
    if s.baseline == PAD:
        return subject.pad_id, f"padding token {subject.vocab[subject.pad_id]!r}"
    return s.baseline, s.baseline


# ---------------------------------------------------------------------------- the selected sample

def sample_result(subject: Subject, index: int, s: Settings):
    """The sensitivity result of sample ``index`` for settings ``s``."""
    index = check_index(subject, index)
    model = sal.fresh_model(subject, s.objective)
    rows = slice(index, index + 1)
    x = subject.inputs[rows]
    std = data_std(subject, s.objective)
    if s.kind == "noise":
        return sensitivity_of(model, x, s.target, kind="noise", draws=SAMPLE_DRAWS, std=std,
                                  labels=_labels(subject, s, rows), seed=SEED)
    if s.kind == "occlusion":
        if subject.modality == "tabular":
            return sensitivity_of(model, x, s.target, kind="occlusion", feature=s.feature,
                                      grid=_sweep_grid(subject, s.feature))
        fill, name = _occlusion_options(subject, s)
        r = sensitivity_of(model, x, s.target, kind="occlusion", window=s.window, baseline=fill)
        return dataclasses.replace(r, baseline=name)
    if s.kind == "layer":  # one sample has no batch mean to ablate with: its layers are perturbed instead
        return sensitivity_of(model, x, s.target, kind="layer", noise=s.noise, draws=LAYER_SAMPLE_DRAWS,
                                  std=std, labels=_labels(subject, s, rows), seed=SEED,
                                  ablate=1.0 if s.ablate == "mean" else s.ablate, measure=_measure(s))
    return sensitivity_of(model, x, s.target, kind="explanation", **_explanation_options(subject, s), std=std)


def _sweep_grid(subject: Subject, feature: int) -> torch.Tensor:
    """The feature's observed range over the test set, so a sample's curve and the test
    set's share one grid."""
    column = population(subject)[:, feature]
    return torch.linspace(float(column.min()), float(column.max()), SWEEP_GRID, dtype=column.dtype)


def _own_names(subject: Subject, s: Settings, r):
    """A layer result with the subject's module names (as every view names them), not the
    explained wrapper's (``model.encoder.mu`` for the VAE's reconstruction error)."""
    layers = getattr(r, "layers", None)
    names = sal.own_names(subject, s.objective) if isinstance(layers, tuple) else {}
    return dataclasses.replace(r, layers=tuple(names.get(n, n) for n in layers)) if names else r


def sample_figure(subject: Subject, index: int, s: Settings) -> go.Figure:
    """The figure of sample ``index`` for settings ``s``."""
    r = _own_names(subject, s, sample_result(subject, index, s))
    what = objective_of(subject, s)
    x = subject.inputs
    if s.kind == "noise":
        return figures.noise_curves(r, sample=0,
                                    title=f"How the {what} of {sample_name(subject, index)} moves under input noise",
                                    predictions=_several_outputs(r))
    if s.kind == "occlusion":
        if subject.modality == "tabular":
            return figures.ice_curves(r, _feature_name(subject, s.feature), highlight=0,
                                      feature_value=float(x[index, s.feature]),
                                      title=f"Sample {index}: the {what} as {_feature_name(subject, s.feature)} "
                                      "sweeps its test-set range")
        return figures.occlusion_view(x[index:index + 1], r, subject.modality, 0,
                                      title=f"Occlusion, {sample_name(subject, index)}",
                                      feature_names=subject.features, vocab=subject.vocab)
    if s.kind == "layer":
        return figures.layer_profile(r, title=f"Layer sensitivity of {sample_name(subject, index)}")
    return figures.explanation_robustness(r, title=f"Robustness of the explanations of {sample_name(subject, index)}")


def _several_outputs(r) -> bool:
    """Whether the explained model has several outputs, so that its prediction (an argmax)
    can change under noise: a noise result has a probability change exactly then. With one
    output (a discriminator's real score, a reconstruction error) the share of unchanged
    predictions is 100% at every scale, a line that would only look like robustness."""
    return r.probability_change is not None


def _feature_name(subject: Subject, feature: int) -> str:
    names = subject.features
    return names[feature] if names else f"feature {feature}"


# ---------------------------------------------------------------------------- the test set

def _explanation_options(subject: Subject, s: Settings) -> dict:
    """Every attribution method that applies, and the subject's default LRP composite where
    LRP can explain the objective (not the reconstruction error) at perturbed inputs (not
    token models, perturbed in their embedding space, where the LRP engine does not start)."""
    lrp_applies = s.objective not in study_lrp.NOT_FOR_LRP and subject.modality != "tokens"
    composites = (study_lrp.default_composite(subject),) if lrp_applies else ()
    return {"methods": tuple(sal.available_methods(subject)), "composites": composites,
            "draws": EXPLANATION_DRAWS, "seed": SEED}


def dataset_request(subject: Subject, s: Settings) -> dict | None:
    """What the test-set part of ``s`` computes, as JSON values (the cache key), or None
    when the kind has none (occlusion of images and tokens)."""
    base = {"kind": s.kind, "objective": s.objective, "target": s.target, "seed": SEED}
    if s.kind == "noise":
        return {**base, "draws": DATASET_DRAWS, "scales": list(sensitivity_of.DEFAULT_SCALES)}
    if s.kind == "occlusion":
        if subject.modality != "tabular":
            return None
        return {**base, "feature": s.feature, "grid": SWEEP_GRID}
    if s.kind == "layer":
        return {**base, "noise": s.noise, "ablate": s.ablate, "draws": LAYER_DATASET_DRAWS}
    opts = _explanation_options(subject, s)
    return {**base, "samples": EXPLANATION_SAMPLES, "methods": list(opts["methods"]),
            "composites": list(opts["composites"]), "draws": EXPLANATION_DRAWS}


def dataset_label(subject: Subject, s: Settings) -> str:
    """What the test-set part computes, in words (for progress bars)."""
    n = len(subject.inputs)
    return {"noise": f"noise curves over the {n} samples",
            "occlusion": f"ICE curves of {_feature_name(subject, s.feature)} over the {n} samples",
            "layer": f"layer profile over the {n} samples",
            "explanation": f"explanation robustness on the first {min(n, EXPLANATION_SAMPLES)} samples",
            }[s.kind]


def dataset_cached(subject: Subject, s: Settings):
    """The test-set result of ``s`` if it is already on disk (or in memory), else None."""
    request = dataset_request(subject, s)
    return None if request is None else cache.cached(subject, request)


def dataset_result(subject: Subject, s: Settings, progress=None):
    """The test-set result of ``s`` (None for kinds without one), from the cache or computed;
    ``progress(done, total)`` follows the computation."""
    request = dataset_request(subject, s)
    if request is None:
        return None
    return cache.result(subject, request, lambda: _compute(subject, s, progress))


def _compute(subject: Subject, s: Settings, progress):
    model = sal.fresh_model(subject, s.objective)
    x = subject.inputs
    everything = slice(None)
    std = data_std(subject, s.objective)
    if s.kind == "noise":
        return sensitivity_of(model, x, s.target, kind="noise", draws=DATASET_DRAWS, std=std,
                                  labels=_labels(subject, s, everything), seed=SEED, progress=progress)
    if s.kind == "occlusion":
        return sensitivity_of(model, x, s.target, kind="occlusion", feature=s.feature,
                                  grid=_sweep_grid(subject, s.feature), progress=progress)
    if s.kind == "layer":
        return sensitivity_of(model, x, s.target, kind="layer", noise=s.noise, draws=LAYER_DATASET_DRAWS,
                                  std=std, labels=_labels(subject, s, everything), seed=SEED, ablate=s.ablate,
                                  measure=_measure(s), progress=progress)
    return _explanations_in_pieces(model, x[:EXPLANATION_SAMPLES], s, _explanation_options(subject, s), std,
                                   progress)


def _explanations_in_pieces(model, x: torch.Tensor, s: Settings, options: dict, std: float, progress):
    """The explanation kind over ``x``, EXPLANATION_PIECE samples per call (piece k seeded
    ``seed + k``), joined: the samples are independent, and between calls the model's
    analysis lock is free, so the dashboard's other views of it do not wait seconds."""
    pieces = [x[i:i + EXPLANATION_PIECE] for i in range(0, len(x), EXPLANATION_PIECE)]
    steps = len(options["methods"]) + len(options["composites"])
    done = []
    for k, piece in enumerate(pieces):
        tick = None if progress is None else (lambda d, _t, k=k: progress(k * steps + d, len(pieces) * steps))
        done.append(sensitivity_of(model, piece, s.target, kind="explanation",
                                       **{**options, "seed": options["seed"] + k}, std=std, progress=tick))
    return dataclasses.replace(done[0], sensitivity_max=torch.cat([r.sensitivity_max for r in done], 1),
                               infidelity=torch.cat([r.infidelity for r in done], 1),
                               target=torch.cat([r.target for r in done]))


def dataset_figure(subject: Subject, s: Settings, result, index: int | None = None) -> go.Figure:
    """The figure of a test-set result; ``index``: a sample to pick out (ICE curves)."""
    result = _own_names(subject, s, result)
    what = objective_of(subject, s)
    n = len(subject.inputs)
    if s.kind == "noise":
        return figures.noise_curves(result, title=f"How the {what} moves under input noise, {n} samples",
                                    predictions=_several_outputs(result))
    if s.kind == "occlusion":
        name = _feature_name(subject, s.feature)
        return figures.ice_curves(result, name, highlight=index,
                                  feature_value=None if index is None else float(subject.inputs[index, s.feature]),
                                  title=f"The {what} as {name} sweeps its range, {n} samples")
    if s.kind == "layer":
        return figures.layer_profile(result, title=f"Layer sensitivity over {n} samples")
    return figures.explanation_robustness(result, title="Robustness of explanations")


# ---------------------------------------------------------------------------- reports

def strongest_feature(subject: Subject, s: Settings) -> int:
    """The tabular feature whose sweep moves the target score most (mean over the test
    samples of each ICE curve's range)."""
    def compute():
        model = sal.fresh_model(subject, s.objective)
        x = subject.inputs
        ranges = []
        for f in range(x.shape[1]):
            r = sensitivity_of(model, x, s.target, kind="occlusion", feature=f, grid=_sweep_grid(subject, f))
            ranges.append(float((r.curves.max(1).values - r.curves.min(1).values).mean()))
        return max(range(len(ranges)), key=ranges.__getitem__)

    return memo(subject, f"sensitivity-strongest-{s.objective}-{s.target}", compute)


def report_figures(subject: Subject, indices) -> dict[str, go.Figure]:
    """The report's sensitivity figures for the default objective and target: test-set
    noise curves, the occlusion maps of samples ``indices`` (tabular: the ICE curves
    of the strongest feature), the layer profile and the explanation robustness table."""
    base = settings(subject)
    out = {"noise": dataset_figure(subject, base, dataset_result(subject, base))}
    if subject.modality == "tabular":
        sweep = dataclasses.replace(base, kind="occlusion", feature=strongest_feature(subject, base))
        out["sweep"] = dataset_figure(subject, sweep, dataset_result(subject, sweep), indices[0] if indices else None)
    else:
        occlusion = dataclasses.replace(base, kind="occlusion")
        for i in indices:
            out[f"occlusion-{i}"] = sample_figure(subject, i, occlusion)
    layer = dataclasses.replace(base, kind="layer")
    out["layer"] = dataset_figure(subject, layer, dataset_result(subject, layer))
    explanation = dataclasses.replace(base, kind="explanation")
    out["explanation"] = dataset_figure(subject, explanation, dataset_result(subject, explanation))
    return out


__all__ = ["Settings", "objective_of", "strongest_feature", "report_figures", "kinds", "baselines", "windows",
           "objectives", "settings", "data_std", "sample_result", "sample_figure", "dataset_request",
           "dataset_label", "dataset_cached", "dataset_result", "dataset_figure", "NOISE_LEVELS", "ABLATIONS"]
