"""Figures of :mod:`interp.evaluation`: how far each explanation can be trusted.

- :func:`perturbation_curves`: deletion or insertion curves, one per method, with the
  random order beside them (mean over samples with a band of ± the spread, or one sample);
- :func:`randomisation_curves`: the similarity to the original explanation as the layers
  are re-initialised from the top (a method that stays near 1 ignores the model);
- :func:`leaderboard`: per metric, the methods as bars sorted best first, the spread over
  samples as error bars, random order in grey;
- :func:`agreement_matrix`: the methods × methods rank correlation.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import InputError
from ..evaluation import METRICS, Evaluation
from ._style import ACCENT, DIVERGING_SCALE, finish

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
RANDOM = "#7f7f7f"
LOWER_IS_BETTER = ("deletion", "randomisation")


def _check(result) -> Evaluation:
    if not isinstance(result, Evaluation):
        raise InputError(f"expected an interp.evaluation.Evaluation; got {type(result).__name__}")
    return result


def _rgba(color: str, alpha: float) -> str:
    c = color.lstrip("#")
    return f"rgba({int(c[0:2], 16)}, {int(c[2:4], 16)}, {int(c[4:6], 16)}, {alpha})"


def perturbation_curves(result: Evaluation, mode: str = "deletion", sample: int | None = None,
                        title: str | None = None) -> go.Figure:
    """The ``mode`` curve of every method (the target's probability as the most relevant
    units are removed, or added to the baseline), the random order dashed in grey; the mean
    over samples with a band of ± the spread, or ``sample``'s own curves. The legend gives
    each curve's area."""
    _check(result)
    curves = {m: c for (m, k), c in result.curves.items() if k == mode}
    if not curves:
        raise InputError(f"this evaluation has no {mode} curves; evaluate with metrics=[{mode!r}]")
    fig = go.Figure()
    first = next(iter(curves.values()))
    x = first.fractions.numpy()
    n = first.values.shape[0]
    if sample is not None and not 0 <= sample < n:
        raise InputError(f"sample {sample} is outside the {n} samples evaluated")

    def add(values: np.ndarray, name: str, color: str, dash: str | None = None):
        centre = values.mean(0) if sample is None else values[sample]
        area = float(((centre[1:] + centre[:-1]) / 2).mean())
        if sample is None and len(values) > 1 and dash is None:  # the random order's band would hide the rest
            spread = values.std(0)
            fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]),
                                     y=np.concatenate([centre + spread, (centre - spread)[::-1]]).clip(min=0),
                                     fill="toself", fillcolor=_rgba(color, 0.08), line=dict(width=0),
                                     hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=centre, mode="lines+markers", name=f"{name} (area {area:.3f})",
                                 line=dict(color=color, width=2, dash=dash),
                                 hovertemplate=f"{name}<br>%{{x:.0%}} {'removed' if mode == 'deletion' else 'added'}"
                                               "<br>%{y:.3f}<extra></extra>"))

    for i, (method, c) in enumerate(curves.items()):
        add(c.values.numpy(), method, PALETTE[i % len(PALETTE)])
    add(first.random.numpy(), "random order", RANDOM, "dash")
    verb = "removed (most relevant first)" if mode == "deletion" else "added to the baseline (most relevant first)"
    fig.update_xaxes(title=f"share of the input's units {verb}", tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title=f"target {first.measure}", rangemode="tozero")
    who = f"sample {sample}" if sample is not None else f"mean ± spread over {n} samples"
    better = "a faster drop is more faithful" if mode == "deletion" else "a faster rise is more faithful"
    sub = f"baseline: {first.baseline}; {who}; {better}"
    return finish(fig, f"{title or mode.capitalize() + ' curves'}<br><sup>{sub}</sup>", height=440,
                  margin=dict(l=60, r=20, t=80, b=50), legend=dict(orientation="h", y=-0.2, x=0))


