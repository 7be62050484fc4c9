"""Evaluation view: how far to trust each explanation of the current model.

Pick the removal baseline and the curve (deletion or insertion). Nothing is computed until
the tab is opened. The first panel shows the current sample's curves for every method
(seconds: computed in the background, :mod:`dashboard.later`, and kept in the view cache,
both curves at once); the others the test set,
computed in the background (:mod:`dashboard.jobs`) with a progress bar and kept on disk
(:mod:`interp.study.cache`): its mean curves, the leaderboard (sortable by any metric),
the randomisation check (curves and example maps) and the agreement between methods.
Everything is composed in :mod:`interp.study.evaluation`, the same as in the reports.
"""

from __future__ import annotations

from dash import Input, Output, State, ctx, dcc, html, no_update

from interp.errors import InterpError
from interp.study import cache, overview
from interp.study import evaluation as ev

from ..edits import sample_of
from ..jobs import JOBS
from ..later import LATER, Pending
from .shell import (
    GRAPH_CONFIG,
    MODEL,
    PAGE,
    TABS,
    loading,
    message_figure,
    register_seen,
    sample_poll,
    sample_poll_id,
    seen_id,
    seen_store,
)

TAB = "evaluation"  # this view's tab (dashboard.app)
BASELINE = "eval-baseline"
MODE = "eval-mode"
CAPTION = "eval-caption"
SAMPLE = "eval-sample"
LEADERBOARD = "eval-leaderboard"
CURVES = "eval-curves"
RANDOMISATION = "eval-randomisation"
MAPS = "eval-randomisation-maps"
AGREEMENT = "eval-agreement"
PROGRESS = "eval-progress"
PROGRESS_TEXT = "eval-progress-text"
POLL = "eval-poll"
DATASET_GRAPHS = (LEADERBOARD, CURVES, RANDOMISATION, MAPS, AGREEMENT)
KEYS = ("leaderboard", "curves", "randomisation", "randomisation-maps", "agreement")  # dataset_figures' names
POLL_MS = 400
MODES = (("deletion", "deletion"), ("insertion", "insertion"))


def layout() -> html.Div:
    return html.Div(className="evaluation", children=[
        seen_store(TAB), sample_poll(TAB),
        html.Div(className="controls panel", children=[
            html.Label("removal baseline", htmlFor=BASELINE),
            html.Div(dcc.Dropdown(id=BASELINE, clearable=False), className="layer-picker"),
            html.Label("curve", htmlFor=MODE),
            dcc.RadioItems(id=MODE, options=[{"label": label, "value": v} for v, label in MODES], value="deletion",
                           inline=True, className="method-list"),
        ]),
        html.Div(id=CAPTION, className="caption panel"),
        html.Div(className="grid", children=[
            html.Div(loading(dcc.Graph(id=SAMPLE, config=GRAPH_CONFIG)), className="panel"),
            html.Div(dcc.Graph(id=CURVES, config=GRAPH_CONFIG), className="panel"),
            html.Div(className="panel wide", children=[
                html.Div(className="progress", children=[html.Div(id=PROGRESS, className="progress-bar",
                                                                  style={"width": "0%"})]),
                html.Div(id=PROGRESS_TEXT, className="caption progress-text"),
                dcc.Graph(id=LEADERBOARD, config=GRAPH_CONFIG),
                dcc.Interval(id=POLL, interval=POLL_MS, disabled=True),
            ]),
            html.Div(dcc.Graph(id=RANDOMISATION, config=GRAPH_CONFIG), className="panel"),
            html.Div(dcc.Graph(id=AGREEMENT, config=GRAPH_CONFIG), className="panel"),
            html.Div(dcc.Graph(id=MAPS, config=GRAPH_CONFIG), className="panel wide"),
        ]),
    ])


