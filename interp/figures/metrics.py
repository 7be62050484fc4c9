"""Figures of test metrics: confusion matrix and a metrics table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ..errors import InputError
from ._style import SEQUENTIAL_SCALE, TABLE_ROW, finish, table_columns, table_height, table_margin, table_width


def confusion_matrix(matrix, classes: Sequence[str], title: str = "Confusion matrix (test split)") -> go.Figure:
    """Counts as text, colour by row share (recall), true class down, predicted across."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(classes):
        raise InputError(f"confusion matrix must be square with one row per class "
                         f"({len(classes)}); got shape {m.shape}")
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    labels = [str(c) for c in classes]
    fig = go.Figure(go.Heatmap(
        z=share, x=labels, y=labels, colorscale=SEQUENTIAL_SCALE, zmin=0, zmax=1,
        text=m.astype(int).astype(str), texttemplate="%{text}",
        customdata=share, colorbar=dict(title="row share"),
        hovertemplate="true %{y}, predicted %{x}: %{text} (%{customdata:.1%} of row)<extra></extra>",
    ))
    fig.update_xaxes(title="predicted", type="category", side="bottom")
    fig.update_yaxes(title="true", type="category", autorange="reversed", scaleanchor="x")
    size = 180 + 38 * len(labels)
    return finish(fig, title, height=size)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def metrics_table(metrics: Mapping[str, object], title: str = "Test metrics",
                  bars: Mapping[str, str] | None = None) -> go.Figure:
    """Scalar metrics as a two- or three-column table (lists and matrices are left out)."""
    keys = [k for k, v in metrics.items() if not isinstance(v, (list, tuple, dict))]
    columns = [[f"<b>{k}</b>" for k in keys], [_fmt(metrics[k]) for k in keys]]
    header = ["<b>metric</b>", "<b>value</b>"]
    if bars:
        columns.append([bars.get(k, "") for k in keys])
        header.append("<b>quality bar</b>")
    widths, content = table_columns(header, columns)
    fig = go.Figure(go.Table(columnwidth=widths,
                             header=dict(values=header, fill_color="#eef2f7", align="left", height=TABLE_ROW),
                             cells=dict(values=columns, align="left", height=TABLE_ROW)))
    margin = table_margin(title)
    return finish(fig, title, height=table_height(len(keys)), width=table_width(content, margin), margin=margin)
