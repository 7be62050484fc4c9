"""Images in plotly figures: any image layout to (H, W) or RGB, its traces (with a
ground-truth mask outlined) and the axes an image wants (no ticks, square pixels, row 0
on top).

Shared by the builders that show images: samples, attributions (an overlay on the
image), LRP and the generative views.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..errors import InputError
from ._style import IMAGE_SCALE, POSITIVE
from .arrays import as_array


def to_hw(image) -> tuple[np.ndarray, str]:
    """(H, W) or (H, W, 3) array from (H, W), (1, H, W), (3, H, W), (H, W, 3) or (C, H, W)."""
    a = as_array(image).astype(float)
    if a.ndim == 2:
        return a, ""
    if a.ndim == 3 and a.shape[0] == 1:
        return a[0], ""
    if a.ndim == 3 and a.shape[0] == 3:
        return np.moveaxis(a, 0, -1), ""
    if a.ndim == 3 and a.shape[-1] == 3:  # channels-last RGB
        return a, ""
    if a.ndim == 3:
        return a.mean(0), f" (mean of {a.shape[0]} channels)"
    raise InputError(f"an image must be shaped (H, W) or (C, H, W); got {a.shape}")


def image_traces(image, mask=None, zmin=None, zmax=None, coloraxis: str | None = None,
                  mask_color: str = POSITIVE):
    hw, note = to_hw(image)
    traces = []
    if hw.ndim == 3:  # RGB
        lo, hi = (hw.min(), hw.max()) if zmin is None else (zmin, zmax)
        rgb = np.clip((hw - lo) / max(hi - lo, 1e-12), 0, 1) * 255
        traces.append(go.Image(z=rgb.astype(np.uint8), hoverinfo="x+y"))
    else:
        kw = dict(coloraxis=coloraxis) if coloraxis else dict(colorscale=IMAGE_SCALE, showscale=False)
        traces.append(go.Heatmap(z=hw, zmin=zmin, zmax=zmax,
                                 hovertemplate="row %{y}, col %{x}: %{z:.3f}<extra></extra>", **kw))
    if mask is not None:
        m, _ = to_hw(mask)
        if m.ndim == 3:
            m = m.max(-1)
        if m.shape != hw.shape[:2]:
            raise InputError(f"mask of size {m.shape} does not match the image's {hw.shape[:2]}")
        traces.append(go.Contour(
            z=m.astype(float), showscale=False, hoverinfo="skip", name="ground truth",
            contours=dict(start=0.5, end=0.5, size=1, coloring="none"),
            line=dict(color=mask_color, width=2), showlegend=False,
        ))
    return traces, note


def image_axes(fig: go.Figure, row=None, col=None) -> None:
    """Axes that show an image as it is: no ticks, rows downwards, square pixels. In a grid
    each cell's y axis is anchored to its own x axis (anchoring all to the first, or to
    none, stretches the images to their cells)."""
    kw = dict(row=row, col=col) if row else {}
    anchor = fig.get_subplot(row, col).xaxis.plotly_name.replace("axis", "") if row else "x"
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain", **kw)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                     scaleanchor=anchor, constrain="domain", **kw)


__all__ = ["to_hw", "image_traces", "image_axes"]
