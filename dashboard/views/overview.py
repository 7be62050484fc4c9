"""Overview view: the subject's card, metrics, architecture, and the task's figure."""

from __future__ import annotations

from dash import Input, Output, dcc, html, no_update

from interp.errors import InterpError
from interp.study import overview

from ..views_cache import VIEWS
from .shell import GRAPH_CONFIG, MODEL, TABS, loading

TAB = "overview"  # this view's tab (dashboard.app): nothing is drawn while another is shown

CARD = "overview-card"
FIGURES = "overview-figures"


def layout() -> html.Div:
    return html.Div(className="overview", children=[
        loading(html.Div(id=CARD, className="panel card")),
        loading(html.Div(id=FIGURES, className="grid")),
    ])


def card_table(subject) -> html.Table:
    return html.Table(className="card-table", children=[
        html.Tr([html.Td(k), html.Td(v)]) for k, v in overview.card_rows(subject)
    ])


def register(app, catalog) -> None:
    @app.callback(Output(CARD, "children"), Output(FIGURES, "children"), Input(MODEL, "value"),
                  Input(TABS, "value"))
    def show(name, tab):
        if tab != TAB:
            return no_update, no_update
        try:
            subject = catalog.get(name)
            figures = VIEWS.get(subject, TAB, {}, lambda: overview.overview_figures(subject))
        except InterpError as exc:  # e.g. a model made on first use that fails its check: said in the page
            return [html.H3(f"Model card: {name}"), html.P(str(exc), className="error")], []
        graphs = [html.Div(dcc.Graph(id=f"overview-{key}", figure=fig, config=GRAPH_CONFIG),
                           className="panel")
                  for key, fig in figures.items()]
        return [html.H3(f"Model card: {name}"), card_table(subject)], graphs
