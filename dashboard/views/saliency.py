"""Saliency view: several attribution methods side by side for the current sample.

Pick the methods (any number), what to explain (a class score, for autoencoders the
reconstruction error or a latent unit) and the target, and each method's options
(integrated-gradients steps, SmoothGrad noise and samples, occlusion window,
Grad-CAM layer). The grid and the numbers beside it come from
:func:`interp.study.saliency.comparison`, the same as in the reports.
"""

from __future__ import annotations

import math

from dash import Input, Output, State, dcc, html, no_update

from interp import methods as method_descriptions
from interp.errors import InterpError
from interp.study import overview, saliency

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
    register_seen,
    sample_poll,
    sample_poll_id,
    seen_id,
    seen_store,
    target_options,
)
from .state import APPLIED, WANTED, asked, by_link_only

TAB = "saliency"  # this view's tab (dashboard.app): nothing is computed while another is shown

METHODS = "sal-methods"
OBJECTIVE = "sal-objective"
TARGET = "sal-target"
STEPS = "sal-ig-steps"
SAMPLES = "sal-sg-samples"
NOISE = "sal-sg-noise"
WINDOW = "sal-occlusion-window"
LAYER = "sal-cam-layer"
CAPTION = "sal-caption"
GRID = "sal-grid"
SUMMARY = "sal-summary"

DEFAULT_STEPS, DEFAULT_SAMPLES, DEFAULT_NOISE = 32, 25, 0.15
# each method's options, shown only while the method is ticked (options of a method not run mean nothing)
OPTION_GROUPS = {m: f"sal-options-{m}" for m in ("integrated_gradients", "smoothgrad", "occlusion", "grad_cam")}
MAX_STEPS, MAX_SAMPLES, MAX_NOISE = 512, 200, 2.0


