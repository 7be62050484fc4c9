"""Figures of activations: feature maps, unit heatmaps, hidden states, attention, unit statistics.

Every figure that shows units or samples puts their index in ``customdata`` so a
click can select a unit or a sample (the dashboard reads it back).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import InputError
from ..stats import LayerStats
from ._style import (
    ACCENT,
    ACTIVATION_SCALE,
    COLORBAR,
    DIVERGING_SCALE,
    LABEL_FONT,
    NEGATIVE,
    POSITIVE,
    TABLE_ROW,
    error_bars,
    finish,
    fit_labels,
    label_px,
    table_columns,
    table_height,
    table_margin,
    table_width,
)
from .arrays import as_array

DEAD = POSITIVE  # the palette's red, as unit_statistics' subplot title says (NEGATIVE is blue)
ROW_PX = 24      # px per token row: twice the labels' font, so every token's label is written


def _scale(values: np.ndarray) -> dict:
    """Sequential colours for non-negative activations, diverging (white at 0) otherwise."""
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo >= 0:
        return dict(colorscale=ACTIVATION_SCALE, zmin=0.0, zmax=hi if hi > 0 else 1.0)
    bound = max(abs(lo), abs(hi)) or 1.0
    return dict(colorscale=DIVERGING_SCALE, zmid=0.0, zmin=-bound, zmax=bound)


def _stack(x, what: str) -> np.ndarray:
    """A (k, rows, cols) float array from (k, rows, cols) or a single (rows, cols)."""
    a = as_array(x).astype(float)
    a = a[None] if a.ndim == 2 else a
    if a.ndim != 3:
        raise InputError(f"{what}; got {a.shape}")
    return a


def feature_maps(maps, title: str | None = None, max_channels: int = 64, cols: int | None = None,
                 highlight: int | None = None) -> go.Figure:
    """Channels of one sample's feature map as small heatmaps in a grid (one trace, so it
    stays fast with many channels); hover and click give the channel index."""
    a = _stack(maps, "feature maps must be shaped (channels, H, W)")
    c_all, h, w = a.shape
    c = min(c_all, max_channels)
    cols = cols or int(np.ceil(np.sqrt(c * w / h)))
    rows = -(-c // cols)
    big = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    channel = np.full(big.shape, -1)
    for i in range(c):
        r, q = divmod(i, cols)
        big[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = a[i]
        channel[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = i
    fig = go.Figure(go.Heatmap(z=big, customdata=channel, hoverongaps=False, xgap=0, ygap=0,
                               hovertemplate="channel %{customdata}: %{z:.3f}<extra></extra>",
                               colorbar=dict(title="activation", thickness=12), **_scale(a[:c])))
    if highlight is not None and 0 <= highlight < c:
        r, q = divmod(highlight, cols)
        fig.add_shape(type="rect", x0=q * (w + 1) - 0.5, x1=q * (w + 1) + w - 0.5,
                      y0=r * (h + 1) - 0.5, y1=r * (h + 1) + h - 0.5, line=dict(color=POSITIVE, width=2))
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                     scaleanchor="x", constrain="domain")
    note = f" (first {c} of {c_all} channels)" if c < c_all else f" ({c} channels)"
    return finish(fig, (title or "feature maps") + note, height=min(900, 120 + 46 * rows * max(1, h // 4)))


def unit_heatmap(values, labels=None, classes: Sequence[str] | None = None, title: str | None = None,
                 sort_by_class: bool = True, max_units: int = 256) -> go.Figure:
    """Samples (rows) x units (columns); rows grouped by class with the class named at
    each group. Hover and click give the sample index (customdata)."""
    v = as_array(values).astype(float)
    if v.ndim != 2:
        raise InputError(f"values must be shaped (samples, units); got {v.shape}")
    n, u = v.shape
    v = v[:, :max_units]
    order = np.arange(n)
    if labels is not None:
        labels = as_array(labels).astype(int).reshape(-1)
        if len(labels) != n:
            raise InputError(f"got {len(labels)} labels for {n} samples")
        if sort_by_class:
            order = np.argsort(labels, kind="stable")
    ids = np.broadcast_to(order[:, None], (n, v.shape[1]))
    fig = go.Figure(go.Heatmap(
        z=v[order], customdata=ids, x=np.arange(v.shape[1]), y=np.arange(n),
        hovertemplate="sample %{customdata}, unit %{x}: %{z:.3f}<extra></extra>",
        colorbar=dict(title="activation", thickness=12), **_scale(v)))
    if labels is not None and sort_by_class:
        sorted_labels = labels[order]
        edges = np.flatnonzero(np.diff(sorted_labels)) + 1
        for e in edges:
            fig.add_hline(y=e - 0.5, line=dict(color="white", width=2))
        starts = np.r_[0, edges]
        ends = np.r_[edges, n]
        names = list(classes) if classes is not None else None
        fig.update_yaxes(tickvals=(starts + ends - 1) / 2,
                         ticktext=[names[c] if names else str(c) for c in sorted_labels[starts]])
    fig.update_yaxes(autorange="reversed", title="samples" + (" by class" if labels is not None else ""))
    fig.update_xaxes(title="unit" + (f" (first {max_units} of {u})" if u > max_units else ""))
    return finish(fig, title, height=480)


def sequence_heatmap(values, tokens: Sequence[str] | None = None, title: str | None = None,
                     max_units: int = 256) -> go.Figure:
    """One sequence's hidden states: time steps (rows, labelled by token) x units."""
    v = as_array(values).astype(float)
    if v.ndim != 2:
        raise InputError(f"hidden states must be shaped (time, units); got {v.shape}")
    t = len(v)
    if tokens is not None and len(tokens) != t:
        raise InputError(f"got {len(tokens)} tokens for {t} time steps")
    labels = [f"{i}: {tok}" for i, tok in enumerate(tokens)] if tokens is not None else list(range(t))
    units = np.arange(min(max_units, v.shape[1]))
    fig = go.Figure(go.Heatmap(z=v[:, :max_units], y=labels, x=units,
                               customdata=np.broadcast_to(units, (t, len(units))),
                               hovertemplate="%{y}, unit %{x}: %{z:.3f}<extra></extra>",
                               colorbar=dict(title="activation", thickness=12), **_scale(v)))
    fig.update_yaxes(autorange="reversed", type="category", title="time step: token",
                     tickfont=dict(size=LABEL_FONT))  # a row of ROW_PX per token holds its label
    fig.update_xaxes(title="unit")
    return finish(fig, title, height=max(260, 90 + ROW_PX * t))


