"""Timing helpers shared by the benchmarks: interleaved rounds, medians, results."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class Result:
    name: str
    value: float                  # a ratio measured in this run (or a size, see unit)
    target: float | None          # the target for it
    baseline: str                 # what the value is relative to
    better: str = "lower"         # "lower" or "higher" meets the target
    unit: str = "x"
    ours_ms: float | None = None  # median time of our side (context for ratios)
    baseline_ms: float | None = None
    detail: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool | None:
        if self.target is None:
            return None
        return self.value <= self.target if self.better == "lower" else self.value >= self.target

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def _per_call(fn: Callable[[], object], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def compare(ours: Callable[[], object], baseline: Callable[[], object], *, rounds: int = 30,
            repeat: int = 10, warmup: int = 3) -> tuple[float, float, float]:
    """(median ratio ours/baseline, median ours seconds, median baseline seconds),
    interleaving the two in each round (order alternating) so that drift and noise
    hit both alike."""
    for _ in range(warmup):
        ours(), baseline()
    ratios, t_ours, t_base = [], [], []
    for r in range(rounds):
        if r % 2:
            b = _per_call(baseline, repeat)
            o = _per_call(ours, repeat)
        else:
            o = _per_call(ours, repeat)
            b = _per_call(baseline, repeat)
        ratios.append(o / b)
        t_ours.append(o)
        t_base.append(b)
    return statistics.median(ratios), statistics.median(t_ours), statistics.median(t_base)
