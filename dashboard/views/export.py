"""Export what a view shows: the view as one self-contained HTML file (the report's figure
code, plotly.js inline: it opens offline), its figures' numbers as npz or CSV, every figure
as SVG. PNG per figure is the graph toolbar's camera. Nothing leaves the machine: the
files are handed to the browser's own download.

The server does not recompute anything: the browser sends the current tab's layout as it
holds it (every figure as drawn, every caption), and the files are made from that, so
the export is exactly what is on screen, whichever view and options. The numbers are the
figures' arrays (``x``, ``y``, ``z``, ``customdata`` of every trace: attributions and
relevance in the heatmaps' ``z``, map coordinates in ``x``/``y``, statistics in the bars),
named ``<figure>/<trace>/<array>``.
"""

from __future__ import annotations

import csv
import io
import re

import numpy as np
from dash import Input, Output, State, ctx, dcc, html, no_update

from .shell import CURRENT_SAMPLE, MODEL, TABS

HTML, NPZ, CSV, SVG = "export-html", "export-npz", "export-csv", "export-svg"
DOWNLOAD, SVG_DONE = "export-download", "export-svg-done"
ARRAYS = ("x", "y", "z", "customdata", "text")

SVG_ALL = """
function(n) {
    if (!n) { return window.dash_clientside.no_update; }
    var shown = Array.from(document.querySelectorAll('.tab-body .js-plotly-plot'))
        .filter(function (gd) { return gd.offsetParent !== null && gd.data; });
    shown.forEach(function (gd, k) {
        var name = (gd.parentElement && gd.parentElement.id) || ('figure-' + k);
        window.Plotly.downloadImage(gd, {format: 'svg', filename: name.replace(/[^A-Za-z0-9_-]+/g, '-')});
    });
    return shown.length;
}
"""


def controls() -> html.Div:
    return html.Div(className="export-controls", children=[
        html.Span("export", className="export-label"),
        html.Button("view (HTML)", id=HTML, n_clicks=0, title="this view as one self-contained HTML file"),
        html.Button("data (npz)", id=NPZ, n_clicks=0, title="the numbers of this view's figures, as numpy arrays"),
        html.Button("data (CSV)", id=CSV, n_clicks=0, title="the numbers of this view's figures, one value a row"),
        html.Button("figures (SVG)", id=SVG, n_clicks=0, title="every figure of this view as an SVG file"),
        dcc.Download(id=DOWNLOAD), dcc.Store(id=SVG_DONE),
    ])


def _text(node) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, (int, float)):
        return str(node)
    if isinstance(node, list):
        return " ".join(t for t in (_text(n) for n in node) if t)
    if isinstance(node, dict):
        return _text((node.get("props") or {}).get("children"))
    return ""


def _walk(node, graphs: list, captions: list) -> None:
    if isinstance(node, list):
        for n in node:
            _walk(n, graphs, captions)
        return
    if not isinstance(node, dict):
        return
    props = node.get("props") or {}
    style = props.get("style") or {}
    if style.get("display") == "none":  # a panel the view hides (it does not apply)
        return
    if node.get("type") == "Graph":
        figure = props.get("figure")
        if isinstance(figure, dict) and figure.get("data"):
            gid = props.get("id")
            graphs.append((gid.get("name") if isinstance(gid, dict) else str(gid or f"figure-{len(graphs)}"), figure))
        return
    if "caption" in str(props.get("className") or "") and not str(props.get("id") or "").endswith("-progress-text"):
        text = _text(props.get("children"))
        if text:
            captions.append(text)
    _walk(props.get("children"), graphs, captions)


def shown(tabs_children, tab: str) -> tuple[list[tuple[str, dict]], list[str]]:
    """The figures (name, figure) and captions of tab ``tab`` in the tabs' layout as the browser holds it."""
    for item in tabs_children or []:
        if isinstance(item, dict) and (item.get("props") or {}).get("value") == tab:
            graphs, captions = [], []
            _walk(item["props"].get("children"), graphs, captions)
            return graphs, captions
    return [], []


def arrays(graphs: list[tuple[str, dict]]) -> dict[str, np.ndarray]:
    """The numeric arrays of every trace: ``<figure>/<trace name or index>/<array>``."""
    out = {}
    for name, figure in graphs:
        for k, trace in enumerate(figure.get("data") or []):
            label = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(trace.get("name") or k)).strip("_") or str(k)
            for key in ARRAYS:
                value = _decoded(trace.get(key))
                if value is None:
                    continue
                try:
                    array = np.asarray(value, dtype=float)
                except (TypeError, ValueError):
                    continue  # text, or ragged
                if array.size:
                    out[f"{name}/{k}-{label}/{key}"] = array
    return out


def _decoded(value):
    """A plotly array as numbers: lists as they are; plotly's typed arrays ({"dtype", "bdata",
    "shape"}, base64) decoded."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value.get("dtype", "f8")))
        shape = value.get("shape")
        if shape:
            dims = [int(d) for d in str(shape).split(",")] if not isinstance(shape, list) else shape
            data = data.reshape(dims)
        return data
    return value


def csv_text(found: dict[str, np.ndarray]) -> str:
    """One value a row: array, index (i,j,...), value."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["array", "index", "value"])
    for key, array in found.items():
        for index in np.ndindex(array.shape):
            writer.writerow([key, ",".join(map(str, index)), repr(float(array[index]))])
    return buffer.getvalue()


def _file(name: str, tab: str, current, suffix: str) -> str:
    sample = f"-sample{current['index']}" if current and current.get("model") == name else ""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{name}-{tab}{sample}") + suffix


def register(app) -> None:
    @app.callback(Output(DOWNLOAD, "data"), Input(HTML, "n_clicks"), Input(NPZ, "n_clicks"), Input(CSV, "n_clicks"),
                  State(TABS, "value"), State(TABS, "children"), State(MODEL, "value"), State(CURRENT_SAMPLE, "data"),
                  prevent_initial_call=True)
    def export(_html, _npz, _csv, tab, tabs_children, name, current):
        graphs, captions = shown(tabs_children, tab)
        if not graphs:
            return no_update
        trigger = ctx.triggered_id
        if trigger == HTML:
            from reports import view_page

            page = view_page(f"interp: {name}, {tab}", captions, [figure for _, figure in graphs])
            return dcc.send_string(page, _file(name, tab, current, ".html"))
        found = arrays(graphs)
        if trigger == NPZ:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **found)
            return dcc.send_bytes(buffer.getvalue(), _file(name, tab, current, ".npz"))
        return dcc.send_string(csv_text(found), _file(name, tab, current, ".csv"))

    app.clientside_callback(SVG_ALL, Output(SVG_DONE, "data"), Input(SVG, "n_clicks"), prevent_initial_call=True)


__all__ = ["controls", "register", "shown", "arrays", "csv_text"]
