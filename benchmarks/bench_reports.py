"""``interp report --all`` on the zoo, as a user runs it: a fresh process each time.

- **cold**: an empty store (every section computed: collections, saliency, LRP,
  sensitivity's and the evaluation's test-set runs, UMAP with numba compiling); target
  ≤ 120 s on this project's 2-core machine.
- **warm**: the same command again on the store the cold run filled.
- **page sizes**: the largest model page with plotly.js inline (each page opens alone),
  and with ``--plotly shared`` (plotly.js written once beside the pages); target ≤ 1.5 MB.

The seconds each section took per model are in the folder's ``reports.json``; the
slowest are printed beside the results.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .harness import Result

ROOT = Path(__file__).resolve().parent.parent
COLD_TARGET_S = 120.0
PAGE_TARGET_MB = 1.5


def _report(out: Path, cache: Path, *extra: str) -> float:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "interp.cli", "report", "--all", "--out", str(out), "--cache",
                        str(cache), "--quiet", *extra], cwd=ROOT, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    if r.returncode:
        raise RuntimeError(f"interp report --all failed: {r.stderr.strip()[-400:]}")
    return time.perf_counter() - start


def _largest_page_mb(folder: Path) -> tuple[float, str]:
    pages = [p for p in folder.glob("*.html") if p.name != "index.html"]
    page = max(pages, key=lambda p: p.stat().st_size)
    return page.stat().st_size / 1e6, page.name


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="interp-bench-reports-") as tmp:
        folder = Path(tmp)
        cache = folder / "cache"
        cold = _report(folder / "inline", cache)
        warm = _report(folder / "shared", cache, "--plotly", "shared")
        inline_mb, inline_page = _largest_page_mb(folder / "inline")
        shared_mb, shared_page = _largest_page_mb(folder / "shared")
        entries = json.loads((folder / "inline" / "reports.json").read_text())["entries"].values()
        sections = sorted(((s, e["name"], k) for e in entries for k, s in e["timings"]["seconds"].items()),
                          reverse=True)[:5]
        slowest = {f"{name}: {key}": round(seconds, 1) for seconds, name, key in sections}
        per_model = {e["name"]: round(sum(e["timings"]["seconds"].values()), 1) for e in entries}
    return [
        Result("interp report --all, cold: fresh process, empty store", cold, COLD_TARGET_S,
               "absolute (wall time of the command)", unit="s", detail={"slowest sections s": slowest,
                                                                         "per model s": per_model}),
        Result("interp report --all, warm: the store filled (--plotly shared)", warm, None,
               "absolute (wall time of the command)", unit="s"),
        Result(f"largest page, plotly.js inline ({inline_page})", inline_mb, None, "size", unit="MB"),
        Result(f"largest page, --plotly shared ({shared_page})", shared_mb, PAGE_TARGET_MB, "size", unit="MB"),
    ]
