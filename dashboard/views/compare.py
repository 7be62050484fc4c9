"""Compare view: two explanations side by side on one colour scale, with how far they agree.

Pick what to compare: two methods (any attribution method or LRP under any composite) on
the current sample, two LRP composites, the pinned sample and the current one under one
method (pin a sample with the top bar's pin, as LIT pins a datapoint), or two models that
take the same inputs under one method (the same test-set index in each). Where both sides
explain the same input, right − left is drawn too. The numbers: Spearman's ρ of the
values, the overlap of their top 10% positions, the sums. Composed in
:mod:`interp.study.compare`.
"""

from __future__ import annotations

from dash import Input, Output, State, dcc, html, no_update

from interp.errors import InterpError
from interp.study import cache, lrp, whatif
from interp.study import compare as cmp

from ..edits import sample_of
from ..later import LATER, Pending
from .shell import (
    GRAPH_CONFIG,
    HIDDEN,
    MODEL,
    PAGE,
    SHOWN,
    TABS,
    loading,
    message_figure,
    register_seen,
    sample_poll,
    sample_poll_id,
    seen_id,
    seen_store,
)

TAB = "compare"
KIND = "cmp-kind"
LEFT, RIGHT = "cmp-left", "cmp-right"
RIGHT_BOX = "cmp-right-box"
OTHER, OTHER_BOX = "cmp-other-model", "cmp-other-box"
CAPTION = "cmp-caption"
PAIR = "cmp-pair"
PINNED = "pinned-sample"  # store in the top bar: {"model", "index", "edit"} or None
PIN, PINNED_TEXT = "pin-sample", "pinned-text"


def pin_controls() -> list:
    """The top bar's pin: the current sample kept as the reference for comparisons."""
    return [html.Button("pin", id=PIN, n_clicks=0, title="pin this sample as the reference to compare with"),
            html.Span(id=PINNED_TEXT, className="pinned-text"), dcc.Store(id=PINNED, data=None)]


def layout() -> html.Div:
    return html.Div(className="compare", children=[
        seen_store(TAB), sample_poll(TAB),
        html.Div(className="controls panel", children=[
            html.Label("compare", htmlFor=KIND),
            dcc.RadioItems(id=KIND, options=[{"label": label, "value": v} for v, label in cmp.KINDS],
                           value="methods", inline=True, className="method-list"),
        ]),
        html.Div(className="controls panel", children=[
            html.Label("left", htmlFor=LEFT),
            html.Div(dcc.Dropdown(id=LEFT, clearable=False), className="layer-picker"),
            html.Div(id=RIGHT_BOX, className="controls", children=[
                html.Label("right", htmlFor=RIGHT),
                html.Div(dcc.Dropdown(id=RIGHT, clearable=False), className="layer-picker")]),
            html.Div(id=OTHER_BOX, className="controls", style=HIDDEN, children=[
                html.Label("other model", htmlFor=OTHER),
                html.Div(dcc.Dropdown(id=OTHER, clearable=False), className="layer-picker")]),
        ]),
        html.Div(id=CAPTION, className="caption panel"),
        loading(html.Div(dcc.Graph(id=PAIR, config=GRAPH_CONFIG), className="panel wide")),
    ])


def register(app, catalog) -> None:
    register_seen(app, TAB)

    @app.callback(Output(PINNED, "data"), Output(PINNED_TEXT, "children"), Input(PIN, "n_clicks"),
                  State("current-sample", "data"), prevent_initial_call=True)
    def pin(_clicks, current):
        if not current:
            return no_update, no_update
        edited = ", edited" if current.get("edit") else ""
        return dict(current), f"pinned: {current['model']} sample {current['index']}{edited}"

    @app.callback(Output(LEFT, "options"), Output(LEFT, "value"), Output(RIGHT, "options"), Output(RIGHT, "value"),
                  Output(RIGHT_BOX, "style"), Output(OTHER, "options"), Output(OTHER, "value"),
                  Output(OTHER_BOX, "style"), Input(MODEL, "value"), Input(KIND, "value"))
    def choices(name, kind):
        subject = catalog.get(name)
        every = [{"label": label, "value": v} for v, label in cmp.explanations(subject)]
        composites = [o for o in every if o["value"].startswith(cmp.LRP)]
        methods = [o for o in every if not o["value"].startswith(cmp.LRP)]
        default_lrp = f"{cmp.LRP}{lrp.default_composite(subject)}"
        others = [{"label": catalog.label(n), "value": n} for n in catalog.names() if n != name]
        if kind == "composites":
            left, right = f"{cmp.LRP}epsilon", default_lrp
            return composites, left, composites, right, SHOWN, others, no_update, HIDDEN
        if kind in ("samples", "models"):
            first = methods[0]["value"] if methods else default_lrp
            other = others[0]["value"] if others else None
            return every, first, every, no_update, HIDDEN, others, other, SHOWN if kind == "models" else HIDDEN
        return every, methods[0]["value"] if methods else default_lrp, every, default_lrp, SHOWN, others, \
            no_update, HIDDEN

    @app.callback(Output(PAIR, "figure"), Output(CAPTION, "children"), Output(sample_poll_id(TAB), "disabled"),
                  Input(seen_id(TAB), "data"), Input(KIND, "value"), Input(LEFT, "value"), Input(RIGHT, "value"),
                  Input(OTHER, "value"), Input(PINNED, "data"), Input(sample_poll_id(TAB), "n_intervals"),
                  State(TABS, "value"), State(MODEL, "value"), State(PAGE, "data"))
    def show(current, kind, left, right, other, pinned, _ticks, tab, name, page):
        if tab != TAB or (current or {}).get("model") != name or not left:
            return no_update, no_update, True
        try:
            subject, index = sample_of(catalog, current)
            if kind == "samples":
                if not pinned:
                    return message_figure("pin a sample first (the pin in the top bar)"), "nothing pinned yet", True
                if pinned.get("model") != name:
                    return message_figure(f"the pinned sample is {pinned['model']}'s; pin one of {name}"), "", True
                ref, ref_index = sample_of(catalog, pinned)
                sides = ((ref, ref_index, left), (subject, index, left))
            elif kind == "models":
                if not other:
                    return message_figure("there is no other model to compare with"), "", True
                second = catalog.get(other)
                at = int(current["index"])  # the test sample (an edit's too)
                if at >= len(second.inputs):
                    return message_figure(f"{other} has no test sample {at}"), "", True
                if current.get("edit"):  # the other model on the same edited input
                    second, at = whatif.edited(second, at, subject.inputs[index]), 0
                sides = ((subject, index, left), (second, at, left))
            else:
                if not right:
                    return no_update, no_update, True
                sides = ((subject, index, left), (subject, index, right))
            request = {"kind": kind, "sides": [[cache.key_of(s, {"side": k}), i, w] for k, (s, i, w) in
                                               enumerate(sides)]}

            def compute():
                p = cmp.pair(*sides, title=dict(cmp.KINDS).get(kind, kind).capitalize())
                return {"figure": p.figure, "text": cmp.text(p)}

            shown = LATER.get(page, TAB, subject, request, compute)
        except InterpError as exc:
            return message_figure(str(exc)), f"cannot compare these: {exc}", True
        if isinstance(shown, Pending):
            return no_update, shown.text(f"{name} · the comparison"), False
        return shown["figure"], f"{name} · {shown['text']}", True


__all__ = ["layout", "register", "pin_controls", "TAB", "PINNED"]
