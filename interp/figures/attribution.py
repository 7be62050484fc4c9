"""Figures of attributions: what the input is, and where the explanation puts the evidence.

Images get the attribution laid over the (grey) input with a diverging scale centred
on zero and transparent at zero, so the input stays visible where nothing is
attributed. Table rows get bars per feature, sorted by size; token sequences a strip
of words coloured by score. The comparison grid shows methods (rows) against samples
(columns), each map scaled to its own largest magnitude so methods with different
units can sit side by side; hover gives the raw values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..attribution import Attribution
from ..errors import InputError
from ._style import (
    COLORBAR,
    DIVERGING_SCALE,
    LABEL_FONT,
    NEGATIVE,
    POSITIVE,
    TABLE_ROW,
    LabelFit,
    finish,
    fit_labels,
    fit_rows,
    label_px,
    table_columns,
    table_height,
    table_margin,
    table_width,
)
from .arrays import as_array, color_bound
from .images import image_axes, image_traces, to_hw

MASK_COLOR = "#1a9641"  # ground-truth outline: green, apart from the red and blue of attributions

# diverging, transparent at zero: laid over an image, small values leave it visible
OVERLAY_SCALE = [
    [0.0, "rgba(33,102,172,0.95)"], [0.25, "rgba(103,169,207,0.75)"], [0.5, "rgba(255,255,255,0)"],
    [0.75, "rgba(239,138,98,0.75)"], [1.0, "rgba(178,24,43,0.95)"],
]


def _map(values, like_shape: tuple[int, ...]) -> np.ndarray:
    """An image's attribution as (H, W): channels summed (as Captum's visualiser does)."""
    a = as_array(values).astype(float)
    if a.ndim == 3:
        a = a.sum(0)
    if a.ndim != 2 or a.shape != like_shape:
        raise InputError(f"attribution of shape {as_array(values).shape} does not match the image "
                         f"{like_shape}; expected (H, W) or (C, H, W)")
    return a


def _overlay(values: np.ndarray, bound: float, coloraxis: str | None = None, raw: np.ndarray | None = None,
             label: str = "attribution") -> go.Heatmap:
    kw = dict(coloraxis=coloraxis) if coloraxis else dict(
        colorscale=OVERLAY_SCALE, zmin=-bound, zmax=bound, zmid=0.0,
        colorbar=dict(title=label, thickness=12))
    return go.Heatmap(z=values, customdata=values if raw is None else raw,
                      hovertemplate=f"row %{{y}}, col %{{x}}: {label} %{{customdata:.3g}}<extra></extra>", **kw)


def attribution_image(image, values, title: str | None = None, mask=None, height: int = 320,
                      label: str = "attribution") -> go.Figure:
    """An attribution laid over its image (zero-centred, transparent at zero); ``mask``
    (ground truth) outlined."""
    base, note = image_traces(image, mask, None, None, mask_color=MASK_COLOR)
    hw, _ = to_hw(image)
    a = _map(values, hw.shape[:2])
    fig = go.Figure([base[0], _overlay(a, color_bound(a), label=label), *base[1:]])
    image_axes(fig)
    return finish(fig, (title or "") + note or None, height=height, width=height + 80)


def attribution_bars(values, feature_names: Sequence[str], title: str | None = None,
                     top: int | None = None, label: str = "attribution") -> go.Figure:
    """Attribution per feature as horizontal bars, largest magnitude first (``top``: only
    the largest few)."""
    v = as_array(values).astype(float).reshape(-1)
    if len(v) != len(feature_names):
        raise InputError(f"got {len(v)} attributions for {len(feature_names)} feature names")
    order = np.argsort(-np.abs(v), kind="stable")[:top]
    fig = go.Figure(go.Bar(
        x=v[order], y=[str(feature_names[i]) for i in order], orientation="h",
        marker_color=[POSITIVE if v[i] >= 0 else NEGATIVE for i in order],
        hovertemplate=f"%{{y}}: {label} %{{x:.4g}}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title=f"{label} (red: for the target, blue: against)", zeroline=True, zerolinecolor="#888")
    return finish(fig, title, height=90 + 18 * len(order))


def _token_text(tokens: Sequence[str], mask) -> list[str]:
    m = np.zeros(len(tokens), bool) if mask is None else as_array(mask).astype(bool).reshape(-1)
    if len(m) != len(tokens):
        raise InputError(f"mask has {len(m)} positions for {len(tokens)} tokens")
    return [f"<b>{t}</b>" if on else str(t) for t, on in zip(tokens, m)]


def attribution_tokens(values, tokens: Sequence[str], title: str | None = None, mask=None,
                       label: str = "attribution") -> go.Figure:
    """A token sequence as a strip of words coloured by their attribution; ground-truth
    positions (``mask``) in bold. Words keep a legible size: the strip widens for many
    tokens, and past ``MAX_PLOT`` every k-th word is written (hover names each)."""
    v = as_array(values).astype(float).reshape(-1)
    if len(v) != len(tokens):
        raise InputError(f"got {len(v)} attributions for {len(tokens)} tokens")
    b = color_bound(v)
    note = " (bold: ground-truth positions)" if mask is not None and np.any(as_array(mask)) else ""
    margin = dict(l=50, r=20, t=50 if (title or note) else 20, b=40)
    fit = fit_labels(tokens, beside=margin["l"] + margin["r"] + COLORBAR)
    fig = go.Figure(go.Heatmap(
        z=[v], x=list(range(len(v))), y=[""], text=[fit.text(_token_text(tokens, mask))], texttemplate="%{text}",
        hovertext=[[str(t) for t in tokens]], textfont=dict(size=LABEL_FONT), colorscale=DIVERGING_SCALE,
        zmin=-b, zmax=b, zmid=0.0, xgap=3, colorbar=dict(title=label, thickness=12),
        hovertemplate=f"position %{{x}}: %{{hovertext}}, {label} %{{z:.4g}}<extra></extra>"))
    _position_axis(fig, fit, len(v))
    fig.update_yaxes(showticklabels=False, showgrid=False)
    return finish(fig, (title or "") + note or None, height=170, margin=margin,
                  width=None if fit.width is None else fit.width + margin["l"] + margin["r"] + COLORBAR)


def _position_axis(fig: go.Figure, fit: LabelFit, n: int, title: str | None = "position", **where) -> None:
    """An x axis of token positions 0..n-1, numbered where the words are written."""
    ticks, _ = fit.shown(range(n))
    fig.update_xaxes(title=title, tickmode="array", tickvals=ticks, ticktext=[str(t) for t in ticks],
                     tickfont=dict(size=LABEL_FONT), showgrid=False, **where)


def _words(x, vocab) -> list[str]:
    ids = as_array(x).astype(int).reshape(-1)
    if vocab is not None and len(ids) and not (0 <= ids.min() and ids.max() < len(vocab)):
        raise InputError(f"token ids must lie in [0, {len(vocab) - 1}] for a vocabulary of {len(vocab)}")
    return [vocab[i] if vocab is not None else str(i) for i in ids]


def attribution_view(x, values, modality: str, *, title: str | None = None, feature_names=None,
                     vocab=None, truth=None, label: str = "attribution") -> go.Figure:
    """The right attribution view of one sample for its modality: ``image``, ``tabular``
    or ``tokens``."""
    if modality == "image":
        return attribution_image(x, values, title, mask=truth, label=label)
    if modality == "tabular":
        names = feature_names if feature_names is not None else [f"x{i}" for i in range(as_array(x).size)]
        return attribution_bars(values, names, title, label=label)
    if modality == "tokens":
        return attribution_tokens(values, _words(x, vocab), title, mask=truth, label=label)
    raise InputError(f"unknown modality {modality!r}; expected 'image', 'tabular' or 'tokens'")


def _check_grid(inputs, attributions: Sequence[Attribution], titles) -> np.ndarray:
    x = as_array(inputs)
    if not attributions:
        raise InputError("the comparison grid needs at least one attribution")
    for a in attributions:
        if tuple(a.values.shape) != x.shape:
            raise InputError(f"{a.method}: attributions shaped {tuple(a.values.shape)} for inputs {x.shape}; "
                             "expected one attribution per input")
    if titles is not None and len(titles) != len(x):
        raise InputError(f"got {len(titles)} sample titles for {len(x)} samples")
    return x


def attribution_grid(inputs, attributions: Sequence[Attribution], modality: str, *,
                     sample_titles: Sequence[str] | None = None, title: str | None = None,
                     feature_names=None, vocab=None, truth=None) -> go.Figure:
    """Methods × samples: one :class:`Attribution` per method, all of the same ``inputs`` (a
    batch), each map scaled to its own largest magnitude (hover shows raw values). Images:
    a row per sample, the input then one column per method; tokens and table rows: one
    heatmap per sample with a row per method. Either way a sample's methods sit side by side."""
    x = _check_grid(inputs, attributions, sample_titles)
    n = len(x)
    titles = list(sample_titles) if sample_titles is not None else [f"sample {i}" for i in range(n)]
    masks = [None] * n if truth is None else list(as_array(truth))
    if modality == "image":
        return _image_grid(x, attributions, titles, masks, title)
    if modality not in ("tokens", "tabular"):
        raise InputError(f"unknown modality {modality!r}; expected 'image', 'tabular' or 'tokens'")
    labels = [a.label for a in attributions]
    words = [_words(row, vocab) for row in x] if modality == "tokens" else None
    margin = dict(l=max(190, math.ceil(label_px(labels, LABEL_FONT)) + 10), r=20, t=60, b=40)
    fit = fit_rows(words, beside=margin["l"] + margin["r"] + COLORBAR) if words else None
    fig = make_subplots(rows=n, cols=1, subplot_titles=titles, vertical_spacing=0.5 / max(n, 1) if n > 1 else 0)
    for i in range(n):
        raw = np.stack([as_array(a.values[i]).astype(float).reshape(-1) for a in attributions])
        scaled = raw / np.array([color_bound(r) for r in raw])[:, None]
        if modality == "tokens":
            cols = list(range(len(words[i])))
            text = [fit.text(_token_text(words[i], masks[i]))] * len(attributions)
            hover = [words[i]] * len(attributions)
        else:
            cols = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(raw.shape[1])]
            text = hover = None
        fig.add_trace(go.Heatmap(
            z=scaled, x=cols, y=labels, customdata=raw, text=text, hovertext=hover, coloraxis="coloraxis",
            xgap=2, ygap=2, texttemplate="%{text}" if text else None,
            textfont=dict(size=LABEL_FONT) if text else None,
            hovertemplate="%{y}<br>%{x}: " + ("%{hovertext}, " if text else "") + "%{customdata:.4g}<extra></extra>"),
            row=i + 1, col=1)
        fig.update_yaxes(autorange="reversed", type="category", row=i + 1, col=1)
        if modality == "tokens":
            _position_axis(fig, fit, len(cols), title="position" if i == n - 1 else None,
                           showticklabels=i == n - 1, row=i + 1, col=1)
        else:
            fig.update_xaxes(type="category", tickangle=-50, row=i + 1, col=1)
    fig.update_layout(coloraxis=dict(colorscale=DIVERGING_SCALE, cmin=-1, cmax=1, cmid=0,
                                     colorbar=dict(title="attribution /<br>max |attribution|", thickness=12)))
    per = 40 + 26 * len(attributions) + (130 if modality == "tabular" else 20)
    note = " (bold: ground-truth positions)" if modality == "tokens" and truth is not None else ""
    width = None if fit is None or fit.width is None else fit.width + margin["l"] + margin["r"] + COLORBAR
    return finish(fig, (title or "") + note or None, height=60 + per * n, margin=margin, width=width)


