"""What if: edit the current sample and every view recomputes for the edited input.

In the Samples view, below the sample: for an image, click pixels to draw or erase (the
brush sets the pixel to the test set's largest or smallest value); for a table row, type
feature values (in the data's own units where the model's inputs were standardised);
for a sentence, pick each position's token from the vocabulary (the dropdown completes
as you type; a vocabulary over ``MAX_VOCAB_OPTIONS`` words, a tokenizer's, is typed
instead). An image file or a CSV row can be uploaded instead. The edit is checked
(:func:`interp.study.whatif.check_input`: shape, dtype, finite values, token ids) and kept
on the server (:mod:`dashboard.edits`); the page's current sample then names it, so the
Saliency, LRP, Sensitivity, Activations and Evaluation views explain the edited input,
and the prediction's change from the original is said above the editor. "Reset" goes
back to the test sample.

Uploads are validated before anything runs: at most ``MAX_UPLOAD_BYTES`` (and the server
takes no request body over ``dashboard.app.MAX_REQUEST_BYTES``); images decoded by Pillow,
their size read from the header and refused over ``MAX_IMAGE_PIXELS`` before decoding
(a decompression bomb), converted to the model's channels and resized to its input; CSV
rows need one finite number per feature; typed values and token ids must be numbers. A bad
upload or edit is said in the page.
"""

from __future__ import annotations

import base64
import csv
import io

import numpy as np
import torch
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update

from interp import figures
from interp.errors import InputError, InterpError
from interp.study import overview, whatif

from ..edits import EDITS, sample_of
from .shell import CURRENT_SAMPLE, GRAPH_CONFIG, HIDDEN, SHOWN, TABS, seen_id

TAB = "samples"  # the Samples view's tab: the editor lives there
CHANGE = "whatif-change"
ERROR = "whatif-error"
IMAGE, TABLE, TOKENS = "whatif-image", "whatif-table", "whatif-tokens"
CANVAS = "whatif-canvas"
BRUSH = "whatif-brush"
RESET = "whatif-reset"
FEATURES, APPLY_FEATURES = "whatif-features", "whatif-apply-features"
FEATURE = "whatif-feature"   # pattern id type: {"type": FEATURE, "index": i}
POSITIONS, APPLY_TOKENS = "whatif-positions", "whatif-apply-tokens"
POSITION = "whatif-position"  # pattern id type: {"type": POSITION, "index": i}
UPLOAD = "whatif-upload"
DRAWN_FOR = "whatif-drawn-for"  # the (model, sample, edit) the editor shows: drawn again only when it changes
MAX_UPLOAD_BYTES = 5 * 2 ** 20
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_VOCAB_OPTIONS = 2000  # larger vocabularies are typed, not picked from dropdowns


def layout() -> html.Div:
    return html.Div(className="panel wide whatif", children=[
        html.Div(className="controls", children=[
            html.Strong("What if"),
            html.Span("edit this sample: every view then explains the edited input", className="caption"),
            html.Button("reset to the test sample", id=RESET, n_clicks=0),
            dcc.Upload(id=UPLOAD, max_size=MAX_UPLOAD_BYTES, multiple=False, className="upload",
                       children=html.Button("upload an image or a CSV row")),
        ]),
        html.Div(id=CHANGE, className="caption whatif-change"),
        html.Div(id=ERROR, className="error", style=HIDDEN),
        html.Div(id=IMAGE, style=HIDDEN, children=[
            dcc.RadioItems(id=BRUSH, options=[{"label": "draw", "value": "draw"}, {"label": "erase", "value": "erase"}],
                           value="draw", inline=True, className="method-list"),
            html.Span("click a pixel to draw or erase it", className="caption"),
            dcc.Graph(id=CANVAS, config=GRAPH_CONFIG, className="canvas"),
        ]),
        html.Div(id=TABLE, style=HIDDEN, children=[
            html.Div(id=FEATURES, className="feature-editor"),
            html.Button("apply the values", id=APPLY_FEATURES, n_clicks=0),
        ]),
        html.Div(id=TOKENS, style=HIDDEN, children=[
            html.Div(id=POSITIONS, className="token-editor"),
            html.Button("apply the tokens", id=APPLY_TOKENS, n_clicks=0),
        ]),
        dcc.Store(id=DRAWN_FOR, data=None),
    ])


def _raw(subject, x: torch.Tensor) -> torch.Tensor:
    """A tabular input in the data's own units (where the subject knows its scaling)."""
    if subject.scaling is None:
        return x
    mean, std = subject.scaling
    return x * std + mean


def _model_units(subject, raw: torch.Tensor) -> torch.Tensor:
    if subject.scaling is None:
        return raw
    mean, std = subject.scaling
    return (raw - mean) / std


