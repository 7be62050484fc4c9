"""Thumbnails of a report's key figures for the index: small PNGs inlined as data URIs.

A thumbnail is drawn here with Pillow from the numbers behind the figure (a sample's
relevance, a layer's map), not from the plotly figure: plotly draws only in a browser,
and the HTML must never need one (Kaleido and the PDF do, on request). A thumbnail is a
glance, so it has no axes or text; the page it links to has them. The same numbers give
the same bytes (Pillow's PNG encoder is deterministic), so two runs still compare equal.

Colours are the figures': relevance red (positive) and blue (negative) on white, scaled
to the sample's largest magnitude; map points in plotly's qualitative palette by label.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.colors
from PIL import Image, ImageDraw

from interp.figures._style import NEGATIVE, POSITIVE

SIZE = 96            # px: the longer side of a thumbnail
STRIP = 24           # px: the height of a strip (tabular features, tokens)
STRIP_WIDTH = 144    # px: the most a strip's cells take together (fewer cells: whole pixels each)
POINT = 2            # px: the radius of a map point
MAX_POINTS = 4000    # map points drawn (evenly spaced through the set); enough to show its shape


def _rgb(colour: str) -> np.ndarray:
    return np.array(plotly.colors.hex_to_rgb(colour) if colour.startswith("#") else
                    plotly.colors.unlabel_rgb(colour), float)


def _uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def relevance(values, image: bool) -> str:
    """A sample's relevance as a heat map (``image``: summed over channels, shaped as the
    picture) or a strip of cells, one per feature or token. Returns a PNG data URI."""
    v = np.nan_to_num(np.asarray(values, float))
    if image and v.ndim == 3:
        v = v.sum(0)
    if not (image and v.ndim == 2):
        v = v.reshape(1, -1)
    scale = float(np.abs(v).max()) or 1.0
    t = np.clip(v / scale, -1.0, 1.0)[..., None]
    white = np.array([255.0, 255.0, 255.0])
    rgb = np.where(t >= 0, white + t * (_rgb(POSITIVE) - white), white - t * (_rgb(NEGATIVE) - white))
    picture = Image.fromarray(rgb.round().astype(np.uint8), "RGB")
    h, w = v.shape
    if h == 1:  # a strip: cells as wide as fit, at least a pixel each
        size = (max(w, w * max(1, STRIP_WIDTH // w)), STRIP)
    else:
        size = (SIZE, max(1, round(SIZE * h / w))) if w >= h else (max(1, round(SIZE * w / h)), SIZE)
    return _uri(picture.resize(size, Image.Resampling.NEAREST))


def scatter(coordinates, labels=None) -> str:
    """A 2-D map's points coloured by label (integer classes: the palette; numbers: a
    sequential scale; none: grey). Returns a PNG data URI."""
    xy = np.asarray(coordinates, float)[:, :2]
    keep = np.isfinite(xy).all(1)
    if len(xy) > MAX_POINTS:
        keep &= np.isin(np.arange(len(xy)), np.linspace(0, len(xy) - 1, MAX_POINTS).round().astype(int))
    xy = xy[keep]
    picture = Image.new("RGB", (SIZE, SIZE), "white")
    if not len(xy):
        return _uri(picture)
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    inner = SIZE - 2 * (POINT + 1)
    px = (xy - lo) / span.max() * inner + (POINT + 1) + (inner - span / span.max() * inner) / 2
    px[:, 1] = SIZE - px[:, 1]  # y up
    colours = _colours(None if labels is None else np.asarray(labels)[keep], len(xy))
    draw = ImageDraw.Draw(picture)
    for (x, y), colour in zip(px, colours):
        draw.ellipse((x - POINT, y - POINT, x + POINT, y + POINT), fill=colour)
    return _uri(picture)


def _colours(labels, n: int) -> list[tuple[int, int, int]]:
    if labels is None:
        return [(120, 128, 140)] * n
    labels = labels.reshape(len(labels), -1)[:, 0]
    palette = plotly.colors.qualitative.Plotly
    if np.issubdtype(labels.dtype, np.integer):
        return [tuple(int(c) for c in _rgb(palette[int(v) % len(palette)])) for v in labels]
    v = labels.astype(float)
    lo, hi = np.nanmin(v), np.nanmax(v)
    t = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    scale = plotly.colors.sequential.Viridis
    return [tuple(int(c) for c in _rgb(plotly.colors.sample_colorscale(scale, [float(x)])[0])) for x in t]


__all__ = ["relevance", "scatter", "SIZE"]
