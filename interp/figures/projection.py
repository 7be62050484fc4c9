"""Figures of latent projections: a map of samples coloured by what matters, and how
class separation grows layer by layer.

Every point carries its sample index as ``customdata`` (the dashboard makes a clicked or
lasso-selected point the current sample), and its hover text names the sample (label,
prediction, feature values or tokens, as the caller gives them). Categorical colours
(labels, predictions, right/wrong) get one trace per category, so the legend hides and
shows them; continuous colours (a unit's activation, an attribution score) one trace
with a colour bar. Each map says how far to trust it: trustworthiness and k-NN label
agreement in the map beside the original space (:class:`interp.projection.MapQuality`).
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ..errors import InputError
from ..projection import LayerProjection, MapQuality
from ._style import ACTIVATION_SCALE, DIVERGING_SCALE, finish
from .arrays import as_array

PALETTE = qualitative.D3 + qualitative.Set2  # 18 categories before colours repeat
WEBGL_ABOVE = 5000  # points drawn as SVG up to here (hover and selection are crisper), WebGL above;
                    # customdata goes in as lists: Dash drops typed arrays from clickData


def _flat(n: int):
    return go.Scattergl if n > WEBGL_ABOVE else go.Scatter
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def _coordinates(coordinates) -> np.ndarray:
    c = as_array(coordinates).astype(float)
    if c.ndim != 2 or c.shape[1] not in (2, 3):
        raise InputError(f"coordinates must be (samples, 2) or (samples, 3); got {c.shape}")
    return c


def quality_text(q: MapQuality | None) -> str:
    """One line on how far to trust a map."""
    if q is None:
        return ""
    text = f"trustworthiness {q.trustworthiness:.3f} ({q.k} nearest neighbours)"
    if q.agreement_map is not None:
        text += (f" · same-label neighbours: {q.agreement_map:.1%} in the map, "
                 f"{q.agreement_original:.1%} in the layer")
    return text


def projection_map(coordinates, color=None, *, categorical: bool | None = None, class_names=None,
                   color_name: str = "label", hover=None, sample_ids=None, quality: MapQuality | None = None,
                   title: str | None = None, selected=None, marker_size: int = 6) -> go.Figure:
    """A 2-D or 3-D scatter of ``coordinates`` (samples, 2|3). ``color``: one value per
    sample, categorical (labels, predictions, booleans; names from ``class_names``) or
    continuous (a unit's activation: a sequential scale; signed scores: a diverging scale
    centred at 0); ``categorical`` overrides the guess (integers and booleans are
    categories). ``hover``: one text per sample. ``sample_ids``: the index each point
    stands for (default 0..n-1), in ``customdata``. ``selected``: indices ringed in black."""
    c = _coordinates(coordinates)
    n, three = len(c), c.shape[1] == 3
    ids = np.arange(n) if sample_ids is None else np.asarray(sample_ids).reshape(-1)
    if len(ids) != n:
        raise InputError(f"sample_ids must be one per point ({n}); got {len(ids)}")
    texts = [f"sample {i}" for i in ids] if hover is None else [str(h) for h in hover]
    if len(texts) != n:
        raise InputError(f"hover must be one text per point ({n}); got {len(texts)}")
    values = None if color is None else as_array(color).reshape(-1)
    if values is not None and len(values) != n:
        raise InputError(f"color must be one value per point ({n}); got {len(values)}")
    if categorical is None:
        categorical = values is not None and (values.dtype == bool or np.issubdtype(values.dtype, np.integer))
    scatter = go.Scatter3d if three else _flat(n)
    axes = dict(x=c[:, 0], y=c[:, 1], **({"z": c[:, 2]} if three else {}))
    template = "%{text}<extra></extra>"
    fig = go.Figure()
    if values is None or categorical:
        groups = [(None, np.ones(n, bool))] if values is None else [(v, values == v) for v in np.unique(values)]
        for k, (v, mask) in enumerate(groups):
            name = (color_name if v is None else _category(v, class_names))
            fig.add_trace(scatter(**{a: vals[mask] for a, vals in axes.items()}, mode="markers", name=name,
                                  text=[t for t, m in zip(texts, mask) if m], customdata=ids[mask].tolist(),
                                  hovertemplate=template, showlegend=v is not None,
                                  marker=dict(size=marker_size if not three else max(2, marker_size - 3),
                                              color=PALETTE[k % len(PALETTE)], opacity=0.85)))
    else:
        v = values.astype(float)
        signed = np.nanmin(v) < 0 < np.nanmax(v)
        bound = float(np.nanmax(np.abs(v))) if signed else None
        fig.add_trace(scatter(**axes, mode="markers", name=color_name, text=texts, customdata=ids.tolist(),
                              showlegend=False,  # the colour bar says it
                              hovertemplate=f"{color_name} %{{marker.color:.4g}}<br>" + template,
                              marker=dict(size=marker_size if not three else max(2, marker_size - 3), color=v,
                                          colorscale=DIVERGING_SCALE if signed else ACTIVATION_SCALE,
                                          cmin=-bound if signed else None, cmax=bound if signed else None,
                                          colorbar=dict(title=color_name, thickness=12), opacity=0.85)))
    if selected is not None and len(selected):
        chosen = np.isin(ids, np.asarray(selected).reshape(-1))
        fig.add_trace(scatter(**{a: vals[chosen] for a, vals in axes.items()}, mode="markers", name="selected",
                              text=[t for t, m in zip(texts, chosen) if m], customdata=ids[chosen].tolist(),
                              hovertemplate=template,
                              marker=dict(size=marker_size + 8, color="rgba(0,0,0,0)",
                                          line=dict(color="black", width=2))))
    sub = quality_text(quality)
    head = (title or "Map of the samples") + (f"<br><sup>{sub}</sup>" if sub else "")
    if three:
        fig.update_layout(scene=dict(xaxis_title="1", yaxis_title="2", zaxis_title="3"))
    else:
        fig.update_xaxes(showticklabels=False, title=None, zeroline=False)
        fig.update_yaxes(showticklabels=False, title=None, zeroline=False, scaleanchor="x", scaleratio=1)
    legend = (dict(title=color_name, itemsizing="constant") if categorical or values is None
              else dict(orientation="h", x=0, y=-0.02, yanchor="top"))  # beside a colour bar: below the map
    return finish(fig, head, height=520, margin=dict(l=20, r=20, t=70, b=20), dragmode="lasso", legend=legend)


def _category(v, class_names) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "right" if v else "wrong"
    if class_names is not None and 0 <= int(v) < len(class_names):
        return str(class_names[int(v)])
    return str(v)


def layer_maps(projections: list[LayerProjection], labels=None, class_names=None, title: str | None = None,
               cols: int = 3) -> go.Figure:
    """Small multiples, one map per layer in the order given (input to output), coloured
    by ``labels`` (default: each projection's own), each titled with its share of
    same-label neighbours in the layer: how class separation grows with depth."""
    if not projections:
        raise InputError("layer_maps needs at least one LayerProjection")
    for p in projections:
        if not isinstance(p, LayerProjection):
            raise InputError(f"expected LayerProjection results (interp.layer_projection.project_layer); "
                             f"got {type(p).__name__}")
    cols = min(cols, len(projections))
    rows = math.ceil(len(projections) / cols)
    names = [f"{p.layer}<br><sup>{_agreement(p)}</sup>" for p in projections]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.03,
                        vertical_spacing=0.12 / max(1, rows - 1) if rows > 1 else 0.1)
    fig.update_annotations(font_size=12)
    seen = set()
    for k, p in enumerate(projections):
        c = _coordinates(p.coordinates)[:, :2]
        y = as_array(labels if labels is not None else p.labels) if (labels is not None or p.labels is not None) \
            else np.zeros(len(c), int)
        y = y.reshape(-1)
        for j, v in enumerate(np.unique(y)):
            mask = y == v
            name = _category(v, class_names)
            fig.add_trace(_flat(len(c))(x=c[mask, 0], y=c[mask, 1], mode="markers", name=name, legendgroup=name,
                                       showlegend=name not in seen, customdata=np.nonzero(mask)[0].tolist(),
                                       hovertemplate=f"{name} · sample %{{customdata}}<extra>{p.layer}</extra>",
                                       marker=dict(size=4, color=PALETTE[j % len(PALETTE)], opacity=0.8)),
                          row=k // cols + 1, col=k % cols + 1)
            seen.add(name)
    fig.update_xaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False)
    method = METHOD_NAMES.get(projections[0].method, projections[0].method)
    head = title or f"{method} of each layer, input to output"
    return finish(fig, f"{head}<br><sup>same-label share of the {projections[0].k} nearest neighbours in each "
                       "layer: how classes separate with depth</sup>", height=80 + 300 * rows,
                  margin=dict(l=20, r=20, t=100, b=20), legend=dict(itemsizing="constant"))


def _agreement(p: LayerProjection) -> str:
    if p.agreement_original is None:
        return f"trust {p.trustworthiness:.2f}"
    return f"neighbours {p.agreement_original:.0%} · trust {p.trustworthiness:.2f}"


__all__ = ["projection_map", "layer_maps", "quality_text", "METHOD_NAMES"]
