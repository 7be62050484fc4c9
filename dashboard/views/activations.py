"""Activations view: pick a layer and a unit; see the selected sample's maps, the unit
statistics over the test set, the samples that drive the unit hardest, and every
test sample's unit values. Clicking a unit selects it; clicking a sample makes it the
current sample everywhere."""

from __future__ import annotations

from dash import Input, Output, State, ctx, dcc, html, no_update

from interp.errors import InterpError
from interp.study import activations

from ..edits import sample_of
from ..views_cache import VIEWS
from .shell import (
    GRAPH_CONFIG,
    MODEL,
    SAMPLE_PICKER,
    TABS,
    clicked_id,
    first_look,
    listed_for,
    loading,
    register_seen,
    seen_id,
    seen_store,
)
from .state import APPLIED, WANTED, asked, by_link_only

TAB = "activations"  # this view's tab (dashboard.app): nothing is computed while another is shown

LAYER = "act-layer"
UNIT = "act-unit"
CAPTION = "act-caption"
SAMPLE_MAP = "act-sample-map"
STATS = "act-stats"
HISTOGRAM = "act-histogram"
TOP = {"type": SAMPLE_PICKER, "name": "act-top"}
HEATMAP = {"type": SAMPLE_PICKER, "name": "act-heatmap"}


def layout() -> html.Div:
    return html.Div(className="activations", children=[
        seen_store(TAB), dcc.Store(id=listed_for(TAB)),
        html.Div(className="controls panel", children=[
            html.Label("layer output", htmlFor=LAYER),
            html.Div(dcc.Dropdown(id=LAYER, clearable=False), className="layer-picker"),
            html.Label("unit", htmlFor=UNIT),
            html.Div(dcc.Input(id=UNIT, type="number", min=0, step=1, value=0, debounce=True),
                     className="index-input"),
            html.Span(id=CAPTION, className="caption"),
        ]),
        loading(html.Div(className="grid", children=[
            html.Div(dcc.Graph(id=SAMPLE_MAP, config=GRAPH_CONFIG), className="panel"),
            html.Div(dcc.Graph(id=STATS, config=GRAPH_CONFIG), className="panel"),
            html.Div(dcc.Graph(id=TOP, config=GRAPH_CONFIG), className="panel"),
            html.Div(dcc.Graph(id=HISTOGRAM, config=GRAPH_CONFIG), className="panel"),
            html.Div(dcc.Graph(id=HEATMAP, config=GRAPH_CONFIG), className="panel wide"),
        ])),
    ])


def unit_caption(stats, unit: int) -> str:
    """The layer and the unit in numbers, and what a click does here (the figures, shared
    with the static reports, say nothing of clicking)."""
    return (f"{stats.output}: {stats.units} units · unit {unit}: mean {stats.mean[unit]:.3f}, "
            f"zero on {stats.frac_zero[unit]:.0%} of test samples · click a unit to pick it; "
            "click one of the top samples (or a row of the heatmap) to select it everywhere")


