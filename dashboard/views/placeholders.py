"""Places for the analyses still to come; each says plainly that it is not built yet."""

from __future__ import annotations

from dash import html

from zoo.overview import ANALYSES

TABS = [(key, label) for key, label, _ in ANALYSES]
PLANS = {key: plan for key, _, plan in ANALYSES}


def layout(key: str) -> html.Div:
    return html.Div(className="panel placeholder", id=f"placeholder-{key}", children=[
        html.H3("Not built yet"),
        html.P(f"This view will show {PLANS[key]}."),
    ])
