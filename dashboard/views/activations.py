"""Activations view: pick a layer and a unit; see the selected sample's maps, the unit
statistics over the test set, the samples that drive the unit hardest, and every
test sample's unit values. Clicking a unit selects it; clicking a sample makes it the
current sample everywhere."""

from __future__ import annotations

from dash import Input, Output, State, ctx, dcc, html, no_update

from interp.study import activations

from .shell import CURRENT_SAMPLE, GRAPH_CONFIG, MODEL, SAMPLE_PICKER, clicked_id

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
        html.Div(className="controls panel", children=[
            html.Label("layer output", htmlFor=LAYER),
            html.Div(dcc.Dropdown(id=LAYER, clearable=False), className="layer-picker"),
            html.Label("unit", htmlFor=UNIT),
            html.Div(dcc.Input(id=UNIT, type="number", min=0, step=1, value=0, debounce=True),
                     className="index-input"),
            html.Span(id=CAPTION, className="caption"),
        ]),
        dcc.Loading(html.Div(className="grid", children=[
            html.Div(dcc.Graph(id=SAMPLE_MAP, config=GRAPH_CONFIG), className="panel"),
            html.Div(dcc.Graph(id=STATS, config=GRAPH_CONFIG), className="panel"),
            html.Div(dcc.Graph(id=TOP, config=GRAPH_CONFIG), className="panel"),
            html.Div(dcc.Graph(id=HISTOGRAM, config=GRAPH_CONFIG), className="panel"),
            html.Div(dcc.Graph(id=HEATMAP, config=GRAPH_CONFIG), className="panel wide"),
        ])),
    ])


def register(app, catalog) -> None:
    @app.callback(Output(LAYER, "options"), Output(LAYER, "value"), Input(MODEL, "value"))
    def layers(name):
        subject = catalog.get(name)
        return activations.outputs(subject), activations.default_output(subject)

    @app.callback(
        Output(UNIT, "value"),
        Input(LAYER, "value"), Input(STATS, "clickData"), Input(SAMPLE_MAP, "clickData"),
        Input(UNIT, "value"), State(MODEL, "value"),
    )
    def unit(output, stats_click, map_click, typed, name):
        subject = catalog.get(name)
        if output not in activations.outputs(subject):
            return no_update
        n_units = activations.units(subject, output)
        trigger = ctx.triggered_id
        if trigger == LAYER:
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

    @app.callback(
        Output(SAMPLE_MAP, "figure"), Output(STATS, "figure"), Output(TOP, "figure"),
        Output(HISTOGRAM, "figure"), Output(HEATMAP, "figure"), Output(CAPTION, "children"),
        Input(LAYER, "value"), Input(UNIT, "value"), Input(CURRENT_SAMPLE, "data"), State(MODEL, "value"),
    )
    def show(output, unit, current, name):
        subject = catalog.get(name)
        if output not in activations.outputs(subject) or current.get("model") != name:
            return (no_update,) * 6
        unit = min(max(int(unit or 0), 0), activations.units(subject, output) - 1)
        index = int(current["index"])
        s = activations.stats(subject, output)
        caption = (f"{output}: {s.units} units · unit {unit}: mean {s.mean[unit]:.3f}, "
                   f"zero on {s.frac_zero[unit]:.0%} of test samples · click a unit to pick it, "
                   f"a sample to select it everywhere")
        return (activations.sample_figure(subject, output, index, unit),
                activations.stats_figure(subject, output, unit),
                activations.top_figure(subject, output, unit), activations.histogram_figure(subject, output, unit),
                activations.heatmap_figure(subject, output), caption)