def register(app, catalog) -> None:
    register_seen(app, TAB)

    @app.callback(Output(LAYER, "options"), Output(LAYER, "value"), Output(listed_for(TAB), "data"),
                  Input(MODEL, "value"), Input(WANTED, "data"), Input(TABS, "value"), State(APPLIED, "data"),
                  State(listed_for(TAB), "data"))
    def layers(name, wanted, tab, applied, listed):
        """The layer outputs, listed when the view is first shown for a model (listing
        records the test set)."""
        subject = catalog.get(name)
        linked = asked(wanted, applied, name, "layer")  # a link's layer (on load, back, forward)
        look = first_look(TAB, tab, name, listed)
        if look == "clear":
            return [], None, None
        if look == "keep":  # back or forward to another layer of the model listed: that layer
            return no_update, linked if linked and listed == name and by_link_only(wanted) else no_update, no_update
        if linked is None:  # a link that went to another view first: its layer, now that this one is shown
            state = (wanted or {}).get("state") or {}
            linked = state.get("layer") if state.get("model") == name else None
        return activations.outputs(subject), linked or activations.default_output(subject), name

    @app.callback(
        Output(UNIT, "value"),
        Input(LAYER, "value"), Input(STATS, "clickData"), Input(SAMPLE_MAP, "clickData"),
        Input(UNIT, "value"), Input(WANTED, "data"), State(APPLIED, "data"), State(MODEL, "value"),
    )
    def unit(output, stats_click, map_click, typed, wanted, applied, name):
        subject = catalog.get(name)
        if output is None or output not in activations.outputs(subject):  # None: not listed yet
            return no_update
        n_units = activations.units(subject, output)
        trigger = ctx.triggered_id
        fired = {t["prop_id"] for t in ctx.triggered}
        linked = asked(wanted, applied, name, "unit") if asked(wanted, applied, name, "layer") == output else None
        if fired & {f"{LAYER}.value", f"{WANTED}.data"} and linked is not None:
            chosen = linked
        elif by_link_only(wanted):
            return no_update
        elif f"{LAYER}.value" in fired:
            chosen = activations.most_active_unit(subject, output)
        elif trigger in (STATS, SAMPLE_MAP):
            chosen = clicked_id(stats_click if trigger == STATS else map_click)
            if chosen is None or not 0 <= chosen < n_units:  # e.g. a gap between feature maps
                return no_update
        elif typed is None:  # not a number yet
            return no_update
        else:
            chosen = min(max(int(typed), 0), n_units - 1)  # out of range: the nearest unit
        return chosen

    def checked(subject, output, unit):
        """The unit typed or clicked, within the layer's units (None: another model's layer)."""
        if output is None or output not in activations.outputs(subject):
            return None
        return min(max(int(unit or 0), 0), activations.units(subject, output) - 1)

    @app.callback(
        Output(SAMPLE_MAP, "figure"), Output(CAPTION, "children"),
        Input(LAYER, "value"), Input(UNIT, "value"), Input(seen_id(TAB), "data"), State(TABS, "value"),
        State(MODEL, "value"),
    )
    def show_sample(output, unit, current, tab, name):
        """The current sample's maps: the only figure that follows the sample."""
        if (current or {}).get("model") != name or tab != TAB:
            return (no_update,) * 2
        subject = catalog.get(name)
        unit = checked(subject, output, unit)
        if unit is None:
            return (no_update,) * 2
        try:
            shown, index = sample_of(catalog, current)  # the sample, or its edit
        except InterpError as exc:
            return no_update, str(exc)
        caption = unit_caption(activations.stats(subject, output), unit)
        figure = VIEWS.get(shown, TAB, {"index": index, "layer": output, "unit": unit},
                           lambda: {"figure": activations.sample_figure(shown, output, index, unit)})["figure"]
        return figure, caption

    @app.callback(
        Output(STATS, "figure"), Output(TOP, "figure"), Output(HISTOGRAM, "figure"), Output(HEATMAP, "figure"),
        Input(LAYER, "value"), Input(UNIT, "value"), Input(TABS, "value"), State(MODEL, "value"),
    )
    def show_layer(output, unit, tab, name):
        """The layer's and the unit's figures over the test set: the same for every sample."""
        if tab != TAB:
            return (no_update,) * 4
        subject = catalog.get(name)
        unit = checked(subject, output, unit)
        if unit is None:
            return (no_update,) * 4

        def compute():
            return {"stats": activations.stats_figure(subject, output, unit),
                    "top": activations.top_figure(subject, output, unit),
                    "histogram": activations.histogram_figure(subject, output, unit)}

        shown = VIEWS.get(subject, TAB, {"layer": output, "unit": unit}, compute)
        heatmap = VIEWS.get(subject, TAB, {"layer": output, "every": "unit"},  # one per layer, not per unit
                            lambda: {"figure": activations.heatmap_figure(subject, output)})["figure"]
        return shown["stats"], shown["top"], shown["histogram"], heatmap