def register(app, catalog) -> None:
    register_seen(app, TAB)

    @app.callback(Output(BASELINE, "options"), Output(BASELINE, "value"), Input(MODEL, "value"),
                  State(BASELINE, "value"))
    def choices(name, baseline):
        options = ev.baselines(catalog.get(name))
        values = [v for v, _ in options]
        return [{"label": label, "value": v} for v, label in options], baseline if baseline in values else values[0]

    def checked(subject, baseline, mode):
        """Values another model left behind (during a model switch) fall back to the defaults."""
        baseline = baseline if baseline in dict(ev.baselines(subject)) else None
        return ev.check_baseline(subject, baseline), mode if mode in dict(MODES) else "deletion"

    @app.callback(Output(SAMPLE, "figure"), Output(CAPTION, "children"), Output(sample_poll_id(TAB), "disabled"),
                  Input(BASELINE, "value"), Input(MODE, "value"), Input(seen_id(TAB), "data"),
                  Input(sample_poll_id(TAB), "n_intervals"), State(TABS, "value"), State(MODEL, "value"),
                  State(PAGE, "data"))
    def sample(baseline, mode, current, _ticks, tab, name, page):
        subject = catalog.get(name)
        if (current or {}).get("model") != name or tab != TAB:  # every method on the sample: when looked at
            return no_update, no_update, True
        n = len(subject.inputs)  # the test set's size (the panels beside are the test set's)
        try:
            subject, index = sample_of(catalog, current)  # the sample, or its edit
        except InterpError as exc:
            return no_update, str(exc), True
        baseline, mode = checked(subject, baseline, mode)
        try:  # seconds (every method, then a forward per step): in the background, both curves at once
            shown = LATER.get(page, TAB, subject, {"index": index, "baseline": baseline},
                              lambda: ev.sample_figures(subject, index, baseline))
        except InterpError as exc:
            return message_figure(str(exc)), f"{name} · cannot evaluate this: {exc}", True
        if isinstance(shown, Pending):
            return no_update, shown.text(f"{name} · every method's curves of the sample chosen"), False
        figure = shown[mode]
        explained = ev.objective(subject).label
        caption = (f"{name} · {overview.sample_caption(subject, index)} · explaining {explained} · removal "
                   f"baseline: {dict(ev.baselines(subject))[baseline]} · first panel: this sample; the others: "
                   f"the first {min(ev.SAMPLES, n)} test samples (randomisation: the first "
                   f"{min(ev.RANDOMISED_SAMPLES, n)}); sort the table with the menu above it")
        return figure, caption, True

    @app.callback(*(Output(g, "figure") for g in DATASET_GRAPHS), Output(PROGRESS, "style"),
                  Output(PROGRESS_TEXT, "children"), Output(POLL, "disabled"),
                  Input(BASELINE, "value"), Input(MODE, "value"), Input(POLL, "n_intervals"), Input(TABS, "value"),
                  State(MODEL, "value"))
    def dataset(baseline, mode, _ticks, tab, name):
        blank = (no_update,) * (len(DATASET_GRAPHS) - 1)
        if tab != TAB:  # scored when looked at: seconds of every core, not for each model picked elsewhere
            return (no_update, *blank, no_update, no_update, True)
        subject = catalog.get(name)
        try:
            baseline, mode = checked(subject, baseline, mode)
            request = ev.request(subject, baseline)
        except InterpError as exc:
            return (message_figure(str(exc)), *blank, {"width": "0%"}, "", True)
        label = ev.label(subject, baseline)
        polled = ctx.triggered_id == POLL
        shown = JOBS.shown(cache.key_of(subject, request), label,
                           lambda progress: ev.result(subject, baseline, progress), polled,
                           ev.cached(subject, baseline))
        if shown.result is None:
            first = (message_figure("could not evaluate the test set: see above") if shown.failed
                     else no_update if polled else message_figure(f"scoring {label} …"))
            return (first, *blank, shown.bar, shown.text, shown.stop)
        figures = ev.dataset_figures(subject, shown.result, mode)
        return (*(figures.get(k, message_figure("")) for k in KEYS), shown.bar, shown.text, shown.stop)
