"""Run every benchmark: `python -m benchmarks [NAME ...]` (what `make bench` does)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import platform
import sys
from pathlib import Path

import torch

from interp._io import write_text

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    # the library retains freed memory by itself on its first analysis (a setting for the whole
    # process); the capture benchmark measures both settings in fresh processes of its own
    modules = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    if argv:
        unknown = [a for a in argv if f"bench_{a}" not in modules]
        if unknown:
            print(f"benchmarks: unknown {', '.join(unknown)}; valid: "
                  f"{', '.join(m[6:] for m in modules)}", file=sys.stderr)
            return 2
        modules = [m for m in modules if m[6:] in argv]
    results = []
    for name in modules:
        results += importlib.import_module(f"benchmarks.{name}").run()
    width = max(len(r.name) for r in results)
    print(f"{'benchmark':<{width}}  {'value':>9}  {'target':>9}  {'ours ms':>9}  {'base ms':>9}  ok")

    def ms(v: float | None) -> str:
        return f"{v:9.2f}" if v is not None else f"{'-':>9}"

    for r in results:
        sign = "<=" if r.better == "lower" else ">="
        target = f"{sign}{r.target:g}" if r.target is not None else "-"
        ok = {True: "yes", False: "NO", None: "-"}[r.ok]
        print(f"{r.name:<{width}}  {r.value:>8.3f}{r.unit[:1] if r.unit == 'x' else ''}"
              f"{'' if r.unit == 'x' else ' ' + r.unit}  {target:>9}  {ms(r.ours_ms)}  {ms(r.baseline_ms)}  {ok}")
    payload = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                           "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()},
               "results": [r.as_dict() for r in results]}
    text = json.dumps(payload, indent=2)
    print(text)
    write_text(HERE / "results.json", text + "\n")
    return 0 if all(r.ok is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
