"""Compare two explanations side by side, on one colour scale, with the numbers that say
how far they agree: two methods or two LRP composites on the current sample, one method
on a pinned reference sample and the current one (as LIT pins a datapoint), or one method
on two models that take the same inputs (the zoo's LSTM and transformer read the same
sentences). Shared by the dashboard's Compare view and the library.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from scipy.stats import spearmanr

from .. import figures
from ..attribution import Attribution
from ..errors import InputError
from ..subject import Subject
from . import lrp
from . import saliency as sal
from .overview import sample_name

KINDS = (("methods", "two methods"), ("composites", "two LRP composites"),
         ("samples", "the pinned sample and this one"), ("models", "two models"))
LRP = "lrp:"  # an explanation named "lrp:<composite>" is that composite's relevance
TOP = 0.1     # the share of largest-magnitude positions whose overlap is reported


def explanations(subject: Subject) -> list[tuple[str, str]]:
    """(value, label) of what can explain ``subject``: its attribution methods, then LRP
    under each composite that fits its layers."""
    out = [(m, m) for m in sal.available_methods(subject)]
    return out + [(f"{LRP}{c}", f"LRP, {c}") for c in lrp.fitting_composites(subject)]


def explain(subject: Subject, index: int, what: str) -> Attribution:
    """Sample ``index`` of ``subject`` explained by ``what`` (a method, or ``lrp:<composite>``),
    for its default objective and target (the predicted class for classifiers)."""
    if what.startswith(LRP):
        return lrp.comparison(subject, index, what[len(LRP):], saliency=[]).attributions[0]
    usable = sal.available_methods(subject)
    if what not in usable:
        raise InputError(f"{subject.name} cannot be explained by {what!r}; expected one of {', '.join(usable)}")
    x, _, _ = sal.samples_of(subject, [index])
    return sal.explain_batch(subject, x[:1], [what])[0]


@dataclass(frozen=True)
class Pair:
    """Two explanations compared: the figure, and how far they agree."""

    figure: go.Figure
    spearman: float | None   # rank correlation of the values (same input shape only)
    top_overlap: float | None  # Jaccard overlap of the top ``TOP`` positions by magnitude
    sums: tuple[float, float]
    same_input: bool


def _first(a: Attribution) -> torch.Tensor:
    return a.values[0]


def pair(left: tuple[Subject, int, str], right: tuple[Subject, int, str], title: str | None = None) -> Pair:
    """Two (subject, sample index, explanation) side by side on one colour scale; the
    difference is drawn where both explain the same input."""
    (ls, li, lw), (rs, ri, rw) = left, right
    if ls.modality != rs.modality:
        raise InputError(f"{ls.name} takes {ls.modality} inputs and {rs.name} {rs.modality}: "
                         "nothing to set side by side")
    a, b = explain(ls, li, lw), explain(rs, ri, rw)
    xl, xr = ls.inputs[li], rs.inputs[ri]
    same = tuple(xl.shape) == tuple(xr.shape) and bool(torch.equal(xl, xr))
    names = [f"{ls.name if ls is not rs else ''} {sample_name(ls, li)} · {_label(lw)}".strip(),
             f"{rs.name if ls is not rs else ''} {sample_name(rs, ri)} · {_label(rw)}".strip()]
    fig = figures.attribution_pair([(xl, _first(a), names[0]), (xr, _first(b), names[1])], ls.modality,
                                   title=title, feature_names=ls.features, vocab=ls.vocab, difference=same)
    va, vb = _first(a).detach().float().reshape(-1).numpy(), _first(b).detach().float().reshape(-1).numpy()
    rho = overlap = None
    if va.shape == vb.shape and va.size > 1:
        if np.ptp(va) > 0 and np.ptp(vb) > 0:
            rho = float(spearmanr(va, vb).statistic)
        k = max(1, int(round(TOP * va.size)))
        ta, tb = set(np.argsort(-np.abs(va))[:k].tolist()), set(np.argsort(-np.abs(vb))[:k].tolist())
        overlap = len(ta & tb) / len(ta | tb)
    return Pair(fig, rho, overlap, (float(va.sum()), float(vb.sum())), same)


def _label(what: str) -> str:
    return f"LRP {what[len(LRP):]}" if what.startswith(LRP) else what


def text(p: Pair) -> str:
    """The numbers beside a pair, in one line."""
    parts = []
    if p.spearman is not None:
        parts.append(f"Spearman ρ {p.spearman:+.2f}")
    if p.top_overlap is not None:
        parts.append(f"top {TOP:.0%} positions overlap {p.top_overlap:.0%} (Jaccard)")
    parts.append(f"Σ {p.sums[0]:.4g} vs {p.sums[1]:.4g}")
    return " · ".join(parts) + (" · one colour scale for both" + ("; right − left beside" if p.same_input else ""))


__all__ = ["KINDS", "LRP", "explanations", "explain", "pair", "Pair", "text"]
