"""Attribution cost: each method's time / one forward+backward (zoo CNN, batch 128).

The baseline is what any gradient method needs at least: a forward pass with autograd
on and the gradient of the target scores with respect to the input. Targets from the
saliency issue: ``gradient`` <= 1.2, ``integrated_gradients`` at 32 steps <= 40; the
others are reported for comparison (their cost is set by the method: SmoothGrad's
samples, occlusion's windows). Measured with ``retain_freed_memory()`` on, as the
``interp`` command runs; without it, integrated gradients' larger batches page-fault
and cost 57x instead of 32-34x.
"""

from __future__ import annotations

import torch

import interp
import zoo
from interp.memory import retain_freed_memory

from .harness import Result, compare

BATCH = 128
TARGETS = {"gradient": 1.2, "integrated_gradients": 40.0}
OPTIONS = {"integrated_gradients": {"steps": 32}}


def run() -> list[Result]:
    retain_freed_memory()
    entry = zoo.load("cnn-digits")
    model = entry.model
    x = entry.test[0][:BATCH].contiguous()
    target = torch.arange(BATCH) % 10

    def forward_backward():
        xx = x.detach().requires_grad_(True)
        out = model(xx)
        return torch.autograd.grad(out.gather(1, target[:, None]).sum(), xx)[0]

    results = []
    for method in interp.methods():
        options = OPTIONS.get(method, {})
        heavy = method in ("smoothgrad", "integrated_gradients", "occlusion", "deeplift")
        ratio, ours, base = compare(lambda: interp.attribute(model, x, target, method, **options),  # noqa: B023
                                    forward_backward, rounds=9 if heavy else 30, repeat=1 if heavy else 10)
        shown = ", ".join(f"{k}={v}" for k, v in options.items())
        results.append(Result(
            name=f"attribute {method}{f' ({shown})' if shown else ''} / forward+backward, cnn-digits b{BATCH}",
            value=ratio, target=TARGETS.get(method), baseline="one forward+backward to the input",
            ours_ms=ours * 1e3, baseline_ms=base * 1e3,
            detail={"batch": BATCH, "options": {**options}, "threads": torch.get_num_threads()}))
    return results
