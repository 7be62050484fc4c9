"""Sample browser: pick a test sample, see it and what the model says about it.

The chosen sample is written to the shared ``current-sample`` store, so later
views (activations, saliency, LRP, ...) show the same sample.
"""

from __future__ import annotations

from dash import ALL, Input, Output, State, ctx, dcc, html, no_update

from interp.errors import InterpError
from interp.study import overview

from ..edits import sample_of
from . import whatif
from .shell import (
    CURRENT_SAMPLE,
    GRAPH_CONFIG,
    MODEL,
    SAMPLE_PICKER,
    TABS,
    clicked_id,
    loading,
    register_seen,
    seen_id,
    seen_store,
)
from .state import APPLIED, WANTED, asked

TAB = "samples"  # this view's tab (dashboard.app): nothing is drawn while another is shown

INDEX = "sample-index"
PREV, NEXT = "sample-prev", "sample-next"
ONLY_WRONG = "sample-only-misclassified"
CAPTION = "sample-caption"
SAMPLE_GRAPH, PREDICTION_GRAPH = "sample-graph", "prediction-graph"


def controls() -> html.Div:
    """The sample stepper, in the top bar: every view shows the current sample, so it is
    stepped from any of them."""
    return html.Div(className="sample-controls", children=[
        html.Button("◀", id=PREV, n_clicks=0, title="previous sample"),
        html.Label("sample", htmlFor=INDEX),
        html.Div(dcc.Input(id=INDEX, type="number", min=0, step=1, value=0, debounce=True), className="index-input"),
        html.Button("▶", id=NEXT, n_clicks=0, title="next sample"),
        dcc.Checklist(id=ONLY_WRONG, options=[{"label": FILTER_LABEL, "value": "wrong"}], value=[]),
    ])


def layout() -> html.Div:
    return html.Div(className="samples", children=[
        seen_store(TAB),
        html.Div(className="controls panel", children=[html.Span(id=CAPTION, className="caption")]),
        loading(html.Div(className="grid", children=[
            html.Div(dcc.Graph(id=SAMPLE_GRAPH, config=GRAPH_CONFIG), className="panel"),
            html.Div(dcc.Graph(id=PREDICTION_GRAPH, config=GRAPH_CONFIG), className="panel"),
        ])),
        whatif.layout(),
    ])


FILTER_LABEL = " misclassified only"


def _filters(subject) -> bool:
    """Whether the filter picks anything out: the subject has classes to get wrong and
    gets some wrong."""
    return overview.can_be_misclassified(subject) and bool(overview.misclassified(subject))


def filter_options(subject) -> list[dict]:
    """The filter's option, disabled (and saying why) where the subject has no notion of
    misclassified (an autoencoder, a GAN, unlabelled data) or misclassifies nothing."""
    if _filters(subject):
        return [{"label": FILTER_LABEL, "value": "wrong"}]
    why = " (no classes to get wrong)" if not overview.can_be_misclassified(subject) else " (none misclassified)"
    return [{"label": FILTER_LABEL + why, "value": "wrong", "disabled": True}]


def _step(candidates: list[int], current: int, direction: int) -> int:
    if not candidates:
        return current
    if direction > 0:
        return next((i for i in candidates if i > current), candidates[0])
    return next((i for i in reversed(candidates) if i < current), candidates[-1])


def candidates(subject, only_wrong) -> list[int]:
    """The samples next/previous step through: the misclassified with the filter on, where
    the subject misclassifies some; every sample otherwise, so a filter left ticked on a
    model without classes, or without errors, does not freeze the buttons on an empty list."""
    if only_wrong and _filters(subject):
        return overview.misclassified(subject)
    return list(range(overview.sample_count(subject)))


def stepped(subject, index: int, direction: int, only_wrong) -> int:
    """The sample ``direction`` steps after (> 0) or before (< 0) ``index``, wrapping around."""
    among = candidates(subject, only_wrong)
    for _ in range(min(abs(direction), max(1, len(among)))):
        index = _step(among, index, 1 if direction > 0 else -1)
    return index


def _steps(current: dict | None, prev_clicks, next_clicks, trigger) -> int:
    """How many samples to step: the clicks on next minus those on previous since the
    sample shown was chosen (its store keeps the counts it was chosen at). Clicks faster
    than the server answers each add a step instead of stepping from the same sample
    again; without counts (another writer of the store), one step the way clicked."""
    counted = (current or {}).get("clicks")
    one = 1 if trigger == NEXT else -1
    if not (isinstance(counted, list) and len(counted) == 2):
        return one
    return ((next_clicks or 0) - counted[1]) - ((prev_clicks or 0) - counted[0])  # next, then previous: none


def register(app, catalog) -> None:
    register_seen(app, TAB)

    @app.callback(
        Output(CURRENT_SAMPLE, "data"), Output(INDEX, "value"), Output(INDEX, "max"),
        Input(MODEL, "value"), Input(PREV, "n_clicks"), Input(NEXT, "n_clicks"),
        Input(INDEX, "value"), Input(ONLY_WRONG, "value"),
        Input({"type": SAMPLE_PICKER, "name": ALL}, "clickData"),  # a lasso selects, it does not pick
        Input(WANTED, "data"), State(APPLIED, "data"), State(CURRENT_SAMPLE, "data"),
    )
    def choose(name, _prev, _next, typed, only_wrong, _picked, wanted, applied, current):
        subject = catalog.get(name)
        n = overview.sample_count(subject)
        index = current["index"] if current and current.get("model") == name else 0
        among = candidates(subject, only_wrong)
        trigger = ctx.triggered_id
        linked = asked(wanted, applied, name, "sample")  # a link's sample (on load, back, forward)
        if linked is not None and {t["prop_id"] for t in ctx.triggered} & {f"{MODEL}.value", f"{WANTED}.data"}:
            index = min(linked, n - 1)
        elif trigger == INDEX and typed is not None:
            index = min(max(int(typed), 0), n - 1)
        elif trigger in (PREV, NEXT):
            index = stepped(subject, index, _steps(current, _prev, _next, trigger), only_wrong)
        elif trigger == ONLY_WRONG and only_wrong and among and index not in among:
            index = _step(among, index, 1)
        elif isinstance(trigger, dict) and trigger.get("type") == SAMPLE_PICKER:
            picked = next((p for p in (clicked_id(t["value"]) for t in ctx.triggered) if p is not None), None)
            if picked is not None and 0 <= picked < n:
                index = picked
        return {"model": name, "index": index, "clicks": [_prev or 0, _next or 0]}, index, n - 1

    @app.callback(Output(ONLY_WRONG, "options"), Output(ONLY_WRONG, "value"), Input(MODEL, "value"))
    def filter_choice(name):
        """The filter as it applies to the model: untouched where it does, else disabled and cleared."""
        subject = catalog.get(name)
        return filter_options(subject), no_update if _filters(subject) else []

    @app.callback(
        Output(SAMPLE_GRAPH, "figure"), Output(PREDICTION_GRAPH, "figure"), Output(CAPTION, "children"),
        Input(seen_id(TAB), "data"), State(TABS, "value"),
    )
    def show(current, tab):
        if tab != TAB or not current:
            return no_update, no_update, no_update
        try:
            subject, index = sample_of(catalog, current)  # the sample, or its edit
        except InterpError as exc:
            return no_update, no_update, str(exc)
        figs = overview.sample_figures(subject, index)
        return figs["sample"], figs["prediction"], overview.sample_caption(subject, index)
