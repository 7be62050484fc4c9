"""Background work for the dashboard: long computations run on a worker thread and
report their progress; views poll it with a ``dcc.Interval`` and draw a progress bar.

Written here rather than taken from Dash's background callbacks: Dash's
``DiskcacheManager`` runs every job in a new forked process (through ``multiprocess``)
and passes results through ``diskcache``, which pickles them. Forking a process whose
torch has started its thread pools is unsafe (OpenMP after fork), a fresh process would
load the models again for every job, and three more dependencies would come along. A
thread in the server's process shares the loaded models, needs nothing new, and the
results it produces are kept on disk by :mod:`interp.study.cache` (safetensors, never pickle).

A job is keyed by what it computes: asking again for a running or finished job returns
it, so a page reload or a second tab attaches to the same work instead of starting it
twice. Failed jobs are kept (with their message) until asked again, then retried.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from interp.errors import InterpError

MAX_KEPT = 64  # finished jobs remembered (their results also live in interp.study.cache)


@dataclass
class Job:
    """One background computation: its progress (``done`` of ``total`` steps), then
    ``result`` or ``error`` (a message for the user)."""

    key: str
    label: str
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    total: int = 0
    state: str = "running"  # "running", "done", "failed"
    result: object = None
    error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def progress(self, done: int, total: int) -> None:
        with self._lock:
            self.done, self.total = int(done), int(total)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def fraction(self) -> float:
        if self.state == "done":
            return 1.0
        return self.done / self.total if self.total else 0.0


@dataclass(frozen=True)
class Shown:
    """What a view shows of a background job: the ``result`` once there is one (else None),
    the progress bar's style and the text under it, whether the view stops polling."""

    result: object
    bar: dict
    text: str
    stop: bool
    failed: bool = False


def _done(result, label: str) -> Shown:
    return Shown(result, {"width": "100%"}, f"{label}: done, kept on disk for next time", True)


class Jobs:
    """Jobs by key, run on one worker thread (dataset-wide work would only contend for
    the same CPU cores; each job's library call holds its model's analysis lock anyway)."""

    def __init__(self, workers: int = 1):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="interp-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def submit(self, key: str, label: str, compute: Callable[[Callable[[int, int], None]], object]) -> Job:
        """The job ``key``: the running or finished one, else ``compute(progress)`` started
        on the worker (failed jobs are started again)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.state != "failed":
                return job
            job = Job(key, label)
            self._jobs[key] = job
            self._forget_old()
        self._pool.submit(self._run, job, compute)
        return job

    def get(self, key: str) -> Job | None:
        with self._lock:
            return self._jobs.get(key)

    def for_view(self, key: str, label: str, compute, polled: bool) -> Job:
        """The job a view shows: a poll (its ``dcc.Interval`` ticking) only reads it, so a
        failed job stays failed, its message shown, until the settings are asked again;
        new settings or a reload start it, or attach to the one running."""
        job = self.get(key) if polled else None
        return job if job is not None else self.submit(key, label, compute)

    def shown(self, key: str, label: str, compute, polled: bool, cached=None) -> Shown:
        """What a view polling the job ``key`` shows: ``cached`` (a result already on disk) or
        the job's result once done, else its progress, or its failure."""
        if cached is not None:
            return _done(cached, label)
        job = self.for_view(key, label, compute, polled)
        if job.state == "failed":
            return Shown(None, {"width": "0%"}, f"{label}: failed: {job.error}", True, failed=True)
        if job.state == "running":
            done = f"{job.done} of {job.total} steps" if job.total else "waiting for the worker"
            return Shown(None, {"width": f"{100 * job.fraction:.0f}%"}, f"{label}: {done}", False)
        return _done(job.result, label)

    def _run(self, job: Job, compute) -> None:
        try:
            job.result = compute(job.progress)
            job.state = "done"
        except InterpError as exc:
            job.error, job.state = str(exc), "failed"
        except Exception as exc:  # noqa: BLE001  (shown to the user; the server keeps serving)
            job.error, job.state = f"{type(exc).__name__}: {exc}", "failed"

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.state != "running"]
        for key in finished[:max(0, len(self._jobs) - MAX_KEPT)]:
            del self._jobs[key]


JOBS = Jobs()

__all__ = ["Job", "Jobs", "JOBS", "Shown"]
