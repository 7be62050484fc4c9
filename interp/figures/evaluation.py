"""Figures of :mod:`interp.evaluation`: how far each explanation can be trusted.

- :func:`perturbation_curves`: deletion or insertion curves, one per method, with the
  random order beside them (mean over samples with a band of ± the spread, or one sample);
- :func:`randomisation_curves`: the similarity to the original explanation as the layers
  are re-initialised from the top (a method that stays near 1 ignores the model);
- :func:`randomisation_maps`: the first sample's explanation as the layers are re-initialised;
- :func:`leaderboard`: a sortable table with small bars, a row per method, a column per
  metric, the spread over samples as error bars (stopping at 0 for a metric no sample
  scored below 0), random order in grey;
- :func:`zoo_leaderboard`: each method's place per model, across models;
- :func:`agreement_matrix`: the methods × methods rank correlation.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..errors import InputError
from ..evaluation import METRICS, Evaluation
from ._style import ACCENT, COLORBAR, DIVERGING_SCALE, LABEL_FONT, error_bars, finish, fit_labels, label_px

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
                                 error_y=error_bars(centre, spread, (s >= 0).all(), thickness=1),
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
    """A sortable table with small bars: a row per method, a column per metric (its mean over
    samples as a bar with the spread as an error bar, the value beside it), random order in
    grey; the menu above sorts the rows by any metric, best first (lower is better for
    deletion and randomisation, higher for the others). A plain figure, so it sorts in a
    static report as in the dashboard."""
    _check(result)
    metrics = [m for m in (metrics or result.metrics) if any(k == m for _, k in result.per_sample)]
    if not metrics:
        raise InputError("this evaluation has no metric to rank methods by")
    names = list(result.methods)

    def order(metric: str) -> list[str]:
        board = [m for m, _ in result.leaderboard(metric)]
        return board + [m for m in names if m not in board]

    # rows at numeric positions, so that sorting moves bars by restyling their positions (a
    # category axis does not follow a new category order given by relayout)
    columns = [[m for m in names if (m, metric) in result.per_sample] for metric in metrics]

    def positions(metric: str) -> list[list[int]]:
        place = {m: i for i, m in enumerate(order(metric))}
        return [[place[m] for m in rows] for rows in columns]

    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True, horizontal_spacing=0.02,
                        subplot_titles=[_metric_title(m) for m in metrics])
    fig.update_annotations(font_size=12)
    first = positions(metrics[0])
    for col, (metric, rows) in enumerate(zip(metrics, columns), start=1):
        values = [result.per_sample[(m, metric)].float() for m in rows]
        means = [float(v.mean()) for v in values]
        spread = [float(v.std()) if len(v) > 1 else 0.0 for v in values]
        non_negative = all(bool((v >= 0).all()) for v in values)  # areas of probabilities, shares, hits
        fig.add_trace(go.Bar(x=means, y=first[col - 1], orientation="h", showlegend=False, width=0.6, name=metric,
                             marker_color=[RANDOM if m == "random" else ACCENT for m in rows],
                             error_x=error_bars(means, spread, non_negative, thickness=1, width=2, color="#9aa5b1"),
                             text=[f"{v:.3f}" for v in means], textposition="outside", cliponaxis=False,
                             customdata=[[m, s, len(v)] for m, s, v in zip(rows, spread, values)],
                             hovertemplate="%{customdata[0]}<br>" + metric + " %{x:.4f} ± %{customdata[1]:.4f} "
                                           "(sd, %{customdata[2]} samples)<extra></extra>"), row=1, col=col)
        top = max((abs(m) + s for m, s in zip(means, spread)), default=1.0) or 1.0
        low = 0.0 if non_negative else min(0.0, min(m - s for m, s in zip(means, spread)))
        fig.update_xaxes(range=[low * 1.05, top * 1.35], showticklabels=False, zeroline=True, row=1, col=col)

    def sort_by(metric: str) -> list[dict]:
        return [{"y": positions(metric)}, {"yaxis.ticktext": order(metric)}]

    fig.update_yaxes(tickmode="array", tickvals=list(range(len(names))), ticktext=order(metrics[0]),
                     autorange="reversed", showgrid=False, zeroline=False)
    fig.update_layout(updatemenus=[dict(type="dropdown", direction="down", x=0, xanchor="left", y=1.0,
                                        yanchor="bottom", pad=dict(t=0, b=24), showactive=True,
                                        font=dict(size=11),
                                        buttons=[dict(label=f"sort: {m.replace('_', ' ')}", method="update",
                                                      args=sort_by(m)) for m in metrics])])
    longest = max(len(m) for m in names)
    return finish(fig, title or "Which explanation to trust", height=180 + 24 * len(names),
                  margin=dict(l=7 * longest + 20, r=20, t=140, b=20))


def randomisation_maps(result: Evaluation, methods=None, image: bool = True, labels=None,
                       title: str | None = None) -> go.Figure:
    """What the randomisation check saw: per method, the first sample's explanation
    originally and after each further layer is re-initialised from the top, each map scaled
    to its own largest magnitude. Images: a row of maps per method; other inputs (tokens,
    features, ``labels`` naming them): a method's maps as rows of one strip each."""
    _check(result)
    found = {m: r for m, r in result.randomisations.items() if r.examples is not None}
    if not found:
        raise InputError("this evaluation has no randomisation examples; evaluate with metrics=['randomisation']")
    names = [m for m in (methods or found) if m in found]
    unknown = [m for m in (methods or ()) if m not in found]
    if unknown:
        raise InputError(f"no randomisation of {unknown[0]!r} in this evaluation; it has {', '.join(found)}")
    first = found[names[0]]
    stages = ["original"] + [f"+ {layer}" for layer in first.layers]

    def magnitude(e: torch.Tensor) -> np.ndarray:
        m = e.abs().sum(0) if image and e.ndim == 3 else e.abs().reshape(e.shape[0], -1) if e.ndim > 1 else e.abs()
        m = m.float().numpy()
        return m / (m.max() or 1.0)

    if image:
        fig = make_subplots(rows=len(names), cols=len(stages), horizontal_spacing=0.01, vertical_spacing=0.02,
                            column_titles=stages, row_titles=names)
        for i, m in enumerate(names, start=1):
            for j, e in enumerate(found[m].examples, start=1):
                fig.add_trace(go.Heatmap(z=magnitude(e), coloraxis="coloraxis",
                                         hovertemplate=f"{m} · {stages[j - 1]}<br>%{{z:.2f}}<extra></extra>"),
                              row=i, col=j)
        fig.update_xaxes(visible=False, constrain="domain")
        for k in range(1, len(names) * len(stages) + 1):  # each map square in its own cell
            fig.layout[f"yaxis{'' if k == 1 else k}"].update(visible=False, autorange="reversed",
                                                                scaleanchor=f"x{'' if k == 1 else k}")
        height = 80 + 95 * len(names)
    else:
        fig = make_subplots(rows=len(names), cols=1, vertical_spacing=0.03, subplot_titles=names)
        width = None
        for i, m in enumerate(names, start=1):
            z = np.stack([magnitude(e).reshape(-1) for e in found[m].examples])
            named = labels is not None and len(labels) == z.shape[1]
            x = [str(s) for s in labels] if named else list(range(z.shape[1]))
            beside = math.ceil(label_px(stages, LABEL_FONT)) + 10 + 20 + COLORBAR  # the margins below
            fit = fit_labels(x, rotated=True, beside=beside)  # keys turned by 60°: every k-th past MAX_PLOT
            ticks, text = fit.shown(x)
            width = fit.width
            fig.add_trace(go.Heatmap(z=z, x=x, y=stages, coloraxis="coloraxis",
                                     hovertemplate=m + " · %{y}<br>%{x}: %{z:.2f}<extra></extra>"), row=i, col=1)
            fig.update_xaxes(type="category", tickangle=-60, tickmode="array", tickvals=ticks, ticktext=text,
                             tickfont=dict(size=LABEL_FONT), row=i, col=1)
        fig.update_yaxes(autorange="reversed", tickfont=dict(size=LABEL_FONT))
        height = 60 + len(names) * (30 + 20 * len(stages))
    fig.update_annotations(font_size=10)
    fig.update_layout(coloraxis=dict(colorscale="Reds", cmin=0, cmax=1, colorbar=dict(title="|R| / max", len=0.5)))
    margin = dict(l=20, r=20, t=90, b=20) if image else dict(
        l=math.ceil(label_px(stages, LABEL_FONT)) + 10, r=20, t=90, b=20)
    return finish(fig, f"{title or 'What the randomisation check saw'}<br><sup>the first sample's explanation as the "
                       "layers are re-initialised from the top; a map that keeps its shape ignores the model</sup>",
                  height=height, margin=margin,
                  width=None if image or width is None else width + margin["l"] + margin["r"] + COLORBAR)


