"""Figures of generative latents: a traversal grid, a VAE's KL per latent unit, and an
interpolation path with the critic's score along it. Builders take the results of
:mod:`interp.generative` (image outputs: (C, H, W) or (H, W) per code)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import InputError
from ..generative import COLLAPSED, Interpolation, Traversal
from ._style import ACCENT, IMAGE_SCALE, NEGATIVE, finish
from .arrays import as_array
from .images import image_axes, image_traces
from .samples import image_grid


def traversal_grid(t: Traversal, title: str | None = None, zmin: float = 0.0, zmax: float = 1.0) -> go.Figure:
    """The decoded grid: rows walk the first unit (or direction), columns the second,
    each labelled with its offset; the centre is the base code."""
    if not isinstance(t, Traversal):
        raise InputError(f"expected a Traversal (interp.generative.traverse); got {type(t).__name__}")
    out = as_array(t.outputs)
    rows, cols = out.shape[:2]
    if out.ndim not in (4, 5):
        raise InputError(f"traversal_grid draws image outputs; got outputs shaped {out.shape[2:]} per code")
    offsets = np.where(np.abs(as_array(t.offsets).astype(float)) < 1e-6, 0.0, as_array(t.offsets).astype(float))
    names = ([f"unit {u}" for u in t.units] if t.units else [f"direction {k + 1}" for k in range(len(t.directions))])
    titles = [(f"{names[0]} {offsets[i]:+.2g}" if j == 0 else "") + ("<br>" if j == 0 and rows > 1 else "")
              + (f"{names[-1]} {offsets[j]:+.2g}" if i == 0 or rows == 1 else "")
              for i in range(rows) for j in range(cols)]
    fig = image_grid(out.reshape(rows * cols, *out.shape[2:]), titles, cols=cols, zmin=zmin, zmax=zmax)
    fig.update_annotations(font_size=10)
    head = title or ("Latent traversal: " + (" × ".join(names)) + " around the base code")
    return finish(fig, f"{head}<br><sup>offsets in units of each latent's spread over the data; the centre "
                       "decodes the base code</sup>", height=fig.layout.height + 40,
                  margin=dict(l=20, r=20, t=90, b=20))


def kl_bars(kl, title: str | None = None) -> go.Figure:
    """The mean KL divergence to the prior per latent unit: tall bars carry information
    about the input; bars under COLLAPSED (grey) are collapsed units."""
    v = as_array(kl).astype(float).reshape(-1)
    if len(v) == 0 or not np.isfinite(v).all():
        raise InputError("kl must be finite values, one per latent unit")
    used = v >= COLLAPSED
    fig = go.Figure(go.Bar(x=[f"unit {i}" for i in range(len(v))], y=v,
                           marker_color=[ACCENT if u else "#b0b7c3" for u in used],
                           hovertemplate="%{x}: KL %{y:.4f} nats<extra></extra>"))
    fig.update_yaxes(title="mean KL to the prior (nats)", rangemode="tozero")
    head = title or "KL divergence per latent unit"
    sub = f"{int(used.sum())} of {len(v)} units used; grey: below {COLLAPSED:g} nats (collapsed)"
    return finish(fig, f"{head}<br><sup>{sub}</sup>", height=340, margin=dict(l=60, r=20, t=80, b=40))


def interpolation_path(p: Interpolation, title: str | None = None, score_name: str = "critic score",
                       zmin: float = 0.0, zmax: float = 1.0) -> go.Figure:
    """The decoded outputs from the start code to the end code, and below them the
    critic's score of each (e.g. the discriminator's real logit)."""
    if not isinstance(p, Interpolation):
        raise InputError(f"expected an Interpolation (interp.generative.interpolate); got {type(p).__name__}")
    out, alphas = as_array(p.outputs), as_array(p.alphas).astype(float)
    n = len(out)
    with_scores = p.scores is not None
    specs = [[{} for _ in range(n)]] + ([[{"colspan": n}] + [None] * (n - 1)] if with_scores else [])
    fig = make_subplots(rows=1 + with_scores, cols=n, specs=specs, row_heights=[0.55, 0.45] if with_scores else None,
                        horizontal_spacing=0.01, vertical_spacing=0.12,
                        subplot_titles=[f"{a:.2f}" for a in alphas] + ([""] if with_scores else []))
    for i, img in enumerate(out):
        traces, _ = image_traces(img, zmin=zmin, zmax=zmax, coloraxis="coloraxis")
        for t in traces:
            fig.add_trace(t, row=1, col=i + 1)
        image_axes(fig, 1, i + 1)
    fig.update_layout(coloraxis=dict(colorscale=IMAGE_SCALE, cmin=zmin, cmax=zmax, showscale=False))
    if with_scores:
        s = as_array(p.scores).astype(float).reshape(n, -1)[:, 0]
        fig.add_trace(go.Scatter(x=alphas, y=s, mode="lines+markers", line=dict(color=NEGATIVE, width=2),
                                 name=score_name, showlegend=False,
                                 hovertemplate="α %{x:.2f}<br>" + score_name + " %{y:.3f}<extra></extra>"),
                      row=2, col=1)
        fig.update_xaxes(title="α (0: start code, 1: end code)", row=2, col=1)
        fig.update_yaxes(title=score_name, row=2, col=1)
    fig.update_annotations(font_size=10)
    head = title or "Interpolation between two codes"
    return finish(fig, head, height=380 if with_scores else 200, margin=dict(l=60, r=20, t=60, b=40))


__all__ = ["traversal_grid", "kl_bars", "interpolation_path"]
