"""Figures of layer-wise relevance propagation: where the relevance goes between the score and the input.

The relevance flow follows the total relevance from the target score through every
layer to the input and shows, per layer, what it absorbed (biases, epsilon) or created:
the local conservation check that one end-to-end number hides. Per-layer maps show
where the relevance sits inside convolutional and sequence layers; the plan table
says which rule each module got and what no rule covers; the summary puts the
numbers beside the figures. The relevance of the input itself is not drawn here:
``result.as_attribution()`` makes it an :class:`~interp.attribution.Attribution`, which
``attribution_view`` and ``attribution_grid`` already draw, beside the saliency methods.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import InputError
from ..lrp import LayerRelevance, LRPResult, Plan
from ._style import (
    ACCENT,
    DIVERGING_SCALE,
    NEGATIVE,
    POSITIVE,
    TABLE_ROW,
    finish,
    table_columns,
    table_height,
    table_margin,
    table_width,
)
from .arrays import as_array, color_bound

ABSORBED, CREATED, CONSERVED = "#ff7f0e", "#9467bd", "#b8c2cf"   # apart from the red/blue of relevance
UNSUPPORTED_TEXT, UNSUPPORTED_FILL = "#c0182b", "#fde3e1"
RESIDUAL_NOTE = ("a layer inside a residual branch carries only part of the relevance, so compare each layer "
                 "with what it received, not with the score")


def _sample_index(result: LRPResult, sample: int) -> int:
    if not isinstance(result, LRPResult):
        raise InputError(f"expected an LRPResult (what interp.lrp returns); got {type(result).__name__}")
    n = len(result.score)
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or not 0 <= sample < n:
        raise InputError(f"sample must be an index in [0, {n - 1}] for a batch of {n}; got {sample!r}")
    return int(sample)


def _gap_text(total: float, score: float) -> str:
    gap = total - score
    share = f" ({100 * gap / score:+.2f}% of the score)" if score != 0 else ""
    return f"gap {gap:+.4g}{share}"


def _conserved(change: float, scale: float) -> bool:
    return abs(change) <= 1e-5 * max(scale, 1e-12)   # float32 rounding, not the rule


# ---------------------------------------------------------------------------- flow

def _layer_hover(layer: LayerRelevance, i: int, scale: float) -> str:
    received, passed, absorbed = float(layer.received[i]), float(layer.total[i]), float(layer.absorbed[i])
    share = f" ({100 * absorbed / received:+.2f}% of received)" if received != 0 else ""
    what = "conserved" if _conserved(absorbed, scale) else "absorbed" if absorbed > 0 else "created"
    calls = f", {layer.calls} calls (summed)" if layer.calls > 1 else ""
    return (f"<b>{layer.name}</b> ({layer.kind}{calls})<br>rule {layer.rule}<br>"
            f"received at its output: {received:.6g}<br>passed to its input: {passed:.6g}<br>"
            f"{what}: {absorbed:+.4g}{share}<br>"
            f"positive part {float(layer.positive[i]):.6g}, negative part {float(layer.negative[i]):.6g}")


def _listed(names: list[str], most: int = 3) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def relevance_flow(result: LRPResult, sample: int = 0, title: str | None = None) -> go.Figure:
    """Σ relevance from the target score (left) through every layer, in the order the
    relevance flows, to the input (right). Top: what each layer passed to its input
    (line; hollow markers: what it received at its output; dotted: the positive and
    negative parts). Bottom: received − passed on per layer, orange where the layer
    absorbed relevance (biases, epsilon), purple where it created some, grey where
    conserved; a hatched bar at the input for what constants outside every layer took
    (position embeddings, ...). The end-to-end gap Σ input relevance − score is annotated
    at the input.
    ``customdata`` of the points and bars is the layer path (empty at the two ends)."""
    i = _sample_index(result, sample)
    every = list(result.layers.values())
    # layers off the target's path (attention's queries and keys, a VAE's other head) carry nothing
    layers = [layer for layer in every if float(layer.received[i]) != 0 or float(layer.total[i]) != 0]
    idle = [layer.name for layer in every if layer not in layers]
    score, total = float(result.score[i]), float(result.total[i])
    n = len(layers)
    names = ["output (score)"] + [layer.name for layer in layers] + ["input"]
    x = list(range(n + 2))
    passed = [score] + [float(layer.total[i]) for layer in layers] + [total]
    received = [float(layer.received[i]) for layer in layers]
    change = [float(layer.absorbed[i]) for layer in layers]
    parts = result.relevance.values() if isinstance(result.relevance, dict) else \
        result.relevance if isinstance(result.relevance, (tuple, list)) else (result.relevance,)
    relevance = np.concatenate([as_array(r[i]).astype(float).reshape(-1) for r in parts if r is not None])
    positive = [None] + [float(layer.positive[i]) for layer in layers] + [float(relevance[relevance > 0].sum())]
    negative = [None] + [float(layer.negative[i]) for layer in layers] + [float(relevance[relevance < 0].sum())]
    target = int(result.target[i])
    scale = max([abs(score)] + [abs(r) for r in received])
    hover = ([f"<b>output</b>: target {target}<br>score {score:.6g} (the relevance put in at the top)"]
             + [_layer_hover(layer, i, scale) for layer in layers]
             + [f"<b>input</b><br>Σ relevance {total:.6g}<br>score {score:.6g}<br>{_gap_text(total, score)}"])
    paths = [""] + [layer.name for layer in layers] + [""]

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.64, 0.36], vertical_spacing=0.1,
                        subplot_titles=["", "received − passed on, per layer: "
                                        f"<span style='color:{ABSORBED}'><b>absorbed</b></span> (biases, ε), "
                                        f"<span style='color:{CREATED}'><b>created</b></span>, "
                                        "<span style='color:#8a94a3'><b>conserved</b></span>"])
    fig.update_annotations(font_size=12)
    fig.add_trace(go.Scatter(x=x, y=positive, mode="lines", name="positive part",
                             line=dict(color=POSITIVE, width=1, dash="dot"), opacity=0.6,
                             hovertemplate="positive part %{y:.4g}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=negative, mode="lines", name="negative part",
                             line=dict(color=NEGATIVE, width=1, dash="dot"), opacity=0.6,
                             hovertemplate="negative part %{y:.4g}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=passed, mode="lines+markers", name="Σ relevance passed to the input",
                             line=dict(color=ACCENT, width=2), marker=dict(size=8, color=ACCENT),
                             customdata=paths, hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=x[1:-1], y=received, mode="markers", name="Σ relevance received at the output",
                             marker=dict(size=12, color="rgba(0,0,0,0)", line=dict(color="#444", width=1.5)),
                             customdata=paths[1:-1], hovertext=hover[1:-1],
                             hovertemplate="%{hovertext}<extra></extra>"), row=1, col=1)
    colors = [CONSERVED if _conserved(c, scale) else ABSORBED if c > 0 else CREATED for c in change]
    fig.add_trace(go.Bar(x=x[1:-1], y=change, name="absorbed (+) / created (−)", marker_color=colors,
                         customdata=paths[1:-1], hovertext=hover[1:-1], showlegend=False,
                         hovertemplate="%{hovertext}<extra></extra>"), row=2, col=1)
    outside = float(result.outside_layers[i]) if n else 0.0
    if not _conserved(outside, scale):  # constants added in a forward (position embeddings, ...)
        fig.add_trace(go.Bar(x=[n + 1], y=[outside], name="outside every layer", showlegend=False,
                             marker_color=ABSORBED if outside > 0 else CREATED, marker_pattern_shape="/",
                             hovertemplate=(f"<b>outside every layer</b><br>{'absorbed' if outside > 0 else 'created'}"
                                            f" {outside:+.4g} by constants added in the forward (e.g. position "
                                            "embeddings), not by a layer<extra></extra>")), row=2, col=1)
    fig.add_hline(y=0, line=dict(color="#888", width=1), row=2, col=1)

    gap = _gap_text(total, score).replace(" (", "<br>(")
    fig.add_annotation(x=n + 1, y=total, xref="x", yref="y", ax=-70, ay=-50, showarrow=True, arrowhead=2,
                       text=f"Σ input {total:.4g}<br>score {score:.4g}<br>{gap}",
                       align="left", bgcolor="rgba(255,255,255,0.9)", bordercolor="#999", font=dict(size=11))
    if n == 0:
        fig.add_annotation(x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                           text="no per-layer relevance recorded", font=dict(size=13, color="#666"))
    longest = max(len(s) for s in names)
    fig.update_xaxes(tickvals=x, ticktext=names, tickangle=-40 if n > 3 else 0, row=2, col=1,
                     range=[-0.6, n + 1.6])
    fig.update_xaxes(tickvals=x, showticklabels=False, row=1, col=1)
    fig.update_yaxes(title="Σ relevance", row=1, col=1)
    fig.update_yaxes(title="received − passed", zeroline=True, row=2, col=1)
    head = title or f"Relevance flow, sample {i}: target {target}, {result.label}"
    sub = (f"Σ input relevance {total:.4g} vs score {score:.4g}: {_gap_text(total, score)}<br>"
           f"{RESIDUAL_NOTE[0].upper() + RESIDUAL_NOTE[1:]}")
    bottom = 40 + (int(4.6 * longest) if n > 3 else 20)
    notes = []
    repeated = [f"{layer.name} ×{layer.calls}" for layer in layers if layer.calls > 1]
    if repeated:  # a recurrent cell's calls sit at different depths: their sum can exceed the score
        notes.append(f"called several times, shown summed over their calls: {_listed(repeated)}")
    if idle:
        notes.append(f"not shown, as no relevance reaches them: {_listed(idle)}")
    if notes:  # under the flow, where there is room
        fig.add_annotation(x=0, y=-0.02, xref="paper", yref="paper", xanchor="left", yanchor="top",
                           yshift=-bottom + 18, showarrow=False, font=dict(size=11, color="#666"),
                           text="<br>".join(notes))
    return finish(fig, f"{head}<br><sup>{sub}</sup>", height=560 + bottom,
                  margin=dict(l=70, r=20, t=130, b=bottom + 18 * len(notes) + (4 if notes else 0)),
                  legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0, xanchor="left", font=dict(size=11)))


# ---------------------------------------------------------------------------- per-layer maps

def _spatial_map(layer: LayerRelevance, i: int) -> np.ndarray | None:
    """One sample's relevance at a layer as a 2-D map: (C, H, W) summed over channels, a
    2-D (channels × positions, or positions × features) map as it is; None otherwise."""
    if layer.relevance is None:
        return None
    a = as_array(layer.relevance[i]).astype(float)
    if a.ndim == 3:
        return a.sum(0)
    return a if a.ndim == 2 else None


def _layer_maps(result: LRPResult, i: int, layers, max_layers: int) -> tuple[list, str]:
    found = result.layers
    if layers is None:
        chosen = [(layer, m) for layer in found.values() if (m := _spatial_map(layer, i)) is not None]
        zero = [layer for layer, m in chosen if not np.any(m)]
        chosen = [(layer, m) for layer, m in chosen if np.any(m)]
        note = f"; {len(zero)} with no relevance left out" if zero else ""
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        chosen = []
        for name in names:
            if name not in found:
                valid = ", ".join(found) if len(found) <= 20 else ", ".join(list(found)[:20]) + ", ..."
                raise InputError(f"no layer {name!r} in this LRP result; layers: {valid or '(none)'}")
            layer = found[name]
            m = _spatial_map(layer, i)
            if m is None:
                shape = "differs between calls" if layer.relevance is None else f"is {tuple(layer.relevance.shape[1:])}"
                raise InputError(f"layer {name!r} is not spatial: its relevance per sample {shape}; expected "
                                 "(channels, H, W) or a 2-D (channels, length) map")
            chosen.append((layer, m))
        note = ""
    if max_layers < 1:
        raise InputError(f"max_layers must be at least 1; got {max_layers}")
    if len(chosen) > max_layers:
        note = f"; first {max_layers} of {len(chosen)}" + note
        chosen = chosen[:max_layers]
    return chosen, note


def layer_relevance_maps(result: LRPResult, sample: int = 0, layers=None, title: str | None = None,
                         max_layers: int = 8) -> go.Figure:
    """One sample's relevance at each spatial layer as a heatmap: (C, H, W) maps summed over
    channels to (H, W), 2-D maps (e.g. channels × length, positions × features) as they
    are. Diverging and centred on zero, each panel scaled to its own largest magnitude
    (panel titles give the layer, its rule and Σ relevance). ``layers``: paths to show
    (default: every spatial layer with relevance, in flow order); at most ``max_layers``."""
    i = _sample_index(result, sample)
    chosen, note = _layer_maps(result, i, layers, max_layers)
    head = title or f"Relevance per layer, sample {i} (target {int(result.target[i])})"
    if not chosen:
        fig = go.Figure()
        fig.add_annotation(x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                           text="no spatial layers", font=dict(size=14, color="#666"))
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return finish(fig, head, height=200)
    k = len(chosen)
    cols = min(k, 4)
    rows = -(-k // cols)
    titles = [f"<b>{layer.name}</b><br>{layer.rule} · Σ {float(layer.total[i]):.4g}" for layer, _ in chosen]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.06,
                        vertical_spacing=0.14 / rows if rows > 1 else 0)
    for j, (layer, m) in enumerate(chosen):
        r, c = divmod(j, cols)
        b = color_bound(m)
        summed = layer.relevance[i].ndim == 3
        what = f"Σ over {layer.relevance.shape[1]} channels" if summed else "relevance"
        where = "row %{y}, col %{x}" if summed else "dim 1 = %{y}, dim 2 = %{x}"
        bar = dict(title="relevance<br>(each panel<br>to its own<br>max |R|)", thickness=12,
                   tickvals=[-b, 0, b], ticktext=["−max", "0", "+max"])
        fig.add_trace(go.Heatmap(z=m, zmin=-b, zmax=b, colorscale=DIVERGING_SCALE, showscale=j == 0,
                                 colorbar=bar if j == 0 else None, name=layer.name,
                                 hovertemplate=f"{layer.name}<br>{where}: {what} %{{z:.4g}}<extra></extra>"),
                      row=r + 1, col=c + 1)
        anchor = "x" if j == 0 else f"x{r * cols + c + 1}"
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain",
                         row=r + 1, col=c + 1)
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                         constrain="domain", scaleanchor=anchor if summed else None, row=r + 1, col=c + 1)
    fig.update_annotations(font_size=11)
    cell = 230 if cols <= 3 else 200
    dims = {layer.relevance[i].ndim for layer, _ in chosen}
    how = ("(C, H, W) maps summed over channels; " if 3 in dims else "") + \
        ("2-D maps as they are (rows: dim 1, columns: dim 2 of the layer's input); " if 2 in dims else "")
    return finish(fig, f"{head}<br><sup>{how}red: for the target, blue: against{note}</sup>",
                  height=90 + (cell + 40) * rows, margin=dict(l=20, r=20, t=110, b=20))


# ---------------------------------------------------------------------------- plan

def _plan_subtitle(plan: Plan) -> str:
    def listed(paths, most=4):
        paths = list(paths)
        return ", ".join(paths[:most]) + (f" and {len(paths) - most} more" if len(paths) > most else "")
    canon = "; ".join(f"{name} ({listed(paths)})" for name, paths in plan.canonizers) or "none"
    first = listed(plan.first_layers) or "none"
    parts = [f"canonizers: {canon}", f"first-layer rule on: {first}"]
    bad = plan.unsupported
    if bad:
        parts.append(f"<span style='color:{UNSUPPORTED_TEXT}'><b>{len(bad)} UNSUPPORTED</b>: "
                     f"{listed(r.name for r in bad)}</span>")
    return " · ".join(parts)


def lrp_plan_table(plan: Plan, title: str | None = None) -> go.Figure:
    """The rule plan, one row per module: path (indented by depth), type, rule, note.
    Unsupported modules in red, marked UNSUPPORTED; the canonizers, the layers that got
    the first-layer rule and what is unsupported are listed under the title."""
    if not isinstance(plan, Plan):
        raise InputError(f"expected an LRP Plan (interp.lrp.plan(...) or result.plan); got {type(plan).__name__}")
    rows = plan.rows
    firsts = set(plan.first_layers)
    module = ["\u00a0\u00a0\u00a0" * r.depth + r.name for r in rows]
    kind = [r.kind for r in rows]
    rule = [f"<b>UNSUPPORTED</b>: {r.rule}" if r.role == "unsupported" else r.rule for r in rows]
    note = [("first layer (reads the input)" + (f"; {r.note}" if r.note else "")) if r.name in firsts else r.note
            for r in rows]
    text = [UNSUPPORTED_TEXT if r.role == "unsupported" else "#8a94a3" if r.role == "container" else "#222"
            for r in rows]
    fill = [UNSUPPORTED_FILL if r.role == "unsupported" else "white" if j % 2 == 0 else "#fafbfc"
            for j, r in enumerate(rows)]
    header = ["<b>module</b>", "<b>type</b>", "<b>rule</b>", "<b>note</b>"]
    widths, content = table_columns(header, [module, kind, rule, note])
    fig = go.Figure(go.Table(
        columnwidth=widths,
        header=dict(values=header, fill_color="#eef2f7", align="left", height=TABLE_ROW),
        cells=dict(values=[module, kind, rule, note], align="left", height=TABLE_ROW,
                   font=dict(color=[text] * 4), fill_color=[fill] * 4)))
    head = title or f"LRP plan, composite {plan.composite}"
    margin = dict(l=20, r=20, t=75, b=20)
    return finish(fig, f"{head}<br><sup>{_plan_subtitle(plan)}</sup>", height=table_height(len(rows)) + 30,
                  width=table_width(content, margin), margin=margin)


# ---------------------------------------------------------------------------- summary

def _results(results_or_result) -> list[LRPResult]:
    results = [results_or_result] if isinstance(results_or_result, LRPResult) else list(results_or_result)
    if not results:
        raise InputError("the LRP summary needs at least one LRPResult")
    for r in results:
        if not isinstance(r, LRPResult):
            raise InputError(f"expected LRPResults (what interp.lrp returns); got {type(r).__name__}")
    if len({len(r.score) for r in results}) > 1:
        raise InputError(f"the results explain batches of different sizes ({[len(r.score) for r in results]}); "
                         "the summary compares the same samples")
    return results


def lrp_summary(results_or_result, sample_titles: Sequence[str] | None = None,
                title: str | None = None) -> go.Figure:
    """The numbers beside the figures, one row per sample (and per result, to compare
    composites): target, score, Σ relevance, conservation gap (Σ relevance − score, and in
    % of the score), Σ positive and Σ negative relevance, the relevance absorbed and the
    relevance created by layers (sums of the layers' positive and of the magnitudes of
    their negative received − passed on), what constants outside every layer took
    (:attr:`~interp.lrp.LRPResult.outside_layers`, e.g. position embeddings) and the run's
    time for the whole batch."""
    results = _results(results_or_result)
    n = len(results[0].score)
    if sample_titles is not None and len(sample_titles) != n:
        raise InputError(f"got {len(sample_titles)} sample titles for {n} samples")
    names = list(sample_titles) if sample_titles is not None else [f"sample {i}" for i in range(n)]
    header = ["composite", "sample", "target", "score", "Σ relevance", "gap", "gap % of score", "Σ positive",
              "Σ negative", "absorbed by layers", "created by layers", "outside layers", "ms (batch)"]
    rows = []
    for r in results:
        flat = r.relevance.flatten(1)
        positive, negative = flat.clamp(min=0).sum(1), flat.clamp(max=0).sum(1)
        absorbed = [layer.absorbed for layer in r.layers.values()]
        outside = r.outside_layers if absorbed else None
        for i, name in enumerate(names):
            score, total = float(r.score[i]), float(r.total[i])
            gap = total - score
            took = sum(float(a[i]) for a in absorbed if float(a[i]) > 0)
            made = -sum(float(a[i]) for a in absorbed if float(a[i]) < 0)
            rows.append([r.composite, str(name), str(int(r.target[i])), f"{score:.6g}", f"{total:.6g}",
                         f"{gap:+.4g}", f"{100 * gap / score:+.2f}%" if score != 0 else "n/a",
                         f"{float(positive[i]):.6g}", f"{float(negative[i]):.6g}",
                         f"{took:.4g}" if absorbed else "", f"{made:.4g}" if absorbed else "",
                         f"{float(outside[i]):+.4g}" if outside is not None else "", f"{r.seconds * 1e3:.0f}"])
    header = [f"<b>{h}</b>" for h in header]
    cells = [[row[j] for row in rows] for j in range(len(header))]
    widths, content = table_columns(header, cells)
    fig = go.Figure(go.Table(
        columnwidth=widths,
        header=dict(values=header, fill_color="#eef2f7", align="left"),
        cells=dict(values=cells, align=["left", "left"] + ["right"] * (len(header) - 2), height=TABLE_ROW - 4)))
    margin = table_margin(title)
    return finish(fig, title, height=table_height(len(rows), title=bool(title)) + 20,
                  width=table_width(content, margin), margin=margin)


__all__ = ["relevance_flow", "layer_relevance_maps", "lrp_plan_table", "lrp_summary"]