def _clamp(value, default, lo, hi, kind):
    """``value`` as ``kind`` within [lo, hi]; ``default`` when it is missing, not a number or
    not finite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return kind(min(max(number, lo), hi)) if math.isfinite(number) else default


def _number(id_: str, value, **kw) -> html.Div:
    return html.Div(dcc.Input(id=id_, type="number", value=value, debounce=True, **kw), className="number-input")


def layout() -> html.Div:
    return html.Div(className="saliency", children=[
        seen_store(TAB), sample_poll(TAB),
        html.Div(className="controls panel", children=[
            html.Label("methods", htmlFor=METHODS),
            dcc.Checklist(id=METHODS, inline=True, className="method-list"),
        ]),
        html.Div(className="controls panel", children=[
            html.Label("explain", htmlFor=OBJECTIVE),
            html.Div(dcc.Dropdown(id=OBJECTIVE, clearable=False), className="objective-picker"),
            html.Label("target", htmlFor=TARGET),
            html.Div(dcc.Dropdown(id=TARGET, clearable=False), className="target-picker"),
            html.Div(id=OPTION_GROUPS["integrated_gradients"], className="controls", children=[
                html.Label("IG steps", htmlFor=STEPS), _number(STEPS, DEFAULT_STEPS, min=1, max=MAX_STEPS, step=1)]),
            html.Div(id=OPTION_GROUPS["smoothgrad"], className="controls", children=[
                html.Label("SmoothGrad samples", htmlFor=SAMPLES),
                _number(SAMPLES, DEFAULT_SAMPLES, min=1, max=MAX_SAMPLES, step=1),
                html.Label("noise", htmlFor=NOISE), _number(NOISE, DEFAULT_NOISE, min=0, max=MAX_NOISE, step=0.05)]),
            html.Div(id=OPTION_GROUPS["occlusion"], className="controls", children=[
                html.Label("occlusion window", htmlFor=WINDOW),
                _number(WINDOW, None, min=1, step=1, placeholder="auto")]),
            html.Div(id=OPTION_GROUPS["grad_cam"], className="controls", children=[
                html.Label("Grad-CAM layer", htmlFor=LAYER),
                html.Div(dcc.Dropdown(id=LAYER, clearable=False), className="layer-picker")]),
        ]),
        html.Div(id=CAPTION, className="caption panel"),
        loading(html.Div(className="grid", children=[
            html.Div(dcc.Graph(id=GRID, config=GRAPH_CONFIG), className="panel wide"),
            html.Div(dcc.Graph(id=SUMMARY, config=GRAPH_CONFIG), className="panel wide"),
        ])),
    ])


def register(app, catalog) -> None:
    register_seen(app, TAB)

    @app.callback(
        Output(METHODS, "options"), Output(METHODS, "value"), Output(OBJECTIVE, "options"),
        Output(OBJECTIVE, "value"), Output(LAYER, "options"), Output(LAYER, "value"), Output(LAYER, "disabled"),
        Input(MODEL, "value"), Input(WANTED, "data"), State(APPLIED, "data"),
    )
    def choices(name, wanted, applied):
        subject = catalog.get(name)
        linked = asked(wanted, applied, name, "methods")  # a link's methods (on load, back, forward)
        if by_link_only(wanted):
            return (no_update, linked or no_update) + (no_update,) * 5
        described = method_descriptions()
        methods = [{"label": m, "value": m, "title": described[m]} for m in saliency.available_methods(subject)]
        objectives = [{"label": o.label, "value": o.key} for o in saliency.objectives(subject)]
        layers = saliency.cam_layers(subject)
        return (methods, linked or saliency.default_methods(subject), objectives, objectives[0]["value"],
                [{"label": la, "value": la} for la in layers] or [{"label": "(no convolution)", "value": ""}],
                layers[0] if layers else "", not layers)

    @app.callback(*(Output(group, "style") for group in OPTION_GROUPS.values()), Input(METHODS, "value"))
    def option_groups(methods):
        """A method's options only while it is ticked."""
        return tuple(SHOWN if m in (methods or []) else HIDDEN for m in OPTION_GROUPS)

    @app.callback(Output(TARGET, "options"), Output(TARGET, "value"), Input(OBJECTIVE, "value"),
                  State(MODEL, "value"))
    def targets(key, name):
        subject = catalog.get(name)
        try:
            obj = saliency.objective(subject, key)
        except InterpError:
            return no_update, no_update
        return target_options(obj)

    @app.callback(
        Output(GRID, "figure"), Output(SUMMARY, "figure"), Output(CAPTION, "children"),
        Output(sample_poll_id(TAB), "disabled"),
        Input(seen_id(TAB), "data"), Input(METHODS, "value"), Input(OBJECTIVE, "value"),
        Input(TARGET, "value"), Input(STEPS, "value"), Input(SAMPLES, "value"), Input(NOISE, "value"),
        Input(WINDOW, "value"), Input(LAYER, "value"), Input(sample_poll_id(TAB), "n_intervals"),
        State(TABS, "value"), State(MODEL, "value"), State(PAGE, "data"),
    )
    def show(current, methods, key, target, steps, samples, noise, window, layer, _ticks, tab, name, page):
        """The grid and the numbers, and whether the poll stops (it runs while they are computed)."""
        subject = catalog.get(name)
        if (current or {}).get("model") != name or tab != TAB:
            return no_update, no_update, no_update, True
        *shown, polling = _show(subject, current, methods, key, target, steps, samples, noise, window, layer, name,
                                page)
        return (*shown, not polling)

    def _show(subject, current, methods, key, target, steps, samples, noise, window, layer, name, page):
        usable = saliency.available_methods(subject)
        chosen = [m for m in (methods or []) if m in usable]  # a model switch may leave others behind
        if not chosen:
            return no_update, no_update, "Choose at least one method.", False
        obj = next((o for o in saliency.objectives(subject) if o.key == key), saliency.objectives(subject)[0])
        if target not in [v for _, v in obj.targets]:
            target = obj.targets[0][1]
        options = {  # clamped here too: a browser's min/max are only a hint
            "integrated_gradients": {"steps": _clamp(steps, DEFAULT_STEPS, 1, MAX_STEPS, int)},
            "smoothgrad": {"samples": _clamp(samples, DEFAULT_SAMPLES, 1, MAX_SAMPLES, int),
                           "noise": _clamp(noise, DEFAULT_NOISE, 0.0, MAX_NOISE, float)},
            "occlusion": {"window": _clamp(window, 1, 1, 10_000, int)} if window else {},
            "grad_cam": {"layer": layer} if layer else {},
        }
        try:
            subject, index = sample_of(catalog, current)  # the sample, or its edit
        except InterpError as exc:
            return no_update, no_update, str(exc), False

        def compute():
            grid, summary, _ = saliency.comparison(subject, index, chosen, obj.key, target, options)
            return {"grid": grid, "summary": summary}

        try:
            shown = LATER.get(page, TAB, subject, {"index": index, "methods": chosen, "objective": obj.key,
                                                   "target": target, "options": options}, compute)
        except InterpError as exc:  # e.g. an occlusion window larger than the input
            return no_update, no_update, f"Cannot explain this: {exc}", False
        if isinstance(shown, Pending):
            return no_update, no_update, shown.text(f"{name} · {len(chosen)} saliency maps of the sample chosen"), True
        methods_text = f"{len(chosen)} method" + ("s" if len(chosen) != 1 else "")
        caption = (f"{name} · {overview.sample_caption(subject, index)} · explaining {obj.label}"
                   f"{'' if len(obj.targets) == 1 else f', target {target}'} · {methods_text} · "
                   "each map scaled to its own largest magnitude; hover for raw values")
        return shown["grid"], shown["summary"], caption, False