def _image_grid(x, attributions, titles, masks, title) -> go.Figure:
    """Samples down, methods across (the input first), so one sample's methods sit side by side."""
    rows, cols = len(x), len(attributions) + 1
    column_titles = ["input"] + [a.label.replace(" (", "<br>(") for a in attributions]
    fig = make_subplots(rows=rows, cols=cols, column_titles=column_titles,
                        horizontal_spacing=0.01, vertical_spacing=0.03 if rows > 1 else 0)
    lo, hi = float(np.min(x)), float(np.max(x))
    for r in range(rows):
        for c in range(cols):
            base, _ = image_traces(x[r], masks[r], lo, hi, mask_color=MASK_COLOR)
            traces = [base[0]]
            if c > 0:
                a = attributions[c - 1]
                raw = _map(a.values[r], to_hw(x[r])[0].shape[:2])
                traces.append(_overlay(raw / color_bound(raw), 1.0, coloraxis="coloraxis", raw=raw, label=a.method))
            traces += base[1:]
            for t in traces:
                fig.add_trace(t, row=r + 1, col=c + 1)
            image_axes(fig, r + 1, c + 1)
        fig.update_yaxes(title_text=titles[r], title_font=dict(size=12), row=r + 1, col=1)
    fig.update_annotations(font_size=11)
    fig.update_layout(coloraxis=dict(colorscale=OVERLAY_SCALE, cmin=-1, cmax=1, cmid=0,
                                     colorbar=dict(title="attribution /<br>max |attribution|", thickness=12)))
    cell = 190 if rows == 1 else 140  # the width follows the page; images stay square
    return finish(fig, title, height=110 + cell * rows, margin=dict(l=90, r=20, t=100, b=20))


