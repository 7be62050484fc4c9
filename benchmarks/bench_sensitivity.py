"""Sensitivity cost: the dataset-level noise curve (7 scales, 1,000 samples, one noisy
copy each) on the zoo CNN / 7,000 plain forwards of the same rows. Target from the
sensitivity issue: <= 1.3. The baseline runs the rows in the same chunks the noise
curve does, without noise, so the ratio is what drawing the noise and reading the
target scores costs."""

from __future__ import annotations

import torch

import interp
import zoo
from interp.memory import retain_freed_memory
from interp.sensitivity import DEFAULT_SCALES, ROWS_PER_EVAL

from .harness import Result, compare

SAMPLES = 1000


def run() -> list[Result]:
    retain_freed_memory()
    entry = zoo.load("cnn-digits")
    model = entry.model
    x = entry.test[0]
    x = x.repeat((SAMPLES // len(x) + 1,) + (1,) * (x.ndim - 1))[:SAMPLES].contiguous()
    labels = entry.test[1].repeat(SAMPLES // len(entry.test[1]) + 1)[:SAMPLES]
    rows = len(DEFAULT_SCALES) * len(x)

    def plain():
        with torch.no_grad():
            copies = x.repeat(len(DEFAULT_SCALES), 1, 1, 1)
            per = max(1, ROWS_PER_EVAL // len(x)) * len(x)
            return [model(copies[i:i + per]) for i in range(0, len(copies), per)]

    ratio, ours, base = compare(lambda: interp.sensitivity(model, x, "predicted", "noise", draws=1, labels=labels),
                                plain, rounds=7, repeat=1)
    return [Result(name=f"noise curve ({len(DEFAULT_SCALES)} scales, {SAMPLES} samples) / {rows} plain forwards, "
                        "cnn-digits", value=ratio, target=1.3, baseline=f"{rows} rows forward, no noise",
                   ours_ms=ours * 1e3, baseline_ms=base * 1e3,
                   detail={"samples": SAMPLES, "scales": list(DEFAULT_SCALES), "threads": torch.get_num_threads()})]
