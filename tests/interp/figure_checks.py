"""What a reader sees of a plotly figure, for tests: its labels, whisker ends, legible token
labels and table columns wide enough for their content.

The widths are estimates with the numbers a reviewer would use (a character is 0.6 of
the font size wide), written out here rather than taken from ``interp.figures._style``,
so a test does not grade the figure code by its own arithmetic. Where a figure leaves its
width to the page (responsive), the room it is laid out for is the documented one
(``ROOM`` for token figures, ``TABLE_ROOM`` for tables).
"""

from __future__ import annotations

import math
import re

import numpy as np
import plotly.graph_objects as go

from interp.figures._style import ROOM, TABLE_ROOM

MIN_FONT = 10
EM = 0.6
_TAG = re.compile(r"<[^>]+>")
# a Python repr: a tuple "(1,)" or "(2, 2)", a keyword "window=", a list, None
_REPR = re.compile(r"\(\s*-?\d+(\.\d+)?\s*,(\s*-?\d+(\.\d+)?\s*,?)*\s*\)|=|\[|\]|\bNone\b")


def plain(text) -> str:
    """What a reader sees of ``text``: a line break as a space, no other tag."""
    return _TAG.sub("", re.sub(r"<br\s*/?>", " ", str(text)))


# ---------------------------------------------------------------------------- labels

def labels(fig: go.Figure) -> list[str]:
    """Every text of ``fig`` a reader sees as a label: the title, axis titles and tick
    texts, annotations (subplot titles), trace names shown in a legend, category names a
    heatmap puts on its axes, table headers; HTML tags removed."""
    out = []
    layout = fig.layout
    if layout.title and layout.title.text:
        out.append(layout.title.text)
    for key in layout:
        if key.startswith(("xaxis", "yaxis")):
            axis = layout[key]
            if axis.title and axis.title.text:
                out.append(axis.title.text)
            out += [str(t) for t in axis.ticktext or ()]
    out += [a.text for a in layout.annotations or () if a.text]
    for menu in layout.updatemenus or ():
        out += [b.label for b in menu.buttons or () if b.label]
    for trace in fig.data:
        if getattr(trace, "name", None):
            out.append(trace.name)
        if isinstance(trace, go.Heatmap):
            for axis in (trace.x, trace.y):
                out += [str(v) for v in (() if axis is None else axis) if isinstance(v, str)]
        if isinstance(trace, go.Table):
            out += [str(h) for h in trace.header.values]
        bar = getattr(trace, "colorbar", None)
        if bar is not None and bar.title and bar.title.text:
            out.append(bar.title.text)
    return [plain(t) for t in out]


def python_reprs(fig: go.Figure) -> list[str]:
    """The labels of ``fig`` that hold a Python repr (a tuple, ``=``, ``[``/``]``, ``None``)."""
    return [t for t in labels(fig) if _REPR.search(t)]


# ---------------------------------------------------------------------------- whiskers

def whisker_ends(trace, axis: str = "y") -> np.ndarray:
    """Where each lower whisker of a bar or scatter trace ends: centre − its minus part."""
    err = getattr(trace, f"error_{axis}")
    centre = np.asarray(getattr(trace, axis), float)
    minus = err.array if err.symmetric is not False or err.arrayminus is None else err.arrayminus
    return centre - np.asarray(minus, float)


# ---------------------------------------------------------------------------- token labels

def plot_width(fig: go.Figure, colorbar: bool) -> float:
    """The plot's width: the figure's (for a responsive one the documented ``ROOM``, the
    narrowest it is laid out) less its side margins and a colour bar's 90 px."""
    m = fig.layout.margin
    width = ROOM if fig.layout.width is None else fig.layout.width
    return width - (m.l or 0) - (m.r or 0) - (90 if colorbar else 0)


def cell_texts_fit(fig: go.Figure, trace, colorbar: bool) -> None:
    """Words written in a heatmap's cells: a set font of at least 10 px, and in each row
    the words shown, each as wide as the longest, fit the plot's width."""
    assert trace.textfont.size is not None and trace.textfont.size >= MIN_FONT, trace.textfont.size
    rows = [[plain(t) for t in row] for row in trace.text]
    longest = max(len(t) for row in rows for t in row)
    shown = max(sum(1 for t in row if t) for row in rows)
    assert shown * MIN_FONT * EM * longest <= plot_width(fig, colorbar), (shown, longest, fig.layout.width)


def tick_labels_fit(fig: go.Figure, axis, room: float, rotated: bool = False) -> None:
    """An axis's tick labels: a set font of at least 10 px, and the labels shown fit
    ``room`` px: side by side at the longest label's width, or turned by 60° at a line's
    height (1.2 × the font) over sin 60° each."""
    assert axis.tickfont.size is not None and axis.tickfont.size >= MIN_FONT, axis.tickfont.size
    assert axis.ticktext is not None, "every label left to plotly: it thins or crowds them itself"
    text = [plain(t) for t in axis.ticktext]
    each = 1.2 * MIN_FONT / math.sin(math.radians(60)) if rotated else MIN_FONT * EM * max(len(t) for t in text)
    assert len(text) * each <= room, (len(text), each, room)


# ---------------------------------------------------------------------------- tables

def table_fits(fig: go.Figure) -> None:
    """Every column of the table gets at least its content's width: its longest word
    (header and cells wrap at spaces, never inside a word) at 0.6 × the font per
    character, out of the figure's width, or ``TABLE_ROOM`` for a responsive one."""
    table = fig.data[0]
    assert isinstance(table, go.Table)
    header, cells = list(table.header.values), [list(c) for c in table.cells.values]
    font = fig.layout.font.size or 12
    width = fig.layout.width if fig.layout.width is not None else TABLE_ROOM
    room = width - (fig.layout.margin.l or 0) - (fig.layout.margin.r or 0)
    weights = list(table.columnwidth) if table.columnwidth is not None else [1] * len(header)
    assert len(weights) == len(header)
    for head, column, weight in zip(header, cells, weights):
        words = plain(head).split(" ") + [w for c in column for w in plain(c).split(" ")]  # plotly's wrapping
        need = EM * font * max(len(w) for w in words)
        got = room * weight / sum(weights)
        assert got >= need, f"column {plain(head)!r}: {got:.0f} px for {need:.0f} px of content"