def attribution_summary(attributions: Sequence[Attribution], sample_titles: Sequence[str],
                        truth=None, title: str | None = None) -> go.Figure:
    """The numbers beside the grid, one row per method and sample: target, score,
    sum of attributions, completeness gap (where the method defines one), the share of
    attribution magnitude on ground-truth positions (where known) and the time taken."""
    header = ["method", "sample", "target", "score", "Σ attribution", "completeness gap", "on ground truth", "ms"]
    rows = []
    masks = None if truth is None else as_array(truth).astype(bool)
    for a in attributions:
        v = as_array(a.values).astype(float).reshape(len(a.values), -1)
        for i, name in enumerate(sample_titles):
            share = ""
            if masks is not None:
                m = masks[i].reshape(-1)
                mag = np.abs(v[i])
                if m.size == mag.size and mag.sum() > 0:
                    share = f"{mag[m].sum() / mag.sum():.0%} (area {m.mean():.0%})"
            delta = "" if a.delta is None else f"{float(a.delta[i]):+.3g}"
            rows.append([a.method, str(name), str(int(a.target[i])), f"{float(a.score[i]):.4g}",
                         f"{v[i].sum():.4g}", delta, share, f"{a.seconds * 1e3:.0f}"])
    keep = [j for j in range(len(header)) if any(r[j] for r in rows)]
    cells = [[r[j] for r in rows] for j in keep]
    shown = [f"<b>{header[j]}</b>" for j in keep]
    widths, content = table_columns(shown, cells)
    fig = go.Figure(go.Table(
        columnwidth=widths,
        header=dict(values=shown, fill_color="#eef2f7", align="left"),
        cells=dict(values=cells, align="left", height=TABLE_ROW - 4)))
    margin = table_margin(title)
    return finish(fig, title, height=table_height(len(rows), title=bool(title)), width=table_width(content, margin),
                  margin=margin)


