"""Sensitivity view: how the output, the layers and the explanations respond when the input moves.

Pick a kind (input noise; occlusion, or for tabular models a feature sweep; layers;
explanations), what to explain and the target, and the kind's options. The left panel
shows the current sample (computed at once); the right panel the test set, computed in
the background (:mod:`dashboard.jobs`) with a progress bar that a ``dcc.Interval``
polls, and kept on disk (:mod:`interp.study.cache`) so a second look is instant. Everything is
composed in :mod:`interp.study.sensitivity`, the same as in the reports.
"""

from __future__ import annotations

import dataclasses

from dash import Input, Output, State, ctx, dcc, html, no_update

from interp.errors import InterpError
from interp.study import cache, overview
from interp.study import sensitivity as sens

from ..edits import sample_of
from ..jobs import JOBS
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
    target_options,
)

TAB = "sensitivity"  # this view's tab (dashboard.app): nothing is computed while another is shown

KIND = "sens-kind"
OBJECTIVE = "sens-objective"
TARGET = "sens-target"
BASELINE = "sens-baseline"
WINDOW = "sens-window"
FEATURE = "sens-feature"
NOISE = "sens-noise"
ABLATE = "sens-ablate"
OCCLUSION_OPTIONS = "sens-occlusion-options"
SWEEP_OPTIONS = "sens-sweep-options"
LAYER_OPTIONS = "sens-layer-options"
CAPTION = "sens-caption"
SAMPLE = "sens-sample"
DATASET = "sens-dataset"
DATASET_PANEL = "sens-dataset-panel"
PROGRESS = "sens-progress"          # the bar's filled part (its width is the share done)
PROGRESS_TEXT = "sens-progress-text"
POLL = "sens-poll"

DEFAULT_WINDOW = "default"  # the window dropdown's value for the library's default window
POLL_MS = 400
SETTINGS = [Input(KIND, "value"), Input(OBJECTIVE, "value"), Input(TARGET, "value"), Input(BASELINE, "value"),
            Input(WINDOW, "value"), Input(FEATURE, "value"), Input(NOISE, "value"), Input(ABLATE, "value")]


def window_options(subject) -> list[dict]:
    return [{"label": "default" if w is None else f"{w}", "value": DEFAULT_WINDOW if w is None else w}
            for w in sens.windows(subject)]


def ablate_label(a) -> str:
    return "batch mean" if a == "mean" else f"noise {a:g} × the output's std"


def settings_of(subject, kind, key, target, baseline, window, feature, noise, ablate) -> sens.Settings:
    """Checked settings from the pickers; values another model left behind (during a model
    switch) fall back to this model's defaults."""
    kinds = dict(sens.kinds(subject))
    objectives = {o.key: o for o in sens.objectives(subject)}
    obj = objectives.get(key) or next(iter(objectives.values()))
    return sens.settings(
        subject, kind=kind if kind in kinds else "noise", objective=obj.key,
        target=target if target in [v for _, v in obj.targets] else obj.targets[0][1],
        baseline=baseline if baseline in dict(sens.baselines(subject)) else "zero",
        window=None if window == DEFAULT_WINDOW or window not in sens.windows(subject) else window,
        feature=feature if isinstance(feature, int) and subject.modality == "tabular"
        and 0 <= feature < subject.inputs.shape[1] else 0,
        noise=noise if noise in sens.NOISE_LEVELS else 0.1, ablate=ablate if ablate in sens.ABLATIONS else "mean")


def layout() -> html.Div:
    return html.Div(className="sensitivity", children=[
        seen_store(TAB), sample_poll(TAB),
        html.Div(className="controls panel", children=[
            html.Label("kind", htmlFor=KIND),
            dcc.RadioItems(id=KIND, inline=True, className="method-list"),
            html.Label("explain", htmlFor=OBJECTIVE),
            html.Div(dcc.Dropdown(id=OBJECTIVE, clearable=False), className="objective-picker"),
            html.Label("target", htmlFor=TARGET),
            html.Div(dcc.Dropdown(id=TARGET, clearable=False), className="target-picker"),
        ]),
        html.Div(className="controls panel", id=OCCLUSION_OPTIONS, style=HIDDEN, children=[
            html.Label("baseline", htmlFor=BASELINE),
            html.Div(dcc.Dropdown(id=BASELINE, clearable=False), className="target-picker"),
            html.Label("window", htmlFor=WINDOW),
            html.Div(dcc.Dropdown(id=WINDOW, clearable=False), className="target-picker"),
        ]),
        html.Div(className="controls panel", id=SWEEP_OPTIONS, style=HIDDEN, children=[
            html.Label("feature", htmlFor=FEATURE),
            html.Div(dcc.Dropdown(id=FEATURE, clearable=False), className="layer-picker"),
        ]),
        html.Div(className="controls panel", id=LAYER_OPTIONS, style=HIDDEN, children=[
            html.Label("input noise", htmlFor=NOISE),
            html.Div(dcc.Dropdown(id=NOISE, options=[{"label": f"{v:g} × std", "value": v} for v in sens.NOISE_LEVELS],
                                  value=0.1, clearable=False), className="target-picker"),
            html.Label("ablate by", htmlFor=ABLATE),
            html.Div(dcc.Dropdown(id=ABLATE, options=[{"label": ablate_label(a), "value": a} for a in sens.ABLATIONS],
                                  value="mean", clearable=False), className="layer-picker"),
        ]),
        html.Div(id=CAPTION, className="caption panel"),
        html.Div(className="grid", children=[
            html.Div(loading(dcc.Graph(id=SAMPLE, config=GRAPH_CONFIG)), className="panel"),
            html.Div(id=DATASET_PANEL, className="panel", children=[
                html.Div(className="progress", children=[html.Div(id=PROGRESS, className="progress-bar",
                                                                  style={"width": "0%"})]),
                html.Div(id=PROGRESS_TEXT, className="caption progress-text"),
                dcc.Graph(id=DATASET, config=GRAPH_CONFIG),
                dcc.Interval(id=POLL, interval=POLL_MS, disabled=True),
            ]),
        ]),
    ])