def zoo_leaderboard(evaluations, metric: str = "deletion", title: str | None = None) -> go.Figure:
    """Across models (``{name: Evaluation}``, or ``{name: {metric: [(method, value), ...]}}``,
    leaderboards as an index of reports keeps them), each method's place by ``metric`` within
    each model (1 = best; a method a model was not scored by is blank), the value written in
    the cell: which methods win everywhere, and which only somewhere."""
    boards = {}
    for name, ev in evaluations.items():
        if isinstance(ev, dict):
            if ev.get(metric):
                boards[name] = [(str(m), float(v)) for m, v in ev[metric]]
        elif metric in _check(ev).metrics:
            boards[name] = ev.leaderboard(metric)
    if not boards:
        raise InputError(f"no evaluation here scores {metric!r}")
    places = {name: {m: i / max(1, len(b) - 1) for i, (m, _) in enumerate(b)} for name, b in boards.items()}
    values = {name: dict(b) for name, b in boards.items()}
    methods = sorted({m for b in boards.values() for m, _ in b},
                     key=lambda m: np.mean([p[m] for p in places.values() if m in p]))
    models = list(boards)
    z = [[places[n].get(m) for n in models] for m in methods]
    text = [[f"{values[n][m]:.3f}" if m in values[n] else "" for n in models] for m in methods]
    rank = [[f"{1 + [k for k, _ in boards[n]].index(m)} of {len(boards[n])}" if m in values[n] else ""
             for n in models] for m in methods]
    fig = go.Figure(go.Heatmap(z=z, x=models, y=methods, zmin=0, zmax=1, colorscale="RdYlGn_r", showscale=False,
                               text=text, texttemplate="%{text}", customdata=rank,
                               hovertemplate="%{y} on %{x}<br>" + metric + " %{text}, place %{customdata}"
                                             "<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    longest = max(len(m) for m in methods)
    return finish(fig, title or f"Methods across models · {_metric_title(metric)} (green: best of the model)",
                  height=90 + 26 * len(methods), margin=dict(l=7 * longest + 20, r=20, t=50, b=80))


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


__all__ = ["perturbation_curves", "randomisation_curves", "randomisation_maps", "leaderboard", "zoo_leaderboard",
           "agreement_matrix", "METRICS"]