def editor(subject, x: torch.Tensor):
    """The editor's parts for ``x``: (canvas figure, feature inputs, token dropdowns), the
    ones that do not apply None."""
    if subject.modality == "image":
        return figures.sample_view(x, "image", title="click to draw or erase"), None, None
    if subject.modality == "tabular":
        raw = _raw(subject, x)
        names = subject.features or [f"feature {i}" for i in range(len(x))]
        inputs = [html.Div(className="feature-field", children=[
            html.Label(name, htmlFor=f"whatif-feature-{i}"),
            dcc.Input(id={"type": FEATURE, "index": i}, type="number", value=round(float(raw[i]), 6),
                      debounce=True)]) for i, name in enumerate(names)]
        return None, inputs, None
    if subject.modality == "tokens" and subject.vocab and len(subject.vocab) > MAX_VOCAB_OPTIONS:
        # a tokenizer's vocabulary (30k words) in every position's dropdown would weigh megabytes: the words typed
        words = " ".join(subject.token_texts(x))
        return None, None, [html.Div(className="token-field wide", children=[
            html.Label("tokens, separated by spaces (each a vocabulary entry)"),
            dcc.Input(id={"type": POSITION, "index": 0}, type="text", value=words, debounce=True,
                      style={"width": "100%"})])]
    if subject.modality == "tokens" and subject.vocab:
        options = [{"label": word, "value": i} for i, word in enumerate(subject.vocab)]
        boxes = [html.Div(className="token-field", children=[
            html.Label(f"{i}"), dcc.Dropdown(id={"type": POSITION, "index": i}, options=options, value=int(t),
                                             clearable=False, searchable=True)]) for i, t in enumerate(x.tolist())]
        return None, None, boxes
    return None, None, None


def _decoded(contents: str) -> bytes:
    try:
        _, data = contents.split(",", 1)
        raw = base64.b64decode(data, validate=True)
    except (ValueError, TypeError):
        raise InputError("the upload could not be read (expected a file)") from None
    if len(raw) > MAX_UPLOAD_BYTES:
        raise InputError(f"the upload is {len(raw)} bytes; at most {MAX_UPLOAD_BYTES} are taken")
    return raw


def from_image(subject, raw: bytes) -> torch.Tensor:
    """An uploaded image as the model's input: decoded by Pillow (its decompression-bomb
    limit on), to the model's channels and size, scaled to the test set's value range."""
    from PIL import Image, UnidentifiedImageError

    if subject.modality != "image":
        raise InputError(f"{subject.name} takes {subject.modality} inputs, not images")
    if subject.inputs.ndim != 4 or subject.inputs.shape[1] not in (1, 3):
        raise InputError(f"{subject.name} takes images shaped {tuple(subject.inputs.shape[1:])}; an upload can "
                         "give 1 (grey) or 3 (colour) channels by height by width")
    try:
        with Image.open(io.BytesIO(raw)) as img:  # reads the header only: the size is known before decoding
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise InputError(f"the upload is {img.width}×{img.height} pixels; at most {MAX_IMAGE_PIXELS} "
                                 "are decoded")
            img.load()
            channels, height, width = subject.inputs.shape[1:]
            img = img.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
            data = torch.from_numpy(np.asarray(img, dtype=np.float32).copy())
    except InputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InputError(f"the upload is not an image Pillow can read ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001  (a damaged file fails in many ways inside the decoder: said, not raised)
        raise InputError(f"the upload is a damaged or unusual image ({type(exc).__name__})") from None
    data = data.reshape(height, width, -1).permute(2, 0, 1)[:channels] / 255.0
    pop = overview.population(subject)
    lo, hi = float(pop.min()), float(pop.max())
    return (lo + data * (hi - lo)).to(subject.inputs.dtype)


def from_csv(subject, raw: bytes) -> torch.Tensor:
    """The first row of numbers of an uploaded CSV as a tabular input (in the data's own units)."""
    if subject.modality != "tabular":
        raise InputError(f"{subject.name} takes {subject.modality} inputs, not CSV rows")
    n = subject.inputs.shape[1]
    try:
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error):
        raise InputError("the upload is not a CSV text file") from None
    for row in rows:
        cells = [c.strip() for c in row if c.strip()]
        try:
            values = [float(c) for c in cells]
        except ValueError:
            continue  # a header
        if len(values) != n:
            raise InputError(f"a CSV row needs {n} values (one per feature); the first row of numbers has "
                             f"{len(values)}")
        return _model_units(subject, torch.tensor(values, dtype=subject.inputs.dtype))
    raise InputError(f"the CSV has no row of {n} numbers")


