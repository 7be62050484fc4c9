"""dashboard.later: a sample's explanation answered within the inline wait, or polled for;
queued work no page wants any more dropped; failures raised once; pages share results."""

from __future__ import annotations

import threading
import time

import pytest

from dashboard.later import Later, Pending
from dashboard.views_cache import ViewCache
from interp.errors import InputError
from tests.dashboard.test_views_cache import _figure, _subject


@pytest.fixture
def views(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    return ViewCache()


def _until(later, page, view, subject, request, compute, timeout=10.0):
    """Ask as a view's poll does until the result is there."""
    deadline = time.monotonic() + timeout
    while True:
        out = later.get(page, view, subject, request, compute)
        if not isinstance(out, Pending):
            return out
        assert time.monotonic() < deadline, "never finished"
        time.sleep(0.02)


def _counted(gate: threading.Event, computed: list, plus: int = 0):
    """compute(i): sample i's work, noted in ``computed``; sample 1's waits for ``gate`` (the worker busy)."""
    def compute(i):
        def run():
            if i == 1:
                gate.wait(5)
            computed.append(i)
            return _figure(i + plus)
        return run
    return compute


def test_quick_work_is_answered_inline_and_kept(views):
    later, subject, calls = Later(views, workers=1, inline_s=2.0), _subject(), []

    def compute():
        calls.append(1)
        return _figure(4)

    out = later.get("p", "v", subject, {"index": 1}, compute)
    assert not isinstance(out, Pending) and out["text"] == "n=4"
    assert later.get("p", "v", subject, {"index": 1}, compute) == out and len(calls) == 1
    assert views.find(subject, "v", {"index": 1}) == out  # in the views' cache (memory and disk)


def test_slow_work_is_pending_then_polled(views):
    later, subject, gate = Later(views, workers=1, inline_s=0.05), _subject(), threading.Event()

    def compute():
        gate.wait(5)
        return _figure(3)

    first = later.get("p", "v", subject, {"index": 2}, compute)
    assert isinstance(first, Pending) and first.text("LRP").startswith(("LRP: computing", "LRP: waiting"))
    again = later.get("p", "v", subject, {"index": 2}, compute)
    assert isinstance(again, Pending) and again.seconds >= first.seconds
    gate.set()
    assert _until(later, "p", "v", subject, {"index": 2}, compute)["text"] == "n=3"


def test_queued_work_no_page_wants_is_dropped(views):
    """A page stepping through samples 1, 2, 3 while 1 is computed: 2 is never computed."""
    later, subject, gate, computed = Later(views, workers=1, inline_s=0.01), _subject(), threading.Event(), []
    compute = _counted(gate, computed, plus=1)

    for i in (1, 2, 3):
        assert isinstance(later.get("p", "v", subject, {"index": i}, compute(i)), Pending)
    # another page wants sample 5, and moves on to 6: 5 is dropped too; its view of 6 is not the first page's
    later.get("q", "v", subject, {"index": 5}, compute(5))
    later.get("q", "v", subject, {"index": 6}, compute(6))
    gate.set()
    assert _until(later, "p", "v", subject, {"index": 3}, compute(3))["text"] == "n=4"
    assert _until(later, "q", "v", subject, {"index": 6}, compute(6))["text"] == "n=7"
    assert computed == [1, 3, 6] and later.superseded == 2
    # the one that ran is kept: asked again, it is there at once
    assert later.get("p", "v", subject, {"index": 1}, compute(1))["text"] == "n=2" and computed == [1, 3, 6]
    # dropped work asked for again is computed
    assert _until(later, "p", "v", subject, {"index": 2}, compute(2))["text"] == "n=3" and computed[-1] == 2


def test_work_another_page_still_wants_is_not_dropped(views):
    later, subject, gate, computed = Later(views, workers=1, inline_s=0.01), _subject(), threading.Event(), []
    compute = _counted(gate, computed)

    later.get("p", "v", subject, {"index": 1}, compute(1))
    later.get("p", "v", subject, {"index": 2}, compute(2))
    later.get("q", "v", subject, {"index": 2}, compute(2))  # the same result: one computation for both
    later.get("p", "v", subject, {"index": 3}, compute(3))  # p moves on; q still waits for 2
    later.get("p", "other-view", subject, {"index": 9}, compute(9))  # another view of p: not the same request
    gate.set()
    assert _until(later, "q", "v", subject, {"index": 2}, compute(2))["text"] == "n=2"
    _until(later, "p", "v", subject, {"index": 3}, compute(3))
    _until(later, "p", "other-view", subject, {"index": 9}, compute(9))
    assert sorted(computed) == [1, 2, 3, 9] and computed.count(2) == 1 and later.superseded == 0


def test_a_failure_is_raised_once_then_computed_again(views):
    later, subject, attempts = Later(views, workers=1, inline_s=0.01), _subject(), []
    gate = threading.Event()

    def compute():
        attempts.append(1)
        gate.wait(5)
        if len(attempts) == 1:
            raise InputError("an occlusion window larger than the input")
        return _figure(2)

    assert isinstance(later.get("p", "v", subject, {"index": 0}, compute), Pending)
    gate.set()
    with pytest.raises(InputError, match="occlusion window"):
        _until(later, "p", "v", subject, {"index": 0}, compute)
    # asked again (the user tries again): computed again, and this time it works
    assert _until(later, "p", "v", subject, {"index": 0}, compute)["text"] == "n=2" and len(attempts) == 2
    # a failure within the inline wait is raised to that very request
    inline = Later(views, workers=1, inline_s=5.0)
    with pytest.raises(InputError, match="bad"):
        inline.get("p", "v", subject, {"index": 7}, lambda: (_ for _ in ()).throw(InputError("bad")))


def test_a_request_waiting_inline_for_work_dropped_meanwhile_gets_pending(views):
    """A page's first request still waits (inline) when its second arrives; the first's
    work is dropped, and the first is answered "pending", never with nothing."""
    later, subject, gate = Later(views, workers=1, inline_s=3.0), _subject(), threading.Event()
    answers = {}

    def blocker():
        gate.wait(5)
        return _figure(1)

    threading.Thread(target=lambda: later.get("other", "v", subject, {"index": 0}, blocker), daemon=True).start()
    time.sleep(0.1)  # the worker is busy with the other page's work
    first = threading.Thread(target=lambda: answers.setdefault(
        1, later.get("p", "v", subject, {"index": 1}, lambda: _figure(2))))
    first.start()
    time.sleep(0.1)
    threading.Thread(target=lambda: answers.setdefault(
        2, later.get("p", "v", subject, {"index": 2}, lambda: _figure(3))), daemon=True).start()
    time.sleep(0.1)
    gate.set()
    first.join(5)
    assert isinstance(answers[1], Pending) and later.superseded == 1
    assert _until(later, "p", "v", subject, {"index": 2}, lambda: _figure(3))["text"] == "n=3"


def test_what_is_held_is_bounded(views, monkeypatch):
    """Failures nobody reads again and pages never heard from again are forgotten: only the
    last MAX_KEPT finished tasks (failed ones too) and MAX_PAGES pages are held."""
    import dashboard.later as later_module

    monkeypatch.setattr(later_module, "MAX_KEPT", 3)
    monkeypatch.setattr(later_module, "MAX_PAGES", 5)
    later, subject = Later(views, workers=1, inline_s=0.0), _subject()

    def failing():
        raise InputError("bad sample")

    for i in range(8):  # each page asks once and goes away: the failures are never read
        later.get(f"page{i}", "v", subject, {"index": i}, failing)
    deadline = time.monotonic() + 10
    while any(t.state in ("queued", "running") for t in list(later._tasks.values())):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert len(later._tasks) <= 3 and len(later._latest) == 5
    assert all(t.error.__traceback__ is None for t in later._tasks.values())
    assert later.wants("page7", "v") is not None and later.wants("page0", "v") is None
