"""Dashboard view helpers that need no browser."""

from __future__ import annotations

from dashboard.views.lrp import COMPOSITE_RULE, composite_options, overrides_text, rule_options, with_override
from dashboard.views.saliency import _clamp
from interp.study import lrp


def test_numeric_options_are_clamped_on_the_server():
    assert _clamp(9999, 32, 1, 512, int) == 512
    assert _clamp(-3, 32, 1, 512, int) == 1
    assert _clamp("7", 32, 1, 512, int) == 7
    for bad in (None, "x", float("nan"), float("inf"), [1]):
        assert _clamp(bad, 32, 1, 512, int) == 32
    assert _clamp(0.35, 0.15, 0.0, 2.0, float) == 0.35


def test_lrp_overrides_follow_the_pickers():
    layers = ["features.0", "features.2", "classifier.1"]
    one = with_override({}, "features.2", "gamma", layers)
    assert one == {"features.2": "gamma"}
    two = with_override(one, "classifier.1", "zplus", layers)
    assert two == {"features.2": "gamma", "classifier.1": "zplus"} and one == {"features.2": "gamma"}
    assert with_override(two, "features.2", COMPOSITE_RULE, layers) == {"classifier.1": "zplus"}
    # another model's layers (left in the store by a model switch) are dropped; unknown layers ignored
    assert with_override({"lstm.input_l0": "flat", "features.0": "flat"}, None, None, layers) == {"features.0": "flat"}
    assert with_override({}, "features.1", "gamma", layers) == {}
    assert with_override(one, "features.0", None, layers) == one
    assert overrides_text({}) == "no overrides"
    assert overrides_text(two) == "overrides: features.2 → gamma, classifier.1 → zplus"


def test_lrp_picker_options():
    options = composite_options(lrp.composites())
    assert options[0]["value"] == lrp.DEFAULT_COMPOSITE
    assert all(o["title"] for o in options)  # every composite is described
    rules = rule_options(lrp.rules())
    assert rules[0]["value"] == COMPOSITE_RULE
    assert {o["value"] for o in rules[1:]} == set(lrp.rules())


def test_background_jobs_run_once_report_progress_and_failures():
    import threading

    from dashboard.jobs import Jobs
    from interp.errors import InputError

    jobs = Jobs()
    release, calls = threading.Event(), []

    def slow(progress):
        calls.append(1)
        progress(1, 4)
        release.wait(10)
        progress(4, 4)
        return "result"

    job = jobs.submit("k", "a job", slow)
    assert jobs.submit("k", "a job", slow) is job  # asked again while running: the same job
    for _ in range(200):
        if job.done == 1:
            break
        threading.Event().wait(0.01)
    assert job.state == "running" and job.fraction == 0.25
    release.set()
    for _ in range(500):
        if job.state != "running":
            break
        threading.Event().wait(0.01)
    assert job.state == "done" and job.result == "result" and job.fraction == 1.0
    assert jobs.submit("k", "a job", slow) is job and len(calls) == 1  # finished: not run again

    def failing(progress):
        raise InputError("no such thing")

    bad = jobs.submit("bad", "a failing job", failing)
    for _ in range(500):
        if bad.state != "running":
            break
        threading.Event().wait(0.01)
    assert bad.state == "failed" and bad.error == "no such thing"
    assert jobs.submit("bad", "a failing job", lambda progress: 1) is not bad  # failed: tried again


def test_sensitivity_settings_from_pickers_fall_back_to_the_models_own():
    import zoo
    from dashboard.views.sensitivity import DEFAULT_WINDOW, settings_of

    digits = zoo.subject("cnn-digits")
    s = settings_of(digits, "occlusion", "class", 3, "blur", 2, None, 0.2, 0.5)
    assert (s.kind, s.target, s.baseline, s.window, s.noise, s.ablate) == ("occlusion", 3, "blur", 2, 0.2, 0.5)
    default = settings_of(digits, "occlusion", "class", "predicted", "zero", DEFAULT_WINDOW, None, 0.1, "mean")
    assert default.window is None
    # values another model left behind: this model's defaults
    tokens = zoo.subject("lstm-sentiment")
    s = settings_of(tokens, "gradient", "latent", 7, "blur", 6, 12, 0.3, "median")
    assert (s.kind, s.objective, s.target, s.baseline, s.window, s.feature, s.noise, s.ablate) == (
        "noise", "class", "predicted", "zero", None, 0, 0.1, "mean")


