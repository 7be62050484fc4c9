"""Figures of single samples and what a model says about them.

A sample is shown as what it is: an image as an image (with its ground-truth
mask outlined when known), a table row as bars per feature, a token sequence as
a strip of words. Predictions are shown beside it as class probabilities, a
reconstruction, or a discriminator's "real" probability.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import InputError
from ._style import ACCENT, FONT, IMAGE_SCALE, LABEL_FONT, NEGATIVE, POSITIVE, finish, fit_labels, fit_rows, label_px
from .arrays import as_array
from .images import image_axes, image_traces


def image_sample(image, title: str | None = None, mask=None, zmin: float | None = 0.0,
                 zmax: float | None = 1.0, height: int = 320) -> go.Figure:
    """One image; ``mask`` (same size, bool) is outlined in red as the ground truth."""
    traces, note = image_traces(image, mask, zmin, zmax)
    fig = go.Figure(traces)
    image_axes(fig)
    return finish(fig, (title or "") + note or None, height=height, width=height + 20)


def image_grid(images, titles: Sequence[str] | None = None, cols: int = 8,
               title: str | None = None, zmin: float = 0.0, zmax: float = 1.0,
               ids: Sequence[int] | None = None) -> go.Figure:
    """Several images in a grid sharing one colour scale (e.g. input vs reconstruction);
    ``ids`` (e.g. sample indices) are put in each image's customdata for clicks."""
    imgs = as_array(images)
    if imgs.ndim not in (3, 4) or len(imgs) == 0:
        raise InputError(f"images must be a non-empty batch shaped (N, H, W) or (N, C, H, W); "
                         f"got {imgs.shape}")
    if titles is not None and len(titles) != len(imgs):
        raise InputError(f"got {len(titles)} titles for {len(imgs)} images")
    if ids is not None and len(ids) != len(imgs):
        raise InputError(f"got {len(ids)} ids for {len(imgs)} images")
    n = len(imgs)
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles) if titles else None,
                        horizontal_spacing=0.02, vertical_spacing=0.08 if titles else 0.02)
    for i, img in enumerate(imgs):
        r, c = divmod(i, cols)
        traces, _ = image_traces(img, zmin=zmin, zmax=zmax, coloraxis="coloraxis")
        if ids is not None and isinstance(traces[0], go.Heatmap):
            traces[0].customdata = np.full(np.shape(traces[0].z), int(ids[i]))
            traces[0].hovertemplate = f"sample {int(ids[i])}<br>row %{{y}}, col %{{x}}: %{{z:.3f}}<extra></extra>"
        for t in traces:
            fig.add_trace(t, row=r + 1, col=c + 1)
        image_axes(fig, r + 1, c + 1)
    fig.update_layout(coloraxis=dict(colorscale=IMAGE_SCALE, cmin=zmin, cmax=zmax, showscale=False))
    cell = 90 if cols > 4 else 150
    return finish(fig, title, height=60 + cell * rows + (20 * rows if titles else 0))