def numbers(values, cast, what: str) -> list:
    """``values`` (as a request sent them) cast by ``cast``; anything else, e.g. a word or an
    empty box in a crafted request, is refused in words (it raised a server error)."""
    try:
        if isinstance(values, (str, bytes)) or any(isinstance(v, bool) or v is None for v in values):
            raise TypeError
        return [cast(v) for v in values]
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"the {what} must all be numbers") from None


def painted(subject, x: torch.Tensor, click, brush: str) -> torch.Tensor:
    """``x`` with the clicked pixel set to the test set's largest (draw) or smallest (erase) value."""
    try:
        point = click["points"][0]
        col, row = int(round(float(point["x"]))), int(round(float(point["y"])))
    except (TypeError, KeyError, IndexError, ValueError):
        raise InputError("click on a pixel of the image") from None
    if not (0 <= row < x.shape[-2] and 0 <= col < x.shape[-1]):
        raise InputError("click on a pixel of the image")
    pop = overview.population(subject)
    out = x.clone()
    out[..., row, col] = float(pop.max() if brush == "draw" else pop.min())
    return out


def register(app, catalog) -> None:
    @app.callback(Output(IMAGE, "style"), Output(TABLE, "style"), Output(TOKENS, "style"), Output(CANVAS, "figure"),
                  Output(FEATURES, "children"), Output(POSITIONS, "children"), Output(CHANGE, "children"),
                  Output(DRAWN_FOR, "data"),
                  Input(seen_id(TAB), "data"), State(TABS, "value"), State(DRAWN_FOR, "data"))
    def show(current, tab, drawn_for):
        if tab != TAB or not current:
            return (no_update,) * 8
        key = [current["model"], current["index"], current.get("edit")]
        if key == drawn_for:
            # the same sample again (the tab brought back, the sample store written twice): drawing the editor
            # again would throw away what is being typed or picked in it
            return (no_update,) * 8
        try:
            base = catalog.get(current["model"])
            shown, index = sample_of(catalog, current)
        except InterpError as exc:
            return HIDDEN, HIDDEN, HIDDEN, no_update, [], [], str(exc), None
        x = shown.inputs[index]
        canvas, inputs, boxes = editor(base, x)
        said = whatif.change(base, int(current["index"]), x) if current.get("edit") else ""
        return (SHOWN if canvas is not None else HIDDEN, SHOWN if inputs is not None else HIDDEN,
                SHOWN if boxes is not None else HIDDEN, canvas if canvas is not None else no_update,
                inputs or [], boxes or [], said, key)

    @app.callback(Output(CURRENT_SAMPLE, "data", allow_duplicate=True), Output(ERROR, "children"),
                  Output(ERROR, "style"), Output(UPLOAD, "contents"),
                  Input(CANVAS, "clickData"), Input(APPLY_FEATURES, "n_clicks"), Input(APPLY_TOKENS, "n_clicks"),
                  Input(UPLOAD, "contents"), Input(RESET, "n_clicks"),
                  State(BRUSH, "value"), State({"type": FEATURE, "index": ALL}, "value"),
                  State({"type": POSITION, "index": ALL}, "value"), State(CURRENT_SAMPLE, "data"),
                  prevent_initial_call=True)
    def apply(click, _features, _tokens, upload, _reset, brush, values, ids, current):
        trigger = ctx.triggered_id
        if not current:
            return no_update, no_update, no_update, None
        plain = {k: v for k, v in current.items() if k != "edit"}  # the model, the index, the steps counted
        if trigger == RESET:
            return plain, "", HIDDEN, None
        try:
            base = catalog.get(current["model"])
            shown, index = sample_of(catalog, current)
            x = shown.inputs[index]
            if trigger == CANVAS:
                x = painted(base, x, click, brush)
            elif trigger == APPLY_FEATURES:
                if any(v is None for v in values) or len(values) != x.shape[0]:  # a box left empty
                    raise InputError(f"give a number for each of the {x.shape[0]} features")
                x = _model_units(base, torch.tensor(numbers(values, float, "feature values"), dtype=x.dtype))
            elif trigger == APPLY_TOKENS:
                if len(ids) == 1 and isinstance(ids[0], str):  # typed words (a large vocabulary)
                    x = whatif.tokens(base, ids[0])
                else:
                    x = torch.tensor(numbers(ids, int, "token ids"), dtype=x.dtype)
            elif trigger == UPLOAD:
                if not upload:
                    return no_update, no_update, no_update, None
                raw = _decoded(upload)
                x = from_image(base, raw) if base.modality == "image" else from_csv(base, raw)
            else:
                return no_update, no_update, no_update, None
            key = EDITS.keep(base, int(current["index"]), x)
        except InterpError as exc:
            return no_update, f"cannot use this edit: {exc}", SHOWN, None
        return {**plain, "edit": key}, "", HIDDEN, None


__all__ = ["layout", "register", "editor", "painted", "from_image", "from_csv"]
