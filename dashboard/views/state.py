"""The dashboard's state in the URL: a reload restores the view, back and forward work,
and a link can be shared.

``?model=cnn-digits&sample=12&view=lrp&methods=saliency,integrated_gradients&composite=epsilon-plus
&layer=features.3&unit=5``: the model, the current sample, the view (tab), the saliency
methods, the LRP composite, and the activations view's layer and unit.

How it flows (Dash has no two-way binding between the URL and the controls, and a static
cycle URL → controls → URL is refused):

- reading: a ``dcc.Location`` reports the URL on load and on back/forward (``popstate``);
  :func:`wanted` checks it against the catalog and the model (unknown names and
  out-of-range numbers are dropped, each said in the page) into the ``WANTED`` store, which
  the model picker, the tabs, the sample and each view's choices follow;
- writing: :func:`encode` of the controls goes to the ``STATE`` store, and a clientside
  callback pushes it onto the browser's history (``history.pushState``: never seen by the
  ``dcc.Location``, so no loop), a fraction of a second after the last change, so a
  model switch's cascade of defaults makes one entry, not five. Until the wanted state is
  in every control (or a few seconds went by), nothing is written, so a link is not
  overwritten by the defaults a page starts with.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode

from dash import Input, Output, State, ctx, dcc, html, no_update

from interp.errors import InterpError
from interp.study import activations, lrp, overview, saliency

from .shell import CURRENT_SAMPLE, MODEL, PAGE, TABS

URL = "url"
WANTED = "url-wanted"   # store: {"state": {...}, "at": time, "first": on the page's start}
APPLIED = "url-applied"  # store: the "at" of the last wanted state in every control (kept apart: no cycle)
STATE = "url-state"     # store: {"search": the controls' state, "replace": whether it is the entry shown}
PUSHED = "url-pushed"   # store: what the clientside callback pushed (a dummy output)
POPPED = "url-popped"   # store: {"search", "at"} of the history entry reached by back or forward
NOTE = "url-note"
KEYS = ("model", "sample", "view", "methods", "composite", "layer", "unit")
SETTLE_S = 8.0  # after this long a wanted state counts as applied even if a control refused it

# Dash's controls: the ids of the values kept in the URL (in the views' modules)
METHODS, COMPOSITE, LAYER, UNIT = "sal-methods", "lrp-composite", "act-layer", "act-unit"

PUSH = """
function(state) {
    if (!state || typeof state.search !== "string") { return window.dash_clientside.no_update; }
    if (!window._interpUrlListens) {
        // back or forward: a write still waiting is for the entry left, and the page follows the entry
        // reached. The dcc.Location does not see the entries pushed here, so it may hold the very search
        // gone back to and stay silent: the entry is reported through a store of its own, always new.
        window._interpUrlListens = true;
        window.addEventListener("popstate", function () {
            clearTimeout(window._interpUrlTimer);
            window.dash_clientside.set_props("url-popped", {data: {search: window.location.search, at: Date.now()}});
        });
    }
    clearTimeout(window._interpUrlTimer);
    window._interpUrlTimer = setTimeout(function () {
        if (window.location.search === state.search) { return; }
        var url = window.location.pathname + state.search;
        if (state.replace) { window.history.replaceState(null, "", url); }
        else { window.history.pushState(null, "", url); }
    }, 250);
    return state.search;
}
"""


def layout() -> list:
    return [dcc.Location(id=URL, refresh=False), dcc.Store(id=WANTED, data=None), dcc.Store(id=APPLIED, data=None),
            dcc.Store(id=STATE),
            dcc.Store(id=PUSHED), dcc.Store(id=POPPED), html.Div(id=NOTE, className="url-note")]


def parse(search: str | None) -> dict:
    """The state a URL's query asks for, typed (numbers as ints, methods as a list); keys
    outside :data:`KEYS` and values of the wrong kind dropped."""
    query = parse_qs((search or "").lstrip("?"), keep_blank_values=False)
    out: dict = {}
    for key in KEYS:
        values = query.get(key)
        if not values:
            continue
        value = values[-1].strip()
        if key in ("sample", "unit"):
            if value.isdigit():
                out[key] = int(value)
        elif key == "methods":
            out[key] = [m for m in value.split(",") if m]
        elif value:
            out[key] = value
    return out


def encode(state: dict) -> str:
    """The URL query of ``state`` (keys in :data:`KEYS` order, None left out)."""
    items = []
    for key in KEYS:
        value = state.get(key)
        if value is None or value == []:
            continue
        items.append((key, ",".join(value) if isinstance(value, (list, tuple)) else str(value)))
    return "?" + urlencode(items, safe=",") if items else ""


def checked(catalog, views: list[str], asked: dict) -> tuple[dict, list[str]]:
    """``asked`` with what this dashboard cannot show dropped, and why (one line each)."""
    state, problems = {}, []
    name = asked.get("model")
    if name is not None and name not in catalog.names():
        problems.append(f"no model {name!r} here (the link names it)")
        name = None
    if asked.get("view") is not None:
        if asked["view"] in views:
            state["view"] = asked["view"]
        else:
            problems.append(f"no view {asked['view']!r}")
    if name is None:
        return state, problems
    try:
        subject = catalog.get(name)
    except InterpError as exc:
        return state, problems + [str(exc)]
    state["model"] = name
    n = overview.sample_count(subject)
    if "sample" in asked:
        if asked["sample"] < n:
            state["sample"] = asked["sample"]
        else:
            problems.append(f"sample {asked['sample']} is out of range (the test set has {n})")
    if "methods" in asked:
        usable = saliency.available_methods(subject)
        good = [m for m in asked["methods"] if m in usable]
        problems += [f"no saliency method {m!r} for {name}" for m in asked["methods"] if m not in usable]
        if good:
            state["methods"] = good
    if "composite" in asked:
        if asked["composite"] in lrp.composites():
            state["composite"] = asked["composite"]
        else:
            problems.append(f"no LRP composite {asked['composite']!r}")
    if "layer" in asked:
        if asked["layer"] in activations.outputs(subject):
            state["layer"] = asked["layer"]
            if "unit" in asked:
                units = activations.units(subject, asked["layer"])
                if asked["unit"] < units:
                    state["unit"] = asked["unit"]
                else:
                    problems.append(f"unit {asked['unit']} is out of range ({asked['layer']} has {units})")
        else:
            problems.append(f"no layer output {asked['layer']!r} in {name}")
    return state, problems


def asked(wanted: dict | None, applied, name: str, key: str):
    """What the URL asks of ``key`` for model ``name`` while it is being applied (None:
    nothing, another model's, or applied already: the user has the controls since)."""
    if not wanted or applied == wanted.get("at"):
        return None
    state = wanted.get("state") or {}
    return state.get(key) if state.get("model") == name else None


def by_link_only(wanted: dict | None) -> bool:
    """Whether the running callback was set off by the URL's state alone, on back or
    forward: not by a model pick, nor by the page starting (then it sets everything up)."""
    return bool(wanted) and not wanted.get("first") and {t["prop_id"] for t in ctx.triggered} == {f"{WANTED}.data"}


def register(app, catalog, views: list[str]) -> None:
    @app.callback(Output(WANTED, "data"), Output(NOTE, "children"), Input(URL, "search"), Input(POPPED, "data"),
                  State(WANTED, "data"))
    def wanted(search, popped, before):
        """The URL's state on load and on back/forward, as far as it can be shown."""
        if ctx.triggered_id == POPPED and popped:
            search = popped.get("search", search)
        state, problems = checked(catalog, views, parse(search))
        note = ("the link asks for what is not here: " + "; ".join(problems)) if problems else ""
        return {"state": state, "at": time.time(), "first": before is None}, note

    @app.callback(Output(MODEL, "value"), Output(TABS, "value"), Input(WANTED, "data"),
                  State(MODEL, "value"), State(TABS, "value"))
    def follow(wanted, name, tab):
        state = (wanted or {}).get("state") or {}
        model, view = state.get("model"), state.get("view")
        return (model if model and model != name else no_update), (view if view and view != tab else no_update)

    @app.callback(Output(STATE, "data"), Output(APPLIED, "data"),
                  Input(MODEL, "value"), Input(CURRENT_SAMPLE, "data"), Input(TABS, "value"),
                  Input(METHODS, "value"), Input(COMPOSITE, "value"), Input(LAYER, "value"), Input(UNIT, "value"),
                  State(WANTED, "data"), State(APPLIED, "data"))
    def write(name, current, tab, methods, composite, layer, unit, wanted, applied):
        state = {"model": name, "sample": current.get("index") if current and current.get("model") == name else None,
                 "view": tab, "methods": methods or None, "composite": composite, "layer": layer, "unit": unit}
        if layer is None:  # the Activations view lists its layers when first shown: until then the link's stand
            linked = (wanted or {}).get("state") or {}
            carried = linked if linked.get("model") == name else {}
            state["layer"], state["unit"] = carried.get("layer"), carried.get("unit")
        if wanted and applied != wanted.get("at"):
            asked_for = wanted.get("state") or {}
            behind = any(state.get(k) != v for k, v in asked_for.items())
            if behind and time.time() - wanted.get("at", 0) < SETTLE_S:
                return no_update, no_update  # the link's state is still reaching the controls
            # the link (or the entry gone back to) in full: the same place in the history, not a new one
            return {"search": encode(state), "replace": True}, wanted.get("at")
        if wanted is None:  # the page is starting: the URL is read first
            return no_update, no_update
        return {"search": encode(state), "replace": False}, no_update

    app.clientside_callback(PUSH, Output(PUSHED, "data"), Input(STATE, "data"))
    app.clientside_callback(PAGE_NAME, Output(PAGE, "data"), Input(URL, "pathname"), State(PAGE, "data"))


# the page's name, made once when it loads (crypto.randomUUID needs a secure context: 127.0.0.1 is one)
PAGE_NAME = """
function(_path, named) {
    if (named) { return window.dash_clientside.no_update; }
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return Math.random().toString(36).slice(2) + Date.now().toString(36);
}
"""


__all__ = ["layout", "register", "parse", "encode", "checked", "asked", "by_link_only", "URL", "WANTED", "APPLIED",
           "KEYS"]
