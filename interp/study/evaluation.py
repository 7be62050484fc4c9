"""How far to trust each explanation of a subject: what the Evaluation view and the reports show.

Two parts, as in the sensitivity study:

- **the selected sample**, computed when asked (about a second on the zoo): the deletion
  or insertion curve of every method for that sample, with the random order beside it;
- **the test set**, computed in the dashboard's background with a progress bar and kept
  on disk by :mod:`interp.study.cache`: every method that applies (the attribution
  methods, the LRP composites that fit the model) scored on the first ``SAMPLES`` samples
  by deletion, insertion and AOPC, by the ground-truth metrics where the subject has
  masks, and by cascading model randomisation on the first ``RANDOMISED_SAMPLES``
  (each step recomputes every explanation, so it runs on fewer), with the agreement
  between methods. Its figures are the leaderboard (sortable, bars with the spread), the
  mean curves, the sanity-check curves with example maps and the agreement matrix.

What is explained is the subject's own objective (:mod:`interp.study.saliency`): a class
score, a regression output, an autoencoder's reconstruction error (attribution methods
only: LRP rules do not cover its square), a discriminator's real score. The numbers
come from :func:`interp.evaluate`; the drawing from :mod:`interp.figures`. Both faces
call these functions.
"""

from __future__ import annotations

import dataclasses
import threading

import plotly.graph_objects as go
import torch

from .. import evaluation as E
from .. import figures
from ..errors import InputError, UnknownNameError
from ..hashing import tensor_fingerprint
from ..subject import Subject
from . import cache
from . import lrp as study_lrp
from . import saliency as sal
from .overview import check_index, memo, sample_name

SAMPLES = 200            # the test samples every method is scored on
RANDOMISED_SAMPLES = 32  # ... of which the randomisation check explains again after each layer
STEPS = 10
SEED = 0
PAD = "pad"


def objective(subject: Subject) -> sal.Objective:
    """What is explained: the subject's own objective."""
    return sal.objectives(subject)[0]


def baselines(subject: Subject) -> list[tuple[str, str]]:
    """(value, label) of the removal baselines that fit ``subject``'s inputs."""
    if subject.modality == "tokens":
        pad = subject.pad_id if subject.pad_id is not None else 0
        name = f" {subject.vocab[pad]!r}" if subject.vocab and pad < len(subject.vocab) else ""
        return [(PAD, f"padding token{name} (id {pad})")]
    if subject.modality == "image":
        return [("zero", "zero"), ("mean", "test-set mean"), ("blur", "blurred sample"),
                ("road", "ROAD: noisy linear imputation")]
    return [("zero", "zero"), ("mean", "test-set mean"), ("noise", "noise like the data")]


def check_baseline(subject: Subject, baseline: str | None) -> str:
    options = dict(baselines(subject))
    if baseline is None:
        return next(iter(options))
    if baseline not in options:
        raise UnknownNameError(f"removal baseline for {subject.name}", baseline, options)
    return baseline


def _baseline_value(subject: Subject, baseline: str):
    if baseline == PAD:
        return subject.pad_id if subject.pad_id is not None else 0
    return baseline


def methods(subject: Subject) -> list[str]:
    """Every method that applies to ``subject``: the attribution methods, then every LRP
    composite that fits its layers (the subject's default, epsilon and LRP-0 everywhere; the
    composites with convolution rules where it has convolutions, where on a dense model
    they would repeat epsilon; AttnLRP and CP-LRP where it attends)."""
    def compute():
        names = list(sal.available_methods(subject))
        if objective(subject).key in study_lrp.NOT_FOR_LRP:
            return tuple(names)
        return tuple(names + [f"lrp:{c}" for c in study_lrp.fitting_composites(subject)])

    return list(memo(subject, "evaluation-methods", compute))


def metrics(subject: Subject) -> list[str]:
    """The metrics scored for ``subject``: faithfulness, the ground truth where it has masks,
    the randomisation check."""
    truth = list(E.TRUTH_METRICS) if subject.truth is not None else []
    return ["deletion", "insertion", "aopc", *truth, "randomisation"]


