"""The frame around every view: header with the model picker, tabs, shared stores."""

from __future__ import annotations

import json

import plotly.graph_objects as go
from dash import Input, Output, dcc, html

MODEL = "model-picker"
TABS = "view-tabs"
CURRENT_SAMPLE = "current-sample"  # {"model": name, "index": int}: the sample every view shows
PAGE = "page-id"  # a random name of this browser page, set in the page: its requests supersede its own (later.py)
# graphs whose id is {"type": SAMPLE_PICKER, "name": ...} select the clicked sample everywhere:
# each point's customdata holds a test-sample index
SAMPLE_PICKER = "sample-picker"
# every dcc.Graph of the dashboard: no control that sends data off the machine (Dash's graphs
# show Plotly's "Share chart..." by default, which uploads the figure to Plotly's cloud)
GRAPH_CONFIG = {"displaylogo": False, "showSendToCloud": False, "showEditInChartStudio": False, "showLink": False,
                "modeBarButtonsToRemove": ["sendDataToCloud", "editInChartStudio"]}
HIDDEN, SHOWN = {"display": "none"}, {}  # styles of panels shown only when they apply
LOADING_DELAY_MS = 400  # a spinner only for what takes longer: a quick answer is drawn without a flash


def loading(children) -> dcc.Loading:
    """A spinner over ``children`` while their callbacks run, shown only after
    ``LOADING_DELAY_MS``, the old figures staying visible (dimmed) under it: switching
    between cached results redraws in place instead of hiding and re-laying out the page."""
    return dcc.Loading(children, delay_show=LOADING_DELAY_MS,
                       overlay_style={"visibility": "visible", "opacity": 0.55})


# Each view's "seen" store: the current sample as that view should show it, set in the browser
# (no request) only while the view is in front, and again each time it is brought to front
# (with the time, so a view that missed changes while hidden redraws). The views' callbacks
# take it instead of the current sample and the tabs: a sample step then asks the server for
# the view in front only, not for every hidden one.
SEEN_JS = """
function(current, tab) {
    if (tab !== %s || !current) { return window.dash_clientside.no_update; }
    return {model: current.model, index: current.index, edit: current.edit || null, at: Date.now()};
}
"""


def seen_id(tab: str) -> str:
    return f"seen-{tab}"


def seen_store(tab: str) -> dcc.Store:
    return dcc.Store(id=seen_id(tab), data=None)


def register_seen(app, tab: str) -> None:
    app.clientside_callback(SEEN_JS % json.dumps(tab), Output(seen_id(tab), "data"),
                            Input(CURRENT_SAMPLE, "data"), Input(TABS, "value"))


def listed_for(tab: str) -> str:
    """The id of the store naming the model a view's layer list was made for."""
    return f"{tab}-listed-for"


def first_look(view: str, tab: str, name: str, listed: str | None) -> str:
    """What a view whose layer list records the test set does when the model or the tab
    changes: "list" (shown, and not listed for this model yet), "clear" (hidden, and
    listed for another model: its layers must not stand for this one's, in the URL or
    anywhere), "keep" otherwise. A hidden view lists nothing: that is seconds on a large model."""
    if tab == view:
        return "keep" if listed == name else "list"
    return "clear" if listed not in (None, name) else "keep"


def sample_poll_id(tab: str) -> str:
    return f"{tab}-sample-poll"


def sample_poll(tab: str) -> dcc.Interval:
    """The interval a view polls with while its sample's result is computed in the background (later.py)."""
    from ..later import POLL_MS

    return dcc.Interval(id=sample_poll_id(tab), interval=POLL_MS, disabled=True)


def message_figure(text: str) -> go.Figure:
    """A blank figure saying ``text`` (while the test set is computed, or why it is not)."""
    fig = go.Figure()
    fig.update_layout(height=260, margin=dict(l=20, r=20, t=20, b=20), plot_bgcolor="white",
                      xaxis=dict(visible=False), yaxis=dict(visible=False),
                      annotations=[dict(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                                        font=dict(size=14, color="#4a5665"))])
    return fig


def clicked_id(click) -> int | None:
    """The unit or sample index a graph's clickData names: the point's customdata, or
    for bar charts over units (where Dash leaves customdata out) its x."""
    try:
        point = click["points"][0]
        value = point["customdata"] if "customdata" in point else point["x"]
        return int(value[0] if isinstance(value, list) else value)
    except (TypeError, KeyError, IndexError, ValueError):
        return None


def selected_ids(selection) -> list[int]:
    """Sample indices of a lasso or box selection's points (their customdata), in order."""
    out = []
    for point in (selection or {}).get("points", []):
        value = point.get("customdata")
        value = value[0] if isinstance(value, list) else value
        if isinstance(value, (int, float)) and int(value) not in out:
            out.append(int(value))
    return out


def target_options(objective) -> tuple[list[dict], object]:
    """A target picker's options and first value for an objective (saliency, LRP)."""
    return [{"label": label, "value": value} for label, value in objective.targets], objective.targets[0][1]


def layout(catalog, selected: str, tabs: list[tuple[str, str, object]], extra=(), bar=()) -> html.Div:
    """The page: the top bar (the model picker, then ``bar``: the sample stepper), the
    shared stores, ``extra`` (the URL state's parts), the tabs."""
    return html.Div(className="app", children=[*extra,
        html.Header(className="topbar", children=[
            html.Div("interp", className="brand"),
            html.Div(className="picker", children=[
                html.Label("model", htmlFor=MODEL),
                dcc.Dropdown(id=MODEL, options=[{"label": catalog.label(n), "value": n} for n in catalog.names()],
                             value=selected,
                             clearable=False, searchable=True),
            ]),
            *bar,
        ]),
        dcc.Store(id=CURRENT_SAMPLE, data={"model": selected, "index": 0}),
        dcc.Store(id=PAGE, data=None),
        dcc.Tabs(id=TABS, value=tabs[0][0], className="tabs", children=[
            dcc.Tab(label=label, value=key, children=html.Div(body, className="tab-body"))
            for key, label, body in tabs
        ]),
    ])
