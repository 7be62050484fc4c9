"""LRP view: layer-wise relevance for the current sample, next to saliency, layer by layer.

Pick a composite (each with its description), what to explain and the target, and
give any weighted layer another rule (a layer, a rule; "reset" drops every
override). The rule plan shows what each module gets before anything runs, so a
rule that cannot apply is seen in the plan and explained in the caption. The figures
(relevance beside the chosen saliency methods, relevance flow, per-layer maps of
convolutions, the numbers) come from :func:`interp.study.lrp.comparison`, the same as in the
reports.
"""

from __future__ import annotations

from dash import Input, Output, State, ctx, dcc, html, no_update

from interp import figures
from interp import methods as method_descriptions
from interp.errors import InterpError
from interp.study import lrp, overview
from interp.study import saliency as sal

from ..edits import sample_of
from ..later import LATER, Pending
from ..views_cache import VIEWS
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

TAB = "lrp"  # this view's tab (dashboard.app): nothing is computed while another is shown

COMPOSITE = "lrp-composite"
DESCRIPTION = "lrp-composite-description"
OBJECTIVE = "lrp-objective"
TARGET = "lrp-target"
LAYER = "lrp-override-layer"
RULE = "lrp-override-rule"
RESET = "lrp-override-reset"
OVERRIDES = "lrp-overrides"  # store: {layer path: rule name}
PLAN_DRAWN = "lrp-plan-drawn"  # store: what decided the plan on screen (composite, overrides, objective)
OVERRIDE_NOTE = "lrp-override-note"
SALIENCY = "lrp-saliency"
CAPTION = "lrp-caption"
PLAN = "lrp-plan"
GRID = "lrp-grid"
FLOW = "lrp-flow"
MAPS = "lrp-layer-maps"
MAPS_PANEL = "lrp-layer-maps-panel"
SUMMARY = "lrp-summary"

COMPOSITE_RULE = "composite"  # the rule dropdown's "no override" value


def composite_options(described: dict[str, str]) -> list[dict]:
    """Dropdown options of the composites, their descriptions as tooltips."""
    return [{"label": name, "value": name, "title": text} for name, text in described.items()]


def rule_options(rules: dict[str, str]) -> list[dict]:
    """The rule dropdown's options: the composite's own rule first, then every named rule."""
    return [{"label": "the composite's rule", "value": COMPOSITE_RULE}] + [
        {"label": label, "value": name} for name, label in rules.items()]


def with_override(overrides: dict | None, layer: str | None, rule: str | None, layers) -> dict:
    """``overrides`` with ``layer`` given ``rule`` (the composite's rule: the override
    dropped), keeping only layers in ``layers``."""
    out = {k: v for k, v in (overrides or {}).items() if k in layers}
    if layer in layers and rule:
        if rule == COMPOSITE_RULE:
            out.pop(layer, None)
        else:
            out[layer] = rule
    return out


def overrides_text(overrides: dict | None) -> str:
    if not overrides:
        return "no overrides"
    return "overrides: " + ", ".join(f"{layer} → {rule}" for layer, rule in overrides.items())


def layout() -> html.Div:
    return html.Div(className="lrp", children=[
        seen_store(TAB), sample_poll(TAB),
        html.Div(className="controls panel", children=[
            html.Label("composite", htmlFor=COMPOSITE),
            html.Div(dcc.Dropdown(id=COMPOSITE, options=composite_options(lrp.composites()),
                                  value=lrp.DEFAULT_COMPOSITE, clearable=False), className="composite-picker"),
            html.Span(id=DESCRIPTION, className="caption composite-description"),
        ]),
        html.Div(className="controls panel", children=[
            html.Label("explain", htmlFor=OBJECTIVE),
            html.Div(dcc.Dropdown(id=OBJECTIVE, clearable=False), className="objective-picker"),
            html.Label("target", htmlFor=TARGET),
            html.Div(dcc.Dropdown(id=TARGET, clearable=False), className="target-picker"),
            html.Label("rule for layer", htmlFor=LAYER),
            html.Div(dcc.Dropdown(id=LAYER, clearable=False), className="layer-picker"),
            html.Div(dcc.Dropdown(id=RULE, options=rule_options(lrp.rules()), value=COMPOSITE_RULE,
                                  clearable=False), className="rule-picker"),
            html.Button("reset rules", id=RESET, n_clicks=0),
            html.Span(id=OVERRIDE_NOTE, className="caption"),
            dcc.Store(id=OVERRIDES, data={}), dcc.Store(id=PLAN_DRAWN, data=None),
        ]),
        html.Div(className="controls panel", children=[
            html.Label("beside", htmlFor=SALIENCY),
            dcc.Checklist(id=SALIENCY, inline=True, className="method-list"),
        ]),
        html.Div(id=CAPTION, className="caption panel"),
        loading(html.Div(className="grid", children=[
            html.Div(dcc.Graph(id=GRID, config=GRAPH_CONFIG), className="panel wide"),
            html.Div(dcc.Graph(id=FLOW, config=GRAPH_CONFIG), className="panel wide"),
            html.Div(dcc.Graph(id=PLAN, config=GRAPH_CONFIG), className="panel wide"),
            html.Div(dcc.Graph(id=MAPS, config=GRAPH_CONFIG), id=MAPS_PANEL, className="panel wide", style=HIDDEN),
            html.Div(dcc.Graph(id=SUMMARY, config=GRAPH_CONFIG), className="panel wide"),
        ])),
    ])