def request(subject: Subject, baseline: str | None = None) -> dict:
    """What the test-set evaluation computes, as JSON values (the cache key)."""
    baseline = check_baseline(subject, baseline)
    return {"kind": "evaluation", "objective": objective(subject).key, "baseline": baseline,
            "samples": min(SAMPLES, len(subject.inputs)), "randomised": RANDOMISED_SAMPLES, "steps": STEPS,
            "methods": methods(subject), "metrics": metrics(subject), "measure": _measure(subject), "seed": SEED,
            # besides the inputs and labels (in every request): what the scores also read
            "truth": memo(subject, "truth-fingerprint", lambda: _fingerprint(subject.truth)),
            "reference": memo(subject, "reference-fingerprint", lambda: _fingerprint(_reference(subject)))}


def _fingerprint(t: torch.Tensor | None) -> str | None:
    return None if t is None else tensor_fingerprint(t)


def label(subject: Subject, baseline: str | None = None) -> str:
    """What the test-set evaluation computes, in words (for progress bars)."""
    n = min(SAMPLES, len(subject.inputs))
    removal = dict(baselines(subject))[check_baseline(subject, baseline)]
    return f"{len(methods(subject))} methods scored on {n} samples, removal baseline: {removal}"


def cached(subject: Subject, baseline: str | None = None) -> E.Evaluation | None:
    """The test-set evaluation if it is already on disk (or in memory), else None."""
    return cache.cached(subject, request(subject, baseline))


def result(subject: Subject, baseline: str | None = None, progress=None) -> E.Evaluation:
    """The test-set evaluation, from the cache or computed; ``progress(done, total)``
    follows the computation."""
    baseline = check_baseline(subject, baseline)
    return cache.result(subject, request(subject, baseline), lambda: _compute(subject, baseline, progress))


