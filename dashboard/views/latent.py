"""Latent space view: a map of the test set at any layer, linked to the samples behind it.

Pick a layer output (the deepest hidden one first), a method (PCA, t-SNE, UMAP), a
colouring (true label, prediction, right or wrong) and 2-D or 3-D. The map is fitted in
the background (:mod:`dashboard.jobs`; a first UMAP fit also compiles, about 10 s) while
an interval polls it, and kept in the store, so a second look is read back. Clicking a
point makes its sample the current sample in every view; a lasso selection shows the
selected samples (click one to make it current) and makes the first current. Below, the
same test set mapped by PCA layer by layer: how classes separate with depth. For the
autoencoder and the VAE, a traversal decodes a grid around the current sample's code
along its two most informative units (the VAE's KL per unit beside it); for the GAN,
the generator between two latent vectors, scored by the discriminator. Composed in
:mod:`interp.study.latent`, the same as in the reports.
"""

from __future__ import annotations

from dash import Input, Output, Patch, State, ctx, dcc, html, no_update

from interp.errors import InterpError
from interp.projection import METHODS
from interp.study import latent, overview

from ..edits import sample_of
from ..jobs import JOBS
from ..views_cache import VIEWS
from .shell import (
    GRAPH_CONFIG,
    HIDDEN,
    MODEL,
    SAMPLE_PICKER,
    SHOWN,
    TABS,
    clicked_id,
    first_look,
    listed_for,
    loading,
    message_figure,
    register_seen,
    seen_id,
    seen_store,
    selected_ids,
)

LAYER = "latent-layer"
METHOD = "latent-method"
COLOUR = "latent-colour"
UNIT = "latent-unit"
HOVERED = "latent-hovered"
DIMS = "latent-dims"
CAPTION = "latent-caption"
MAP = {"type": SAMPLE_PICKER, "name": "latent-map"}
SELECTION = {"type": SAMPLE_PICKER, "name": "latent-selection"}
SELECTION_PANEL = "latent-selection-panel"
LAYERS = {"type": SAMPLE_PICKER, "name": "latent-layers"}
GENERATIVE = "latent-generative"
PROGRESS_TEXT = "latent-progress-text"
PROGRESS = "latent-progress"  # an indeterminate bar while a fit runs (the fits report no steps)
POLL = "latent-poll"
DRAWN = "latent-drawn"  # store: {"key": the settings of the map on screen, "ring": the current sample's trace}
LASSO = "latent-lasso"  # store: the samples of the last lasso, kept until another map or "clear"
CLEAR = "latent-clear"
POLL_MS = 500
METHOD_LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
TAB = "latent"  # this view's tab (dashboard.app): nothing is computed while another is shown


def layout() -> html.Div:
    return html.Div(className="latent", children=[
        seen_store(TAB), dcc.Store(id=listed_for(TAB)),
        html.Div(className="controls panel", children=[
            html.Label("layer output", htmlFor=LAYER),
            html.Div(dcc.Dropdown(id=LAYER, clearable=False), className="layer-picker"),
            html.Label("method", htmlFor=METHOD),
            dcc.RadioItems(id=METHOD, options=[{"label": METHOD_LABELS[m], "value": m} for m in METHODS],
                           value="pca", inline=True, className="method-list"),
            html.Label("colour by", htmlFor=COLOUR),
            dcc.RadioItems(id=COLOUR, inline=True, className="method-list"),
            html.Div(dcc.Input(id=UNIT, type="number", min=0, step=1, value=0, debounce=True,
                               placeholder="unit"), className="number-input", title="unit (for a unit's activation)"),
            dcc.RadioItems(id=DIMS, options=[{"label": "2-D", "value": 2}, {"label": "3-D", "value": 3}],
                           value=2, inline=True, className="method-list"),
        ]),
        html.Div(id=CAPTION, className="caption panel"),
        html.Div(className="grid", children=[
            html.Div(className="panel wide", children=[
                html.Div(className="progress", id=PROGRESS, style=HIDDEN,
                         children=[html.Div(className="progress-bar indeterminate")]),
                html.Div(id=PROGRESS_TEXT, className="caption progress-text"),
                html.Div(className="map-row", children=[
                    html.Div(dcc.Graph(id=MAP, config=GRAPH_CONFIG), className="map"),
                    html.Div(dcc.Graph(id=HOVERED, config=GRAPH_CONFIG), className="hovered"),
                ]),
                dcc.Interval(id=POLL, interval=POLL_MS, disabled=True),
            ]),
            html.Div(id=SELECTION_PANEL, className="panel wide", style=HIDDEN, children=[
                html.Div(className="controls", children=[
                    html.Button("clear selection", id=CLEAR, n_clicks=0),
                    html.Span("the lassoed samples, kept until cleared or another map is drawn; click one to make "
                              "it the current sample", className="caption"),
                ]),
                dcc.Graph(id=SELECTION, config=GRAPH_CONFIG),
            ]),
            dcc.Store(id=LASSO, data=[]),
            dcc.Store(id=DRAWN, data=None),
            html.Div(id=GENERATIVE, className="grid", style=HIDDEN),
            html.Div(loading(dcc.Graph(id=LAYERS, config=GRAPH_CONFIG)), className="panel wide"),
        ]),
    ])