def attention_maps(weights, tokens: Sequence[str] | None = None, title: str | None = None) -> go.Figure:
    """Attention weights per head: query (rows) x key (columns), labelled by token. Labels
    keep a legible size: rows grow with the queries; the keys' (turned) labels widen the
    figure, and past ``MAX_PLOT`` every k-th key is named (hover names each)."""
    a = _stack(weights, "attention weights must be shaped (heads, queries, keys)")
    heads, tq, tk = a.shape
    if tokens is not None and len(tokens) not in (tq, tk):
        raise InputError(f"got {len(tokens)} tokens for {tq} queries and {tk} keys")
    qlab = [f"{i}: {tokens[i]}" for i in range(tq)] if tokens is not None and len(tokens) == tq else list(range(tq))
    klab = [f"{i}: {tokens[i]}" for i in range(tk)] if tokens is not None and len(tokens) == tk else list(range(tk))
    spacing = 0.12 if heads > 1 else 0.0  # of the plot's width, between the heads
    margin = dict(l=math.ceil(label_px(qlab, LABEL_FONT)) + 40, r=20, t=50, b=40)
    fit = fit_labels(klab, rotated=True, panels=heads, share=1 - spacing, beside=margin["l"] + margin["r"] + COLORBAR)
    fig = make_subplots(rows=1, cols=heads, subplot_titles=[f"head {h}" for h in range(heads)],
                        horizontal_spacing=spacing / max(1, heads - 1), shared_yaxes=True)
    keys, names = fit.shown(klab)
    for h in range(heads):
        fig.add_trace(go.Heatmap(z=a[h], x=klab, y=qlab, coloraxis="coloraxis",
                                 hovertemplate=f"head {h}<br>query %{{y}}<br>key %{{x}}: %{{z:.3f}}<extra></extra>"),
                      row=1, col=h + 1)
        fig.update_xaxes(type="category", tickangle=-60, title="key (attended to)", tickmode="array", tickvals=keys,
                         ticktext=names, tickfont=dict(size=LABEL_FONT), row=1, col=h + 1)
        fig.update_yaxes(type="category", autorange="reversed", row=1, col=h + 1, tickfont=dict(size=LABEL_FONT),
                         title="query (attending)" if h == 0 else None)
    fig.update_layout(coloraxis=dict(colorscale=ACTIVATION_SCALE, cmin=0, cmax=float(a.max()) or 1.0,
                                     colorbar=dict(title="weight", thickness=12)))
    return finish(fig, title or "attention", height=max(320, 160 + ROW_PX * tq), margin=margin,
                  width=None if fit.width is None else fit.width + margin["l"] + margin["r"] + COLORBAR)