def _layers(subject, key=None) -> list[str]:
    return [path for path, _ in lrp.overridable_layers(subject, key)]


def register(app, catalog) -> None:
    register_seen(app, TAB)

    @app.callback(
        Output(OBJECTIVE, "options"), Output(OBJECTIVE, "value"), Output(LAYER, "options"), Output(LAYER, "value"),
        Output(SALIENCY, "options"), Output(SALIENCY, "value"), Output(COMPOSITE, "options"),
        Output(COMPOSITE, "value"), Input(MODEL, "value"), Input(WANTED, "data"), State(APPLIED, "data"),
    )
    def choices(name, wanted, applied):
        subject = catalog.get(name)
        linked = asked(wanted, applied, name, "composite")  # a link's composite (on load, back, forward)
        fitting = lrp.fitting_composites(subject)
        if linked and linked not in fitting and linked in lrp.composites():
            fitting = fitting + [linked]  # a link may name one that does not fit: shown, not dropped
        described = lrp.composites()
        composite_choices = composite_options({c: described[c] for c in fitting})
        if by_link_only(wanted):
            return (no_update,) * 6 + (composite_choices, linked or no_update)
        objectives = [{"label": o.label, "value": o.key} for o in lrp.objectives(subject)]
        layers = [{"label": f"{path} ({kind})", "value": path} for path, kind in lrp.overridable_layers(subject)]
        described = method_descriptions()
        usable = sal.available_methods(subject)
        methods = [{"label": m, "value": m, "title": described[m]} for m in usable]
        return (objectives, objectives[0]["value"], layers, layers[0]["value"], methods,
                [m for m in lrp.DEFAULT_SALIENCY if m in usable], composite_choices,
                linked or lrp.default_composite(subject))

    @app.callback(Output(TARGET, "options"), Output(TARGET, "value"), Input(OBJECTIVE, "value"),
                  State(MODEL, "value"))
    def targets(key, name):
        subject = catalog.get(name)
        try:
            obj = lrp.objective(subject, key)
        except InterpError:
            return no_update, no_update
        return target_options(obj)

    @app.callback(Output(DESCRIPTION, "children"), Input(COMPOSITE, "value"))
    def description(composite):
        return lrp.composites().get(composite, "")

    @app.callback(
        Output(OVERRIDES, "data"), Output(RULE, "value"), Output(OVERRIDE_NOTE, "children"),
        Input(LAYER, "value"), Input(RULE, "value"), Input(RESET, "n_clicks"), Input(MODEL, "value"),
        State(OVERRIDES, "data"),
    )
    def override(layer, rule, _reset, name, overrides):
        subject = catalog.get(name)
        layers = _layers(subject)
        triggered = set(ctx.triggered_prop_ids.values())
        if not triggered or RESET in triggered or MODEL in triggered:  # a new model starts without overrides
            return ({} if overrides else no_update), COMPOSITE_RULE, overrides_text({})
        current = with_override(overrides, None, None, layers)
        if RULE in triggered:
            updated = with_override(current, layer, rule, layers)
            if updated == (overrides or {}):  # e.g. the dropdown following a layer change: nothing new
                return no_update, no_update, no_update
            return updated, no_update, overrides_text(updated)
        wanted = current.get(layer, COMPOSITE_RULE)  # another layer: show its rule
        return no_update, (no_update if wanted == rule else wanted), no_update

    @app.callback(
        Output(PLAN, "figure"), Output(GRID, "figure"), Output(FLOW, "figure"), Output(MAPS, "figure"),
        Output(MAPS_PANEL, "style"), Output(SUMMARY, "figure"), Output(CAPTION, "children"),
        Output(PLAN_DRAWN, "data"), Output(sample_poll_id(TAB), "disabled"),
        Input(seen_id(TAB), "data"), Input(COMPOSITE, "value"), Input(OBJECTIVE, "value"),
        Input(TARGET, "value"), Input(OVERRIDES, "data"), Input(SALIENCY, "value"),
        Input(sample_poll_id(TAB), "n_intervals"), State(TABS, "value"),
        State(MODEL, "value"), State(PLAN_DRAWN, "data"), State(PAGE, "data"),
    )
    def show(current, composite, key, target, overrides, methods, _ticks, tab, name, drawn, page):
        subject = catalog.get(name)
        if (current or {}).get("model") != name or tab != TAB:
            return (no_update,) * 8 + (True,)
        *shown, polling = _show(subject, current, composite, key, target, overrides, methods, name, drawn, page)
        return (*shown, not polling)

    def _show(subject, current, composite, key, target, overrides, methods, name, drawn, page):
        """The view's outputs, and whether its result is still being computed (then it polls)."""
        obj = next((o for o in lrp.objectives(subject) if o.key == key), lrp.objectives(subject)[0])
        if target not in [v for _, v in obj.targets]:  # a model switch may leave another model's target
            target = obj.targets[0][1]
        usable = sal.available_methods(subject)
        chosen = [m for m in (methods or []) if m in usable]
        overrides = with_override(overrides, None, None, _layers(subject, obj.key))
        index = int(current["index"])
        planned = {"model": name, "composite": composite, "overrides": overrides, "objective": obj.key}
        try:
            # the plan is the same for every sample: drawn again only when what decides it changes
            plan_figure = no_update if drawn == planned else VIEWS.get(
                subject, "lrp-plan", planned, lambda: {"figure": figures.lrp_plan_table(
                    lrp.plan(subject, composite, overrides, obj.key))})["figure"]
        except InterpError as exc:  # e.g. a composite name typed into the URL state
            return (no_update,) * 6 + (f"{name} · cannot explain this: {exc}", no_update, False)

        def compute():
            c = lrp.comparison(subject, index, composite, obj.key, target, overrides, chosen)
            r = c.result
            return {"grid": c.grid, "flow": c.flow, "maps": c.layer_maps, "has_maps": c.has_layer_maps,
                    "summary": c.summary, "composite": r.composite, "score": float(r.score[0]),
                    "total": float(r.total[0]), "warning": lrp.gap_note(r)}

        try:
            subject, index = sample_of(catalog, current)  # the sample, or its edit
            shown = LATER.get(page, TAB, subject, {"index": index, "composite": composite, "objective": obj.key,
                                                   "target": target, "overrides": overrides, "beside": chosen},
                              compute)
        except InterpError as exc:  # e.g. an input-layer rule given to a hidden layer
            return (plan_figure,) + (no_update,) * 5 + (
                f"{name} · cannot explain this: {exc} · the figures below are from the last settings that "
                "worked; the plan shows these", planned, False)
        if isinstance(shown, Pending):
            return (plan_figure,) + (no_update,) * 5 + (
                shown.text(f"{name} · LRP ({composite}) of the sample chosen"),
                planned, True)
        score, total = shown["score"], shown["total"]
        caption = (f"{name} · {overview.sample_caption(subject, index)} · {shown['composite']} · explaining "
                   f"{obj.label}{'' if len(obj.targets) == 1 else f', target {target}'} · Σ relevance {total:.4g} "
                   f"of score {score:.4g} (gap {total - score:+.3g}) · {overrides_text(overrides)} · each map "
                   "scaled to its own largest magnitude; hover for raw values")
        warning = shown["warning"]
        caption = [caption, html.Br(), html.Span(warning, className="warning")] if warning else caption
        return (plan_figure, shown["grid"], shown["flow"], shown["maps"], SHOWN if shown["has_maps"] else HIDDEN,
                shown["summary"], caption, planned, False)