def ring_patch(subject, result, trace: int, index: int) -> Patch:
    """The map's change when the current sample moves: its ring (trace ``trace``) on the
    new sample, nothing else sent."""
    at = result.coordinates[index]
    patch = Patch()
    for axis, value in zip("xyz", at.tolist()):
        patch["data"][trace][axis] = [value]
    patch["data"][trace]["customdata"] = [index]
    patch["data"][trace]["text"] = [latent.hover_texts(subject)[index]]
    return patch


def meanwhile(subject, layer: str, method: str, dims: int, index) -> object:
    """What the map shows while a slower method fits: the layer's PCA (a fraction of a
    second), said to be PCA in its title."""
    if method == "pca":
        return message_figure(f"fitting the PCA of {layer} …")
    try:
        figure = latent.map_figure(subject, latent.projection(subject, layer, "pca", dims), None,
                                   selected=None if index is None else [index])
    except InterpError:
        return message_figure(f"fitting the {METHOD_LABELS.get(method, method)} of {layer} …")
    title = figure.layout.title.text
    figure.update_layout(title_text=f"PCA shown while the {METHOD_LABELS.get(method, method)} fits · {title}")
    return figure


def register(app, catalog) -> None:
    register_seen(app, TAB)

    @app.callback(Output(LAYER, "options"), Output(LAYER, "value"), Output(COLOUR, "options"),
                  Output(COLOUR, "value"), Output(listed_for(TAB), "data"), Input(MODEL, "value"),
                  Input(TABS, "value"), State(listed_for(TAB), "data"))
    def choices(name, tab, listed):
        """The layers and colourings, listed when the view is first shown for a model
        (listing the layers records the test set)."""
        look = first_look(TAB, tab, name, listed)
        if look == "clear":
            return [], None, [], None, None
        if look == "keep":
            return (no_update,) * 5
        subject = catalog.get(name)
        colours = [{"label": text, "value": key} for key, text in latent.colourings(subject).items()]
        return latent.layers(subject), latent.default_layer(subject), colours, colours[0]["value"], name

    @app.callback(Output(MAP, "figure"), Output(CAPTION, "children"), Output(PROGRESS_TEXT, "children"),
                  Output(POLL, "disabled"), Output(PROGRESS, "style"), Output(DRAWN, "data"),
                  Input(LAYER, "value"), Input(METHOD, "value"), Input(COLOUR, "value"), Input(DIMS, "value"),
                  Input(UNIT, "value"), Input(seen_id(TAB), "data"), Input(POLL, "n_intervals"),
                  State(TABS, "value"), State(MODEL, "value"), State(DRAWN, "data"))
    def show(layer, method, colour, dims, unit, current, _ticks, tab, name, drawn):
        if tab != TAB:  # a poll left running stops; it starts again when the tab is shown
            return no_update, no_update, no_update, True if ctx.triggered_id == POLL else no_update, no_update, \
                no_update
        subject = catalog.get(name)
        if layer not in latent.layers(subject) or colour not in latent.colourings(subject):
            return (no_update,) * 6  # another model's choices, about to be replaced
        index = int(current["index"]) if (current or {}).get("model") == name else None
        label = f"{METHOD_LABELS.get(method, method)} of {layer} over {len(subject.inputs)} test samples"
        scores = colour == latent.ATTRIBUTION  # integrated gradients over the test set: also in the background
        key = f"{name}:{layer}:{method}:{dims}:{colour}:{unit}"  # what the map on screen shows
        result = latent.cached_projection(subject, layer, method, dims)
        if result is None or (scores and not latent.has_attribution_scores(subject)):
            def compute(_progress):
                if scores:
                    latent.attribution_scores(subject)
                return latent.projection(subject, layer, method, dims)

            job = JOBS.for_view(f"latent:{name}:{layer}:{method}:{dims}:{scores}", label, compute,
                                ctx.triggered_id == POLL)
            if job.state == "failed":
                return message_figure("could not map this layer: see above"), no_update, \
                    f"{label}: failed: {job.error}", True, HIDDEN, None
            if job.state == "running":
                first = " (the first UMAP fit also compiles, about 10 s)" if method == "umap" else ""
                what = " and attribution scores" if scores else ""
                figure = no_update if ctx.triggered_id == POLL else meanwhile(subject, layer, method, dims, index)
                return figure, no_update, f"{label}{what}: fitting, {job.elapsed:.0f} s{first}", False, SHOWN, None
            result = job.result
        edited = " (as in the test set: the map places test samples, not an edit of one)" \
            if (current or {}).get("edit") else ""
        caption = (f"{name} · {overview.sample_caption(subject, index) + edited if index is not None else ''} · "
                   f"{latent.fit_text(result, latent.read_back(subject, result))} · "
                   "click a point to make it the current sample, lasso to select several")
        done = f"{label}: done, kept in the store"
        if ctx.triggered_id == seen_id(TAB) and drawn and drawn.get("key") == key and index is not None \
                and drawn.get("ring") is not None:
            # only the ring moves: the map on screen (thousands of points, the user's zoom and lasso) stays
            return ring_patch(subject, result, drawn["ring"], index), caption, done, True, HIDDEN, no_update
        try:
            units = latent.units(subject, result.layer)
            unit = min(max(int(unit), 0), units - 1) if isinstance(unit, (int, float)) else 0  # out of range: nearest
            figure = VIEWS.get(subject, "latent-map", {"layer": layer, "method": method, "dims": dims, "colour": colour,
                                                       "unit": unit, "index": index, "fitted": result.seconds},
                               lambda: {"figure": latent.map_figure(subject, result, colour, unit=unit,
                                                                    selected=None if index is None else [index])}
                               )["figure"]
        except InterpError as exc:
            return no_update, f"{name} · cannot draw this map: {exc}", "", True, HIDDEN, None
        figure["layout"]["uirevision"] = key  # a redraw keeps the user's zoom and selection
        ring = len(figure["data"]) - 1 if index is not None else None
        return figure, caption, done, True, HIDDEN, {"key": key, "ring": ring}

    @app.callback(Output(HOVERED, "figure"), Input(MAP, "hoverData"), Input(seen_id(TAB), "data"),
                  State(TABS, "value"), State(MODEL, "value"))
    def hovered(hover, current, tab, name):
        """The sample under the pointer as what it is (the current one when none is)."""
        if tab != TAB:
            return no_update
        subject = catalog.get(name)
        index = clicked_id(hover) if ctx.triggered_id == MAP else None
        if index is None:
            if (current or {}).get("model") != name:
                return no_update
            index = int(current["index"])
        if not 0 <= index < overview.sample_count(subject):
            return no_update
        return overview.sample_figures(subject, index)["sample"]

    @app.callback(Output(LASSO, "data"), Input(MAP, "selectedData"), Input(CLEAR, "n_clicks"),
                  Input(MODEL, "value"), Input(LAYER, "value"), Input(METHOD, "value"), Input(DIMS, "value"))
    def lasso(selected, _clear, *_map):
        """The lassoed samples: kept while the map is redrawn (a redraw reports an empty
        selection), dropped by "clear" or another map."""
        if ctx.triggered_id == MAP:
            ids = selected_ids(selected)
            return ids if ids else no_update
        return []

    @app.callback(Output(SELECTION, "figure"), Output(SELECTION_PANEL, "style"), Input(LASSO, "data"),
                  State(MODEL, "value"))
    def selection(ids, name):
        if not ids:
            return message_figure(""), HIDDEN
        return latent.selection_figure(catalog.get(name), ids), SHOWN

    @app.callback(Output(GENERATIVE, "children"), Output(GENERATIVE, "style"), Input(seen_id(TAB), "data"),
                  State(TABS, "value"), State(MODEL, "value"))
    def generative(current, tab, name):
        subject = catalog.get(name)
        if (current or {}).get("model") != name or tab != TAB:
            return no_update, no_update
        try:
            subject, index = sample_of(catalog, current)  # the sample, or its edit
            figs = VIEWS.get(subject, "latent-generative", {"index": index},
                             lambda: latent.generative_figures(subject, index))
        except InterpError as exc:
            return [html.Div(f"cannot decode around this sample: {exc}", className="caption panel")], SHOWN
        if not figs:
            return [], HIDDEN
        return [html.Div(dcc.Graph(id=f"latent-generative-{key}", figure=fig, config=GRAPH_CONFIG),
                         className="panel" + (" wide" if key != "kl" else "")) for key, fig in figs.items()], SHOWN

    @app.callback(Output(LAYERS, "figure"), Input(MODEL, "value"), Input(TABS, "value"))
    def layer_by_layer(name, tab):
        if tab != TAB:
            return no_update
        subject = catalog.get(name)
        return VIEWS.get(subject, "latent-layers", {"method": "pca"},
                         lambda: {"figure": latent.layer_by_layer(subject, "pca")})["figure"]