def attribution_pair(sides: Sequence[tuple], modality: str, *, title: str | None = None, feature_names=None,
                     vocab=None, difference: bool = False) -> go.Figure:
    """Two explanations side by side on one colour scale: ``sides`` is two (input, values,
    title) of one sample each (the same input, or two: a pinned sample and the current one).
    The scale's bound is the largest magnitude of both, so equal colours are equal values;
    ``difference`` (same input only) adds right − left on that scale. Images: overlays;
    tokens and table rows: one heatmap row per side."""
    if len(sides) != 2:
        raise InputError(f"a pair needs two sides; got {len(sides)}")
    xs = [as_array(x) for x, _, _ in sides]
    values = [as_array(v).astype(float) for _, v, _ in sides]
    names = [str(t) for _, _, t in sides]
    for x, v, n in zip(xs, values, names):
        if v.shape != x.shape:
            raise InputError(f"{n}: values shaped {v.shape} for an input shaped {x.shape}; expected one per input")
    if difference and xs[0].shape != xs[1].shape:
        raise InputError("a difference needs the same input on both sides")
    bound = max(color_bound(v) for v in values)
    label = "attribution (one scale for both)"
    if modality == "image":
        maps = [_map(v, to_hw(x)[0].shape[:2]) for x, v in zip(xs, values)]
        if difference:
            maps.append(maps[1] - maps[0])
        cols = len(maps)
        titles = names + (["right − left"] if difference else [])
        fig = make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=0.03)
        lo = float(min(np.min(x) for x in xs))
        hi = float(max(np.max(x) for x in xs))
        for c, m in enumerate(maps):
            base, _ = image_traces(xs[min(c, 1)], None, lo, hi, mask_color=MASK_COLOR)
            for t in [base[0], _overlay(m, bound, coloraxis="coloraxis", label="value"), *base[1:]]:
                fig.add_trace(t, row=1, col=c + 1)
            image_axes(fig, 1, c + 1)
        fig.update_layout(coloraxis=dict(colorscale=OVERLAY_SCALE, cmin=-bound, cmax=bound, cmid=0,
                                         colorbar=dict(title=label.replace(" (", "<br>("), thickness=12)))
        return finish(fig, title, height=380, margin=dict(l=20, r=20, t=90, b=20))
    if modality not in ("tokens", "tabular"):
        raise InputError(f"unknown modality {modality!r}; expected 'image', 'tabular' or 'tokens'")
    rows = [v.reshape(-1) for v in values] + ([values[1].reshape(-1) - values[0].reshape(-1)] if difference else [])
    width = max(len(r) for r in rows)
    z = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        z[i, :len(r)] = r
    y = names + (["right − left"] if difference else [])
    margin = dict(l=max(190, math.ceil(label_px(y, LABEL_FONT)) + 10), r=20, t=60, b=40)
    fit = None
    if modality == "tokens":
        words = [_words(x, vocab) for x in xs]
        words += [words[1]] if difference else []
        hover = [w + [""] * (width - len(w)) for w in words]
        fit = fit_rows(words, beside=margin["l"] + margin["r"] + COLORBAR)
        text = [fit.text(row) for row in hover]
        x_axis = list(range(width))
    else:
        text = hover = None
        x_axis = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(width)]
    fig = go.Figure(go.Heatmap(
        z=z, x=x_axis, y=y, text=text, hovertext=hover, texttemplate="%{text}" if text else None,
        textfont=dict(size=LABEL_FONT), colorscale=DIVERGING_SCALE, zmin=-bound, zmax=bound, zmid=0.0, xgap=2, ygap=4,
        colorbar=dict(title=label.replace(" (", "<br>("), thickness=12),
        hovertemplate="%{y}<br>" + ("position %{x}: %{hovertext}" if text else "%{x}")
                      + ", value %{z:.4g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category", title=None)
    if fit is not None:
        _position_axis(fig, fit, width)
    else:
        fig.update_xaxes(type="category", title="feature", tickangle=-50)
    return finish(fig, title, height=150 + 60 * len(y) + (120 if modality == "tabular" else 0), margin=margin,
                  width=None if fit is None or fit.width is None else fit.width + margin["l"] + margin["r"] + COLORBAR)


__all__ = ["attribution_image", "attribution_bars", "attribution_tokens", "attribution_view",
           "attribution_grid", "attribution_summary", "attribution_pair", "OVERLAY_SCALE"]
