"""Capture overhead: recording every leaf module vs a plain forward (zoo CNN, batch 256).

Both sides run under ``torch.no_grad()`` (capture's default); the capture side
enters and leaves a fresh ``interp.capture`` block on every call, as a user would,
and drops the recording afterwards. Measured twice in the same process: first
with glibc's default malloc settings, then after
``interp.memory.retain_freed_memory()`` (what the ``interp`` command runs with);
see that module for why the difference is page faults, not hooks.
"""

from __future__ import annotations

import torch

import interp
import zoo
from interp.capture import leaf_names
from interp.memory import retain_freed_memory

from .harness import Result, compare

TARGET = 1.15
BATCH = 256
ROUNDS = 40


def run() -> list[Result]:
    entry = zoo.load("cnn-digits")
    model = entry.model
    x = entry.test[0][:BATCH].contiguous()
    detail = {"layers": len(leaf_names(model)), "batch": BATCH, "threads": torch.get_num_threads()}

    def plain():
        with torch.no_grad():
            model(x)

    def captured():
        with interp.capture(model) as rec:
            model(x)
        return rec

    results = []
    ratio, ours, base = compare(captured, plain, rounds=ROUNDS, repeat=10)
    results.append(Result(
        name="capture all leaves / plain forward, cnn-digits b256, default malloc",
        value=ratio, target=None, baseline="plain forward under no_grad",
        ours_ms=ours * 1e3, baseline_ms=base * 1e3, detail={**detail, "rounds": ROUNDS}))
    applied = retain_freed_memory()
    ratio, ours, base = compare(captured, plain, rounds=ROUNDS, repeat=10)
    results.append(Result(
        name="capture all leaves / plain forward, cnn-digits b256, retained memory",
        value=ratio, target=TARGET, baseline="plain forward under no_grad",
        ours_ms=ours * 1e3, baseline_ms=base * 1e3,
        detail={**detail, "rounds": ROUNDS, "retain_freed_memory": applied}))
    return results
