"""A sample's explanations in the background, the newest request first.

An explanation of one sample (a saliency grid, LRP's figures) takes from a few
milliseconds (a cached result, the digit CNN) to seconds (a transformer, a user's
ResNet). :class:`Later` runs each on a small pool of worker threads and waits
``inline_s`` (0.2 s) for it: what finishes by then is answered in the same request, as
before. What takes longer is answered at once with :class:`Pending` (how long it has
run, whether it still waits for the model): the view says so under its last figures and
polls with a ``dcc.Interval`` until the result is there.

Stepping through samples faster than they are explained no longer queues every sample
the user passed: each page's view remembers the last request it made, and a queued
computation that no page's view still wants is dropped when a worker reaches it (one
already running finishes and is kept: asked again, it is instant). Two pages asking for
the same result share one computation.

The results go to :data:`dashboard.views_cache.VIEWS` (memory and disk) as before; a
finished computation is also held here (the last :data:`MAX_KEPT`), so a result too large
for the cache, or an edit's (kept in memory only), still reaches the poll that waits for it.
A failure is raised to the request that reads it, once; asked again, it is computed again.

Written here rather than taken from Dash's background callbacks, for the reasons in
:mod:`dashboard.jobs` (a forked process per job, pickled results); unlike those jobs, these
are per sample, short, and superseded by the next sample.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .views_cache import VIEWS, ViewCache

# a result ready within this is answered in the same request (INTERP_INLINE_S=0: every result polled for)
INLINE_S = float(os.environ.get("INTERP_INLINE_S", "0.2"))
POLL_MS = 300    # how often a view waiting for one asks again
WORKERS = 2      # explanations at once (of different models: one model's take turns, see interp.space)
MAX_KEPT = 64    # finished computations held for their polls (failures too, for the request that reads them)
MAX_PAGES = 4096  # (page, view) pairs whose last request is remembered: a page not heard from is forgotten


@dataclass(frozen=True)
class Pending:
    """A computation not finished within ``inline_s``: ``seconds`` since it was asked for,
    ``waiting`` while it has not started (a worker or the model is busy)."""

    seconds: float
    waiting: bool

    def text(self, what: str) -> str:
        state = "waiting for the model's other work" if self.waiting else "computing"
        return f"{what}: {state}, {self.seconds:.1f} s … the figures below are the last ones until it is done"


@dataclass
class _Task:
    key: str
    asked: float = field(default_factory=time.monotonic)
    state: str = "queued"  # "queued", "running", "done", "failed", "superseded"
    result: dict | None = None
    error: BaseException | None = None
    wanted_by: set = field(default_factory=set)  # the (page, view) pairs that asked for it
    done: threading.Event = field(default_factory=threading.Event)


class Later:
    """Explanations run on worker threads, answered within ``inline_s`` or polled for."""

    def __init__(self, views: ViewCache = VIEWS, workers: int = WORKERS, inline_s: float = INLINE_S):
        self.views = views
        self.inline_s = float(inline_s)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="interp-sample")
        self._tasks: OrderedDict[str, _Task] = OrderedDict()
        self._latest: OrderedDict[tuple[str, str], str] = OrderedDict()  # (page, view) -> its last key
        self._lock = threading.Lock()
        self.superseded = 0  # computations dropped because no page wanted them any more

    def get(self, page: str | None, view: str, subject, request: dict, compute: Callable[[], dict]) -> dict | Pending:
        """The outputs of ``view`` for ``request`` (as :meth:`ViewCache.get` returns them),
        or :class:`Pending` if they take longer than ``inline_s``. ``page`` names the
        browser page asking (its requests supersede its own earlier ones, not others')."""
        asker = (page or "?", view)
        key = self.views.key(subject, view, request)
        with self._lock:
            self._latest[asker] = key
            self._latest.move_to_end(asker)
            while len(self._latest) > MAX_PAGES:
                self._latest.popitem(last=False)
            task = self._tasks.get(key)
            if task is not None and task.state in ("superseded",):
                task = None
            if task is not None and task.state == "failed":
                del self._tasks[key]  # read once, then asked again: computed again
                raise task.error
            if task is not None and task.state == "done":
                self._tasks.move_to_end(key)
                return task.result
        kept = self.views.find(subject, view, request)
        if kept is not None:
            return kept
        with self._lock:
            task = self._tasks.get(key)
            if task is None or task.state == "superseded":
                task = _Task(key)
                self._tasks[key] = task
                self._pool.submit(self._run, task, subject, view, request, compute)
            task.wanted_by.add(asker)
        if task.done.wait(self.inline_s):
            return self._read(task)
        return Pending(time.monotonic() - task.asked, task.state == "queued")

    def _read(self, task: _Task) -> dict | Pending:
        with self._lock:
            if task.state == "failed":
                self._tasks.pop(task.key, None)
                raise task.error
            if task.state == "superseded":  # this page asked for something else meanwhile: that answer counts
                return Pending(time.monotonic() - task.asked, True)
            return task.result

    def _run(self, task: _Task, subject, view: str, request: dict, compute) -> None:
        with self._lock:
            if not any(self._latest.get(asker) == task.key for asker in task.wanted_by):
                task.state = "superseded"  # every page that asked has asked for something else since
                self.superseded += 1
                if self._tasks.get(task.key) is task:
                    del self._tasks[task.key]
                task.done.set()
                return
            task.state = "running"
        try:
            result, state, error = self.views.get(subject, view, request, compute), "done", None
        except BaseException as exc:  # noqa: BLE001  (raised again to the request that reads it)
            result, state, error = None, "failed", exc.with_traceback(None)  # not the frames' tensors
        with self._lock:
            task.result, task.state, task.error = result, state, error
            self._forget_old()
        task.done.set()

    def _forget_old(self) -> None:
        finished = [k for k, t in self._tasks.items() if t.state in ("done", "failed")]
        for key in finished[:max(0, len(finished) - MAX_KEPT)]:
            del self._tasks[key]

    def wants(self, page: str | None, view: str) -> str | None:
        """The key ``page``'s ``view`` asked for last (for tests)."""
        with self._lock:
            return self._latest.get((page or "?", view))


LATER = Later()

__all__ = ["Later", "LATER", "Pending", "INLINE_S", "POLL_MS"]