def tabular_sample(values, feature_names: Sequence[str], title: str | None = None,
                   raw_values=None, value_label: str = "standardised value") -> go.Figure:
    """One table row as horizontal bars per feature (hover shows the raw value if given)."""
    v = as_array(values).astype(float).reshape(-1)
    if len(v) != len(feature_names):
        raise InputError(f"got {len(v)} values for {len(feature_names)} feature names")
    raw = as_array(raw_values).astype(float).reshape(-1) if raw_values is not None else v
    if len(raw) != len(v):
        raise InputError(f"got {len(raw)} raw values for {len(v)} features")
    fig = go.Figure(go.Bar(
        x=v, y=list(feature_names), orientation="h", customdata=raw,
        marker_color=[POSITIVE if a >= 0 else NEGATIVE for a in v],
        hovertemplate="%{y}: %{x:.3f} (raw %{customdata:.4g})<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title=value_label, zeroline=True, zerolinecolor="#888")
    return finish(fig, title, height=80 + 18 * len(v))


def token_sample(tokens: Sequence[str], title: str | None = None, mask=None) -> go.Figure:
    """A token sequence as a strip of words; ``mask`` positions (ground truth) are shaded.
    Words keep a legible size: the strip widens for many tokens, and past ``MAX_PLOT``
    every k-th word is written (hover names each)."""
    toks = [str(t) for t in tokens]
    m = np.zeros(len(toks)) if mask is None else as_array(mask).astype(float).reshape(-1)
    if len(m) != len(toks):
        raise InputError(f"mask has {len(m)} positions for {len(toks)} tokens")
    note = " (shaded: ground-truth positions)" if mask is not None and m.any() else ""
    margin = dict(l=50, r=20, t=50 if (title or note) else 20, b=40)
    fit = fit_labels(toks, beside=margin["l"] + margin["r"])
    fig = go.Figure(go.Heatmap(
        z=[m], x=list(range(len(toks))), y=[""], text=[fit.text(toks)], hovertext=[toks], texttemplate="%{text}",
        textfont=dict(size=LABEL_FONT), colorscale=[[0, "#f4f6f9"], [1, "#ffd28a"]], zmin=0, zmax=1,
        showscale=False, xgap=3, hovertemplate="position %{x}: %{hovertext}<extra></extra>",
    ))
    ticks, _ = fit.shown(range(len(toks)))
    fig.update_xaxes(title="position", tickmode="array", tickvals=ticks, ticktext=[str(t) for t in ticks],
                     tickfont=dict(size=LABEL_FONT), showgrid=False)
    fig.update_yaxes(showticklabels=False, showgrid=False)
    return finish(fig, (title or "") + note or None, height=150, margin=margin,
                  width=None if fit.width is None else fit.width + margin["l"] + margin["r"])


def sample_view(x, modality: str, *, title: str | None = None, feature_names=None, vocab=None,
                truth=None, raw_values=None) -> go.Figure:
    """The right view of one sample for its modality: ``image``, ``tabular`` or ``tokens``."""
    if modality == "image":
        return image_sample(x, title, mask=truth)
    if modality == "tabular":
        if feature_names is None:
            feature_names = [f"x{i}" for i in range(as_array(x).size)]
        return tabular_sample(x, feature_names, title, raw_values=raw_values)
    if modality == "tokens":
        ids = as_array(x).astype(int).reshape(-1)
        if vocab is not None and len(ids) and not (0 <= ids.min() and ids.max() < len(vocab)):
            raise InputError(f"token ids must lie in [0, {len(vocab) - 1}] for a vocabulary of "
                             f"{len(vocab)}; got ids from {ids.min()} to {ids.max()}")
        words = [vocab[i] for i in ids] if vocab is not None else [str(i) for i in ids]
        return token_sample(words, title, mask=truth)
    raise InputError(f"unknown modality {modality!r}; expected 'image', 'tabular' or 'tokens'")


def class_probabilities(probs, classes: Sequence[str], true: int | None = None,
                        title: str | None = None) -> go.Figure:
    """Bar chart of class probabilities; the predicted class is filled, the true class marked."""
    p = as_array(probs).astype(float).reshape(-1)
    if len(p) != len(classes):
        raise InputError(f"got {len(p)} probabilities for {len(classes)} classes")
    if true is not None and not 0 <= int(true) < len(classes):
        raise InputError(f"true class {true} is out of range for {len(classes)} classes")
    pred = int(p.argmax())
    labels = [str(c) for c in classes]
    colors = [ACCENT if i == pred else "#c9d6e8" for i in range(len(p))]
    fig = go.Figure(go.Bar(x=labels, y=p, marker_color=colors,
                           marker_line=dict(color=[POSITIVE if i == true else "rgba(0,0,0,0)"
                                                   for i in range(len(p))], width=3),
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_yaxes(range=[0, 1], title="probability")
    fig.update_xaxes(type="category")
    if title is None:
        title = f"predicted {labels[pred]} ({p[pred]:.2f})"
        if true is not None:
            title += f" · true {labels[true]}" + (" ✓" if true == pred else " ✗")
    return finish(fig, title, height=300)


def real_score(score: float, title: str | None = None) -> go.Figure:
    """A discriminator's probability that a sample is real, on a 0-1 bar."""
    s = float(score)
    fig = go.Figure(go.Bar(x=[s], y=["real?"], orientation="h",
                           marker_color=POSITIVE if s >= 0.5 else NEGATIVE,
                           hovertemplate="P(real): %{x:.3f}<extra></extra>"))
    fig.add_vline(x=0.5, line_dash="dot", line_color="#888")
    fig.update_xaxes(range=[0, 1], title="discriminator: probability real")
    return finish(fig, title or f"P(real): {s:.3f}", height=180)


def sample_grid(samples, modality: str, ids: Sequence[int], titles: Sequence[str] | None = None,
                title: str | None = None, vocab=None, feature_names=None) -> go.Figure:
    """Several samples shown as what they are, each clickable (customdata = its id):
    images in a grid, token sequences as rows of words, table rows as a heatmap."""
    x = as_array(samples)
    if len(x) != len(ids):
        raise InputError(f"got {len(ids)} ids for {len(x)} samples")
    if modality == "image":
        return image_grid(x, titles, cols=min(len(x), 5), title=title, ids=ids)
    rows = [str(t) for t in titles] if titles is not None else [f"sample {i}" for i in ids]
    idgrid = np.broadcast_to(np.asarray(ids)[:, None], x.reshape(len(x), -1).shape)
    if modality == "tokens":
        ids_ = x.astype(int).reshape(len(x), -1)
        words = [[vocab[j] if vocab is not None else str(j) for j in row] for row in ids_]
        margin = dict(l=math.ceil(label_px(rows, FONT["size"])) + 10, r=20, t=50 if title else 20, b=40)
        fit = fit_rows(words, beside=margin["l"] + margin["r"])
        fig = go.Figure(go.Heatmap(z=np.zeros(ids_.shape), text=[fit.text(row) for row in words], hovertext=words,
                                   texttemplate="%{text}", customdata=idgrid, textfont=dict(size=LABEL_FONT),
                                   y=rows, colorscale=[[0, "#f4f6f9"], [1, "#f4f6f9"]], showscale=False,
                                   xgap=2, ygap=2, hovertemplate="%{y}, position %{x}: %{hovertext}<extra></extra>"))
        fig.update_yaxes(autorange="reversed", type="category")
        ticks, _ = fit.shown(range(ids_.shape[1]))
        fig.update_xaxes(title="position", tickmode="array", tickvals=ticks, ticktext=[str(t) for t in ticks],
                         tickfont=dict(size=LABEL_FONT))
        return finish(fig, title, height=110 + 34 * len(x), margin=margin,
                      width=None if fit.width is None else fit.width + margin["l"] + margin["r"])
    if modality == "tabular":
        v = x.astype(float).reshape(len(x), -1)
        names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(v.shape[1])]
        bound = float(np.abs(v).max()) or 1.0
        fig = go.Figure(go.Heatmap(z=v, x=names, y=rows, customdata=idgrid, colorscale="RdBu_r", zmid=0,
                                   zmin=-bound, zmax=bound,
                                   hovertemplate="%{y}<br>%{x}: %{z:.3f}<extra></extra>"))
        fig.update_yaxes(autorange="reversed", type="category")
        fig.update_xaxes(tickangle=-60)
        return finish(fig, title, height=260 + 24 * len(x))
    raise InputError(f"unknown modality {modality!r}; expected 'image', 'tabular' or 'tokens'")
