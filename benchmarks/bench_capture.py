"""Capture overhead: recording every leaf module vs a plain forward (zoo CNN, batch 256).

Both sides run under ``torch.no_grad()`` (capture's default); the capture side
enters and leaves a fresh ``interp.capture`` block on every call, as a user would,
and drops the recording afterwards. Each figure comes from a fresh process, as a
library user gets it: ``import interp`` and capture, no other call. The library
retains freed memory by itself on its first capture (``interp.memory``); the
process with ``INTERP_MALLOC_DEFAULTS=1`` keeps glibc's defaults, for comparison
(see that module for why the difference is page faults, not hooks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from .harness import Result

TARGET = 1.15
BATCH = 256
ROUNDS = 40

SCRIPT = textwrap.dedent(f"""
    import json, torch, interp, zoo
    from benchmarks.harness import compare
    from interp.capture import leaf_names
    entry = zoo.load("cnn-digits")
    model = entry.model
    x = entry.test[0][:{BATCH}].contiguous()

    def plain():
        with torch.no_grad():
            model(x)

    def captured():
        with interp.capture(model) as rec:
            model(x)
        return rec

    ratio, ours, base = compare(captured, plain, rounds={ROUNDS}, repeat=10)
    print(json.dumps({{"ratio": ratio, "ours": ours, "base": base, "layers": len(leaf_names(model)),
                      "threads": torch.get_num_threads(), "retained": interp.memory.retaining()}}))
""")


def _measure(opt_out: bool) -> dict:
    env = {**os.environ}
    env.pop("INTERP_MALLOC_DEFAULTS", None)
    if opt_out:
        env["INTERP_MALLOC_DEFAULTS"] = "1"
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, env=env,
                       cwd=Path(__file__).resolve().parent.parent)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def run() -> list[Result]:
    results = []
    for label, opt_out, target in (("glibc's default malloc (INTERP_MALLOC_DEFAULTS=1)", True, None),
                                   ("the library as it comes (no call)", False, TARGET)):
        m = _measure(opt_out)
        results.append(Result(
            name=f"capture all leaves / plain forward, cnn-digits b{BATCH}, {label}",
            value=m["ratio"], target=target, baseline="plain forward under no_grad, same process",
            ours_ms=m["ours"] * 1e3, baseline_ms=m["base"] * 1e3,
            detail={"layers": m["layers"], "batch": BATCH, "threads": m["threads"], "rounds": ROUNDS,
                    "retained_freed_memory": m["retained"]}))
    return results