def randomisation_curves(result: Evaluation, title: str | None = None) -> go.Figure:
    """Per method, the similarity between its explanation of the model and of the model with
    its layers re-initialised from the top, one more layer at each step (Adebayo et al.
    2018): a method that passes falls towards 0; one that stays near 1 does not depend on
    the model's parameters."""
    _check(result)
    if not result.randomisations:
        raise InputError("this evaluation has no randomisation check; evaluate with metrics=['randomisation']")
    fig = go.Figure()
    for i, (method, r) in enumerate(result.randomisations.items()):
        s = r.similarity.numpy()
        x = list(range(1, len(r.layers) + 1))
        centre, spread = s.mean(1), s.std(1)
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=x, y=centre, mode="lines+markers", name=method, line=dict(color=color, width=2),
                                 error_y=dict(type="data", array=spread, visible=True, thickness=1),
                                 customdata=list(r.layers),
                                 hovertemplate=method + "<br>up to %{customdata}<br>%{y:.3f}<extra></extra>"))
    layers = next(iter(result.randomisations.values())).layers
    fig.update_xaxes(title="layers re-initialised, from the top", tickvals=list(range(1, len(layers) + 1)),
                     ticktext=list(layers))
    measure = next(iter(result.randomisations.values())).measure
    fig.update_yaxes(title=f"similarity to the original ({measure})", range=[-0.2, 1.05])
    fig.add_hline(y=0, line=dict(color=RANDOM, width=1, dash="dot"))
    return finish(fig, f"{title or 'Model randomisation'}<br><sup>lower after randomisation passes the sanity "
                       "check</sup>", height=420, margin=dict(l=60, r=20, t=80, b=60))


def leaderboard(result: Evaluation, metrics=None, title: str | None = None) -> go.Figure:
    """Per metric, the methods as horizontal bars sorted best first (lower is better for
    deletion and randomisation, higher for the others), ± the spread over samples, random
    order in grey."""
    _check(result)
    metrics = [m for m in (metrics or result.metrics) if any(k == m for _, k in result.per_sample)]
    if not metrics:
        raise InputError("this evaluation has no metric to rank methods by")
    longest = max(len(m) for m in result.methods)
    n = len(result.methods)
    fig = make_subplots(rows=len(metrics), cols=1, subplot_titles=[_metric_title(m) for m in metrics],
                        vertical_spacing=min(0.12, 0.5 / len(metrics)))
    fig.update_annotations(font_size=12)
    for col, metric in enumerate(metrics, start=1):
        rows = result.leaderboard(metric)[::-1]  # best at the top
        names = [r[0] for r in rows]
        means = [r[1] for r in rows]
        spread = [float(result.per_sample[(n, metric)].float().std()) if len(result.per_sample[(n, metric)]) > 1
                  else 0.0 for n in names]
        colors = [RANDOM if n == "random" else ACCENT for n in names]
        fig.add_trace(go.Bar(x=means, y=names, orientation="h", marker_color=colors, showlegend=False,
                             error_x=dict(type="data", array=spread, visible=True, thickness=1),
                             text=[f"{v:.3f}" for v in means], textposition="outside", cliponaxis=False,
                             hovertemplate="%{y}<br>" + metric + " %{x:.4f}<extra></extra>"), row=col, col=1)
    return finish(fig, title or "Which explanation to trust", height=70 + len(metrics) * (50 + 22 * n),
                  margin=dict(l=8 * longest + 20, r=60, t=70, b=30))


def _metric_title(metric: str) -> str:
    arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
    return f"{metric.replace('_', ' ')} {arrow}"


def agreement_matrix(result: Evaluation, title: str | None = None) -> go.Figure:
    """The methods × methods mean rank correlation of their explanations over the samples:
    where methods disagree, at most one of them can be right."""
    _check(result)
    if result.agreement is None:
        raise InputError("agreement needs at least two methods")
    names = [m for m in result.methods if m != "random"]
    z = result.agreement.numpy()
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, zmin=-1, zmax=1, zmid=0, colorscale=DIVERGING_SCALE,
                               text=[[f"{v:.2f}" for v in row] for row in z], texttemplate="%{text}",
                               hovertemplate="%{y} vs %{x}<br>rank correlation %{z:.3f}<extra></extra>",
                               colorbar=dict(title="ρ")))
    fig.update_yaxes(autorange="reversed")
    side = 140 + 60 * len(names)
    return finish(fig, title or "Agreement between methods (Spearman, mean over samples)", height=side,
                  margin=dict(l=130, r=20, t=50, b=100))


__all__ = ["perturbation_curves", "randomisation_curves", "leaderboard", "agreement_matrix", "METRICS"]
