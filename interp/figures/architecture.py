"""Architecture table: layers with type, output shape and parameter count."""

from __future__ import annotations

import plotly.graph_objects as go

from ..architecture import Architecture
from ._style import TABLE_ROW, finish, table_columns, table_height, table_margin, table_width


def architecture_table(summary: Architecture, title: str | None = None) -> go.Figure:
    """One row per layer of an :class:`interp.architecture.Architecture`, plus a total."""
    rows = summary.rows
    names = [r.name for r in rows] + ["<b>total</b>"]
    types = [r.type for r in rows] + [summary.model_class]
    shapes = [r.shape_text for r in rows] + ["input: " + "×".join(map(str, summary.input_shape))]
    params = [f"{r.parameters:,}" for r in rows] + [f"<b>{summary.total_parameters:,}</b>"]
    header = ["<b>layer</b>", "<b>type</b>", "<b>output shape (batch of 1)</b>", "<b>parameters</b>"]
    cells = [names, types, shapes, params]
    widths, content = table_columns(header, cells)
    fig = go.Figure(go.Table(
        columnwidth=widths,
        header=dict(values=header, fill_color="#eef2f7", align="left", height=TABLE_ROW),
        cells=dict(values=cells, align=["left", "left", "left", "right"],
                   fill_color=[["white", "#fafbfc"] * (len(names) // 2 + 1)], height=TABLE_ROW),
    ))
    title = title or f"{summary.model_class}: {summary.total_parameters:,} parameters"
    margin = table_margin(title)
    return finish(fig, title, height=table_height(len(names)), width=table_width(content, margin), margin=margin)
