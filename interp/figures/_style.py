"""Shared look of every interp figure: one template, one font, tight margins.

Also the few rules that keep a figure honest and legible wherever it is drawn: whiskers
of a quantity that cannot be negative stop at zero (:func:`error_bars`); token labels keep
a set font size and show every k-th label when the plot has no room for all
(:func:`fit_labels`); table columns get widths from their content (:func:`table_columns`).
Text widths are estimated, not measured (a figure is built without a browser): a
character is ``CHAR_EM`` of the font size wide, about right for Inter and Helvetica.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
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

# labels: plotly shrinks text in heatmap cells to fit them (to about 5 px for 64 tokens) and
# crowds tick labels, unless a size is given and the labels are thinned out by us
LABEL_FONT = 12      # px of token labels (ticks and text in cells), always set explicitly
CHAR_EM = 0.6        # a character's mean width, in units of the font size
LABEL_GAP = 6        # px between neighbouring labels
ROOM = 703           # px: the narrowest a figure without a set width is laid out (an A4 page printed, its
                     # margins off): labels that fit it beside the margins leave the figure responsive
MAX_PLOT = 1800      # px: the widest a plot grows for its labels; beyond, every k-th label is shown
COLORBAR = 90        # px a colour bar takes beside the plot (plotly widens the right margin for it)
TABLE_ROOM = 500     # px: the narrowest place a table is shown (a report's or the dashboard's half row)
WRAP_AT = 40         # characters: longer cell texts wrap at spaces (plotly tables wrap at spaces only)
_TAG = re.compile(r"<[^>]+>")


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


def plain(text) -> str:
    """``text`` without its HTML tags (what a reader sees of ``<b>not</b>``)."""
    return _TAG.sub("", str(text))


# ---------------------------------------------------------------------------- whiskers

def error_bars(centre, spread, non_negative, **style) -> dict:
    """Plotly ``error_x`` / ``error_y`` for ``centre`` ± ``spread``: where the quantity cannot
    be negative (a share, a size, an area of probabilities; ``non_negative``, one flag or
    one per value) the lower whisker stops at 0 (``arrayminus`` = min(spread, centre)), so
    no whisker reaches values that cannot occur."""
    centre = np.asarray(centre, float).reshape(-1)
    spread = np.nan_to_num(np.asarray(spread, float).reshape(-1))
    lower = np.where(non_negative, np.clip(np.minimum(spread, centre), 0.0, None), spread)
    return dict(type="data", symmetric=False, array=spread.tolist(), arrayminus=lower.tolist(), visible=True,
                **style)


# ---------------------------------------------------------------------------- labels

def label_px(labels: Sequence, font: float = LABEL_FONT, rotated: bool = False) -> float:
    """Horizontal pixels one label of ``labels`` needs beside the next: the longest label's
    width, or for labels turned by 60° or more, a line's height over sin 60°."""
    if rotated:
        return 1.2 * font / math.sin(math.radians(60)) + LABEL_GAP
    longest = max((len(plain(s)) for s in labels), default=1)
    return CHAR_EM * font * longest + LABEL_GAP


@dataclass(frozen=True)
class LabelFit:
    """How an axis of labels fits: every ``step``-th label shown, the plot ``width`` to set
    (None: the labels fit ``ROOM``, the figure stays responsive)."""

    step: int
    width: int | None

    def shown(self, labels: Sequence) -> tuple[list[int], list]:
        """(tickvals, ticktext) of the labels shown, positions 0, step, 2 step, ..."""
        ticks = list(range(0, len(labels), self.step))
        return ticks, [labels[i] for i in ticks]

    def text(self, labels: Sequence) -> list:
        """``labels`` with the ones not shown blanked (for text in cells)."""
        return [s if i % self.step == 0 else "" for i, s in enumerate(labels)]


def fit_labels(labels: Sequence, font: float = LABEL_FONT, rotated: bool = False, panels: int = 1,
               share: float = 1.0, beside: float = 0) -> LabelFit:
    """Lay out ``labels`` along an axis (repeated on ``panels`` side by side, which get
    ``share`` of the plot's width between them): all of them when they fit a figure ``ROOM``
    wide beside the ``beside`` px the figure keeps off the plot (margins, a colour bar), so
    the figure stays responsive; else a plot that grows to hold them, up to ``MAX_PLOT``;
    else every k-th, the smallest k whose labels fit ``MAX_PLOT``."""
    n = len(labels)
    each = label_px(labels, font, rotated) * panels / share
    need = n * each
    if need + beside <= ROOM:
        return LabelFit(1, None)
    if need <= MAX_PLOT:
        return LabelFit(1, math.ceil(need))
    step = next((k for k in range(2, n + 1) if math.ceil(n / k) * each <= MAX_PLOT), max(n, 1))  # else one label
    return LabelFit(step, MAX_PLOT)


def fit_rows(rows: Sequence[Sequence], **options) -> LabelFit:
    """:func:`fit_labels` for several rows of labels on one axis (samples of tokens): as
    many as the longest row, each as wide as the longest label of any row."""
    longest = max((s for row in rows for s in row), key=lambda s: len(plain(s)), default="")
    return fit_labels([longest] * max((len(row) for row in rows), default=0), **options)


# ---------------------------------------------------------------------------- tables

def table_columns(header: Sequence[str], cells: Sequence[Sequence], font: float = FONT["size"],
                  padding: int = 16) -> tuple[list[int], int]:
    """Pixels per column of a plotly Table, from its content: the longest word of its header
    (headers wrap at spaces; bold, so a tenth wider) or its longest cell (up to ``WRAP_AT``
    characters on one line; longer ones wrap at spaces, so then their longest word), plus
    ``padding``. Returns (widths to give as ``columnwidth``, their sum)."""
    widths = []
    for head, column in zip(header, cells):
        need = 1.1 * max(len(w) for w in plain(head).split(" "))  # plotly wraps at plain spaces only
        for cell in column:
            text = plain(cell)
            chars = len(text) if len(text) <= WRAP_AT else max([len(w) for w in text.split(" ")] + [WRAP_AT])
            need = max(need, chars * (1.1 if "<b>" in str(cell) else 1.0))
        widths.append(math.ceil(CHAR_EM * font * need) + padding)
    return widths, sum(widths)


def table_margin(title: str | None) -> dict:
    """``finish``'s margins for a table: narrow at the sides, room for the title on top."""
    return dict(l=20, r=20, t=50 if title else 20, b=40)


def table_width(content: int, margin: dict) -> int | None:
    """The width to give a table figure whose columns need ``content`` px: none (responsive)
    when it fits ``TABLE_ROOM`` with its side margins, else all it needs."""
    total = content + margin.get("l", 0) + margin.get("r", 0)
    return None if total <= TABLE_ROOM else total