def unit_bars(values, title: str | None = None, highlight: int | None = None) -> go.Figure:
    """One sample's activation of every unit of a layer; click a bar to pick the unit."""
    v = as_array(values).astype(float).reshape(-1)
    colors = [POSITIVE if i == highlight else (ACCENT if x >= 0 else NEGATIVE) for i, x in enumerate(v)]
    fig = go.Figure(go.Bar(x=np.arange(len(v)), y=v, marker_color=colors, customdata=np.arange(len(v)),
                           hovertemplate="unit %{x}: %{y:.3f}<extra></extra>"))
    fig.update_xaxes(title="unit")
    fig.update_yaxes(title="activation")
    return finish(fig, title, height=300)


def unit_statistics(stats: LayerStats, unit: int | None = None, title: str | None = None,
                    dead_threshold: float = 0.99) -> go.Figure:
    """Per unit over the dataset: mean value with its std (top; for a unit that is never
    negative, as after a ReLU, the lower whisker stops at 0), and the share of samples
    where the unit is zero everywhere, dead units in red (bottom). Click picks a unit."""
    units = np.arange(stats.units)
    never_negative = stats.min >= 0 if stats.min is not None else False
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4],
                        subplot_titles=["mean activation per unit (± std over samples)",
                                        f"share of samples where the unit is zero (red: ≥ {dead_threshold:.0%}, dead)"])
    fig.add_trace(go.Bar(x=units, y=stats.mean, error_y=error_bars(stats.mean, stats.std, never_negative, thickness=1),
                         customdata=units, name="mean",
                         marker_color=[POSITIVE if u == unit else ACCENT for u in units],
                         hovertemplate="unit %{x}: mean %{y:.3f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=units, y=stats.frac_zero, customdata=units, name="zero share",
                         marker_color=[DEAD if f >= dead_threshold else "#9aa7b8" for f in stats.frac_zero],
                         hovertemplate="unit %{x}: zero on %{y:.1%} of samples<extra></extra>"), row=2, col=1)
    fig.update_yaxes(range=[0, 1], row=2, col=1)
    fig.update_xaxes(title="unit", row=2, col=1)
    dead = len(stats.dead(dead_threshold))
    head = title or f"{stats.output}: {stats.units} units over {stats.n_samples} samples, {dead} dead"
    # hover/click anywhere in a unit's column, also where its bar has no height
    return finish(fig, head, height=440, showlegend=False, hovermode="x")


def unit_histogram(values, unit: int, title: str | None = None, bins: int = 40) -> go.Figure:
    """Distribution of one unit's value over the samples."""
    v = as_array(values).astype(float).reshape(-1)
    fig = go.Figure(go.Histogram(x=v, nbinsx=bins, marker_color=ACCENT,
                                 hovertemplate="%{x}: %{y} samples<extra></extra>"))
    fig.update_xaxes(title=f"unit {unit} value")
    fig.update_yaxes(title="samples")
    zero = float((v == 0).mean())
    return finish(fig, title or f"unit {unit}: mean {v.mean():.3f}, zero on {zero:.0%} of samples", height=300)


def layer_stats_table(stats: Mapping[str, LayerStats], title: str = "Layer statistics",
                      dead_threshold: float = 0.99) -> go.Figure:
    """One row per output: units, shape, mean / std of unit values, dead units, sparsity, max."""
    rows = list(stats.values())
    cols = [
        [s.output for s in rows],
        ["×".join(map(str, s.sample_shape)) or "scalar" for s in rows],
        [str(s.units) for s in rows],
        [f"{float(s.mean.mean()):.3g}" for s in rows],
        [f"{float(s.std.mean()):.3g}" for s in rows],
        [f"{len(s.dead(dead_threshold))}" for s in rows],
        [f"{float(s.frac_zero.mean()):.0%}" for s in rows],
        [f"{float(s.max.max()):.3g}" for s in rows],
    ]
    header = ["output", "shape per sample", "units", "mean of unit means", "mean unit std",
              f"dead units (zero on ≥{dead_threshold:.0%})", "zero share", "max (any position)"]
    header = [f"<b>{h}</b>" for h in header]
    widths, content = table_columns(header, cols)
    fig = go.Figure(go.Table(
        columnwidth=widths,
        header=dict(values=header, fill_color="#eef2f7", align="left", height=TABLE_ROW),
        cells=dict(values=cols, align=["left", "left"] + ["right"] * 6, height=TABLE_ROW)))
    margin = table_margin(title)
    return finish(fig, title, height=table_height(len(rows)), width=table_width(content, margin), margin=margin)