def test_a_poll_does_not_start_a_failed_job_again():
    import threading

    from dashboard.jobs import Jobs
    from interp.errors import InputError

    jobs, calls = Jobs(), []

    def failing(progress):
        calls.append(1)
        raise InputError("broken")

    job = jobs.for_view("k", "a job", failing, polled=False)
    for _ in range(500):
        if job.state != "running":
            break
        threading.Event().wait(0.01)
    for _ in range(5):  # the interval keeps ticking: the failure stays, nothing runs again
        assert jobs.for_view("k", "a job", failing, polled=True) is job and job.state == "failed"
    assert len(calls) == 1
    again = jobs.for_view("k", "a job", failing, polled=False)  # asked again: retried
    assert again is not job


def test_what_a_view_shows_of_its_job():
    import threading

    from dashboard.jobs import Jobs
    from interp.errors import InputError

    jobs, release = Jobs(), threading.Event()

    def slow(progress):
        progress(1, 4)
        release.wait(10)
        return "result"

    def settled(key):
        for _ in range(500):
            job = jobs.get(key)
            if job is not None and (job.state != "running" or job.done == 1):
                return
            threading.Event().wait(0.01)

    assert jobs.shown("k", "scores", slow, polled=False, cached="kept") == jobs.shown("x", "scores", None, True, "kept")
    kept = jobs.shown("k", "scores", slow, polled=False, cached="kept")  # on disk: no job at all
    assert (kept.result, kept.bar, kept.stop, jobs.get("k")) == ("kept", {"width": "100%"}, True, None)
    jobs.shown("k", "scores", slow, polled=False)
    settled("k")
    running = jobs.shown("k", "scores", slow, polled=True)
    assert (running.result, running.bar, running.text, running.stop) == (None, {"width": "25%"},
                                                                         "scores: 1 of 4 steps", False)
    release.set()
    for _ in range(500):
        if jobs.get("k").state == "done":
            break
        threading.Event().wait(0.01)
    done = jobs.shown("k", "scores", slow, polled=True)
    assert (done.result, done.text, done.stop) == ("result", "scores: done, kept on disk for next time", True)

    def failing(progress):
        raise InputError("broken")

    jobs.shown("bad", "scores", failing, polled=False)
    for _ in range(500):
        if jobs.get("bad").state == "failed":
            break
        threading.Event().wait(0.01)
    failed = jobs.shown("bad", "scores", failing, polled=True)
    assert (failed.result, failed.failed, failed.stop, failed.text) == (None, True, True, "scores: failed: broken")


def test_served_by_waitress_unless_debugging_and_warned_off_the_loopback(monkeypatch, capsys):
    import waitress
    from dash import Dash

    import dashboard.app as app_module
    import zoo

    calls = []
    monkeypatch.setattr(waitress, "serve", lambda app, **kw: calls.append(("waitress", app, kw)))
    monkeypatch.setattr(Dash, "run", lambda self, **kw: calls.append(("dash", self, kw)))
    subject = zoo.subject("mlp-cancer")
    app_module.serve([subject], port=8765)
    kind, wsgi_app, kw = calls[-1]
    assert kind == "waitress" and kw["host"] == "127.0.0.1" and kw["port"] == 8765 and kw["threads"] > 1
    assert kw["max_request_body_size"] == app_module.MAX_REQUEST_BYTES  # not waitress's 1 GiB
    assert callable(wsgi_app) and "warning" not in capsys.readouterr().err
    client = app_module.create_app([subject]).server.test_client()  # a body over the bound is refused unread
    huge = b"{" + b" " * app_module.MAX_REQUEST_BYTES + b"}"
    answer = client.post("/_dash-update-component", data=huge, content_type="application/json")
    assert answer.status_code == 413
    app_module.serve([subject], debug=True)
    assert calls[-1][0] == "dash" and calls[-1][2]["debug"] is True  # the development server only when asked
    app_module.serve([subject], host="0.0.0.0")
    assert "warning: serving on 0.0.0.0" in capsys.readouterr().err


def test_the_activations_caption_says_what_a_click_does():
    """The figures are the reports' too and say nothing of clicking; the caption does."""
    import zoo
    from dashboard.views.activations import unit_caption
    from interp.study import activations

    stats = activations.stats(zoo.subject("cnn-digits"), "classifier.2")
    caption = unit_caption(stats, 5)
    assert caption.startswith("classifier.2: 64 units · unit 5: mean ")
    assert "click a unit to pick it" in caption and "click one of the top samples" in caption