def register(app, catalog) -> None:
    register_seen(app, TAB)

    @app.callback(
        Output(KIND, "options"), Output(KIND, "value"), Output(OBJECTIVE, "options"), Output(OBJECTIVE, "value"),
        Output(BASELINE, "options"), Output(BASELINE, "value"), Output(WINDOW, "options"), Output(WINDOW, "value"),
        Output(FEATURE, "options"), Output(FEATURE, "value"),
        Input(MODEL, "value"), State(KIND, "value"),
    )
    def choices(name, kind):
        subject = catalog.get(name)
        kinds = [{"label": label, "value": value} for value, label in sens.kinds(subject)]
        objectives = [{"label": o.label, "value": o.key} for o in sens.objectives(subject)]
        baselines = [{"label": label, "value": value} for value, label in sens.baselines(subject)]
        names = subject.features or []
        features = [{"label": f"{i}: {n}", "value": i} for i, n in enumerate(names)]
        return (kinds, kind if kind in dict(sens.kinds(subject)) else "noise", objectives, objectives[0]["value"],
                baselines, "zero", window_options(subject), DEFAULT_WINDOW, features, 0 if features else None)

    @app.callback(Output(TARGET, "options"), Output(TARGET, "value"), Input(OBJECTIVE, "value"),
                  State(MODEL, "value"))
    def targets(key, name):
        subject = catalog.get(name)
        found = {o.key: o for o in sens.objectives(subject)}
        if key not in found:
            return no_update, no_update
        return target_options(found[key])

    @app.callback(Output(OCCLUSION_OPTIONS, "style"), Output(SWEEP_OPTIONS, "style"), Output(LAYER_OPTIONS, "style"),
                  Input(KIND, "value"), Input(MODEL, "value"))
    def option_groups(kind, name):
        tabular = catalog.get(name).modality == "tabular"
        return (SHOWN if kind == "occlusion" and not tabular else HIDDEN,
                SHOWN if kind == "occlusion" and tabular else HIDDEN,
                SHOWN if kind == "layer" else HIDDEN)

    @app.callback(Output(SAMPLE, "figure"), Output(CAPTION, "children"), Output(sample_poll_id(TAB), "disabled"),
                  *SETTINGS, Input(seen_id(TAB), "data"), Input(sample_poll_id(TAB), "n_intervals"),
                  State(TABS, "value"), State(MODEL, "value"), State(PAGE, "data"))
    def sample(kind, key, target, baseline, window, feature, noise, ablate, current, _ticks, tab, name, page):
        subject = catalog.get(name)
        if (current or {}).get("model") != name or kind is None or tab != TAB:
            return no_update, no_update, True
        try:
            subject, index = sample_of(catalog, current)  # the sample, or its edit
            s = settings_of(subject, kind, key, target, baseline, window, feature, noise, ablate)
            shown = LATER.get(page, TAB, subject, {"index": index, "settings": dataclasses.asdict(s)},
                              lambda: {"figure": sens.sample_figure(subject, index, s)})
        except InterpError as exc:
            return no_update, f"{name} · cannot compute this: {exc}", True
        if isinstance(shown, Pending):
            return no_update, shown.text(f"{name} · {dict(sens.kinds(subject))[s.kind]} of the sample chosen"), False
        figure = shown["figure"]
        kinds = dict(sens.kinds(subject))
        caption = f"{name} · {overview.sample_caption(subject, index)} · {kinds[s.kind]}"
        if s.kind == "layer":
            caption += (f" · left: this sample, its layers perturbed by noise 1 × their std where the test set "
                        f"uses {ablate_label(s.ablate)}" if s.ablate == "mean" else "")
        if s.kind == "explanation":
            caption += " · Captum's sensitivity_max and infidelity, lower is better"
        return figure, caption, True

    @app.callback(Output(DATASET, "figure"), Output(DATASET_PANEL, "style"), Output(PROGRESS, "style"),
                  Output(PROGRESS_TEXT, "children"), Output(POLL, "disabled"), *SETTINGS,
                  Input(seen_id(TAB), "data"), Input(POLL, "n_intervals"), State(TABS, "value"),
                  State(MODEL, "value"))
    def dataset(kind, key, target, baseline, window, feature, noise, ablate, current, _ticks, tab, name):
        subject = catalog.get(name)
        if kind is None or tab != TAB:
            return (no_update,) * 5
        try:
            s = settings_of(subject, kind, key, target, baseline, window, feature, noise, ablate)
        except InterpError as exc:
            return message_figure(str(exc)), SHOWN, {"width": "0%"}, "", True
        request = sens.dataset_request(subject, s)
        if request is None:
            return message_figure(""), HIDDEN, {"width": "0%"}, "", True
        index = int(current["index"]) if (current or {}).get("model") == name else None
        label = sens.dataset_label(subject, s)
        polled = ctx.triggered_id == POLL
        shown = JOBS.shown(cache.key_of(subject, request), label,
                           lambda progress: sens.dataset_result(subject, s, progress), polled,
                           sens.dataset_cached(subject, s))
        if shown.failed:
            figure = message_figure("could not compute the test set: see above")
        elif shown.result is None:
            figure = no_update if polled else message_figure(f"computing the {label} …")
        else:
            figure = sens.dataset_figure(subject, s, shown.result, index)
        return figure, SHOWN, shown.bar, shown.text, shown.stop