def _compute(subject: Subject, baseline: str, progress) -> E.Evaluation:
    key = objective(subject).key
    model = sal.fresh_model(subject, key)
    n = min(SAMPLES, len(subject.inputs))
    x = subject.inputs[:n]
    truth = subject.truth[:n] if subject.truth is not None else None
    names = methods(subject)
    scored = [m for m in metrics(subject) if m != "randomisation"]
    total = 2 * len(names)
    tick = progress or (lambda done, total: None)
    ev = E.evaluate(model, x, methods=names, metrics=scored, truth=truth, target=_target(subject), seed=SEED,
                    steps=STEPS, baseline=_baseline_value(subject, baseline), reference=_reference(subject),
                    measure=_measure(subject), progress=lambda done, of: tick(done * len(names) // of, total))
    per_sample, randomised = dict(ev.per_sample), {}
    for i, name in enumerate(names):
        r = E.randomisation(model, x[:RANDOMISED_SAMPLES], _target(subject), name, seed=SEED, measure="spearman")
        randomised[name] = r
        per_sample[(name, "randomisation")] = r.final
        tick(len(names) + i + 1, total)
    return dataclasses.replace(ev, metrics=ev.metrics + ("randomisation",), per_sample=per_sample,
                               randomisations=randomised)


def _target(subject: Subject):
    """The prediction of a classifier, else the first (often only) output."""
    return "predicted" if objective(subject).key == "class" else 0


def _measure(subject: Subject) -> str:
    """A classifier's curves follow the target's probability; any other score (a regression
    output, a reconstruction error, a discriminator's logit) is followed as it is."""
    return "probability" if objective(subject).key == "class" else "score"


def _reference(subject: Subject) -> torch.Tensor | None:
    return subject.reference if subject.modality != "tokens" else None


# ---------------------------------------------------------------------------- the selected sample

MODES = ("deletion", "insertion")


def sample_result(subject: Subject, index: int, baseline: str | None = None) -> E.Evaluation:
    """Deletion and insertion curves of every method for sample ``index`` (seconds: every
    method, then a forward per step). Not kept here: one per sample would grow without
    bound; the dashboard keeps the figures in its view cache (bounded, and on disk)."""
    index = check_index(subject, index)
    baseline = check_baseline(subject, baseline)
    model = sal.fresh_model(subject, objective(subject).key)
    return E.evaluate(model, subject.inputs[index:index + 1], methods=methods(subject),
                      metrics=list(MODES), target=_target(subject), seed=SEED, steps=STEPS,
                      baseline=_baseline_value(subject, baseline), reference=_reference(subject),
                      measure=_measure(subject))


def sample_figures(subject: Subject, index: int, baseline: str | None = None) -> dict[str, go.Figure]:
    """The deletion and insertion curves of sample ``index``, keyed by mode, from one evaluation."""
    ev = sample_result(subject, index, baseline)
    return {mode: figures.perturbation_curves(ev, mode, sample=0,
                                              title=f"{mode.capitalize()} curves of {sample_name(subject, index)}")
            for mode in MODES}


def sample_figure(subject: Subject, index: int, mode: str = "deletion", baseline: str | None = None) -> go.Figure:
    if mode not in MODES:
        raise UnknownNameError("curve", mode, MODES)
    return sample_figures(subject, index, baseline)[mode]


# ---------------------------------------------------------------------------- figures of the test set

_DRAWING = threading.Lock()


def dataset_figures(subject: Subject, ev: E.Evaluation, mode: str = "deletion") -> dict[str, go.Figure]:
    """The test set's figures: leaderboard, mean curves of ``mode``, the randomisation check
    (curves and example maps) and the agreement matrix. Drawn once per result and mode (about
    a second for thirteen methods): the dashboard asks again on every poll that lands while
    they are drawn, and a second asker waits for the first drawing instead of repeating it."""
    if not isinstance(ev, E.Evaluation):
        raise InputError(f"expected an Evaluation; got {type(ev).__name__}")
    if mode not in ("deletion", "insertion"):
        raise UnknownNameError("curve", mode, ("deletion", "insertion"))
    key = ("evaluation-figures", id(ev), mode)
    with _DRAWING:
        drawn = subject.memo.get(key)
        if drawn is None or drawn[0] is not ev:  # the result kept beside them: its id is not reused
            drawn = subject.memo[key] = (ev, _draw(subject, ev, mode))
    return dict(drawn[1])


def _draw(subject: Subject, ev: E.Evaluation, mode: str) -> dict[str, go.Figure]:
    n = len(next(iter(ev.per_sample.values())))
    out = {"leaderboard": figures.leaderboard(ev, title=f"Which explanation to trust · {subject.name}, "
                                                        f"{n} samples"),
           "curves": figures.perturbation_curves(ev, mode)}
    if ev.randomisations:
        out["randomisation"] = figures.randomisation_curves(ev)
        out["randomisation-maps"] = figures.randomisation_maps(ev, image=subject.modality == "image",
                                                               labels=_unit_labels(subject))
    if ev.agreement is not None:
        out["agreement"] = figures.agreement_matrix(ev)
    return out


def _unit_labels(subject: Subject) -> list[str] | None:
    if subject.modality == "tabular" and subject.features:
        return list(subject.features)
    if subject.modality == "tokens" and subject.vocab:  # by position: a word may come twice
        return [f"{i}: {subject.vocab[int(t)]}" for i, t in enumerate(subject.inputs[0])]
    return None


def zoo_figure(evaluations: dict[str, E.Evaluation], metric: str = "deletion") -> go.Figure:
    """Across subjects (``{name: Evaluation}``), each method's place by ``metric`` per subject."""
    return figures.zoo_leaderboard(evaluations, metric)


__all__ = ["objective", "baselines", "check_baseline", "methods", "metrics", "request", "label", "cached", "result",
           "sample_result", "sample_figure", "sample_figures", "dataset_figures", "zoo_figure", "SAMPLES",
           "RANDOMISED_SAMPLES", "MODES"]
