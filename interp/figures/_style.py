"""Shared look of every interp figure: one template, one font, tight margins."""

from __future__ import annotations

import plotly.graph_objects as go

TEMPLATE = "plotly_white"
FONT = dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=12)
IMAGE_SCALE = "Greys"            # ink dark on white, as digits are drawn
DIVERGING_SCALE = "RdBu_r"       # negative blue, positive red, white at zero
SEQUENTIAL_SCALE = "Blues"
ACTIVATION_SCALE = "Viridis"     # non-negative activations
ACCENT = "#1f77b4"
POSITIVE, NEGATIVE = "#d62728", "#1f77b4"


TABLE_ROW = 26


def table_height(n_rows: int, title: bool = True, cap: int = 900) -> int:
    """Pixels for a plotly Table with ``n_rows`` body rows plus a header, under ``finish``'s margins."""
    margins = (50 if title else 20) + 40
    return min(cap, margins + (n_rows + 1) * TABLE_ROW + 40)


def finish(fig: go.Figure, title: str | None = None, height: int | None = None,
           width: int | None = None, **layout) -> go.Figure:
    """Apply the common layout to ``fig`` and return it."""
    margin = layout.pop("margin", dict(l=50, r=20, t=50 if title else 20, b=40))
    fig.update_layout(
        template=TEMPLATE, font=FONT, margin=margin,
        title=dict(text=title, x=0.0, xanchor="left") if title else None,
        height=height, width=width, **layout,
    )
    return fig
