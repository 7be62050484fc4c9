"""Overview view: model card, test metrics, architecture, and the task's figure."""

from __future__ import annotations

from dash import Input, Output, dcc, html

from zoo import overview

from .shell import GRAPH_CONFIG, MODEL

CARD = "overview-card"
FIGURES = "overview-figures"


def layout() -> html.Div:
    return html.Div(className="overview", children=[
        dcc.Loading(html.Div(id=CARD, className="panel card")),
        dcc.Loading(html.Div(id=FIGURES, className="grid")),
    ])


def card_table(card: dict) -> html.Table:
    return html.Table(className="card-table", children=[
        html.Tr([html.Td(k), html.Td(v)]) for k, v in overview.card_rows(card)
    ])


def register(app) -> None:
    @app.callback(Output(CARD, "children"), Output(FIGURES, "children"), Input(MODEL, "value"))
    def show(name):
        entry = overview.cached_entry(name)
        graphs = [html.Div(dcc.Graph(id=f"overview-{key}", figure=fig, config=GRAPH_CONFIG),
                           className="panel")
                  for key, fig in overview.overview_figures(entry).items()]
        return [html.H3(f"Model card: {name}"), card_table(entry.card)], graphs
