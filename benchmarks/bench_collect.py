"""Dataset-wide collection on a 50,000-sample synthetic set through the zoo CNN (batch 256).

Throughput: samples/s of ``interp.collect`` (a fresh store each round, so every run
is a miss that computes, hashes and writes everything) over samples/s of a plain
loop of forwards over the same batches, interleaved round by round. Measured for
the penultimate layer (what projections and statistics of a representation read;
the issue's target), and reported for every leaf reduced to channel means, and for
every leaf at full resolution (1.4 GB to disk: bound by writing, not by us).
Peak RSS: a separate process collects every leaf at full resolution.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

import interp
import zoo
from interp.memory import retain_freed_memory

from .harness import Result

N = 50_000
BATCH = 256
THROUGHPUT_TARGET = 0.9
RSS_TARGET_MB = 1536


def synthetic_digits(n: int = N, seed: int = 0) -> torch.Tensor:
    """Training digits resampled with noise: a large set shaped like the zoo CNN's input."""
    x = zoo.data.digits().train[0]
    g = torch.Generator().manual_seed(seed)
    picked = x[torch.randint(0, len(x), (n,), generator=g)]
    return (picked + 0.05 * torch.randn(picked.shape, generator=g)).clamp(0, 1)


def _throughput(model, x, store: Path, rounds: int, **options) -> tuple[float, float, float]:
    def plain():
        with torch.no_grad():
            for i in range(0, len(x), BATCH):
                model(x[i:i + BATCH])

    def collect():
        shutil.rmtree(store, ignore_errors=True)
        interp.collect(model, x, store=store, batch_size=BATCH, progress=False, **options)

    ratios, t_ours, t_base = [], [], []
    collect()  # warm up both
    plain()
    for r in range(rounds):
        order = (plain, collect) if r % 2 else (collect, plain)
        times = {}
        for fn in order:
            start = time.perf_counter()
            fn()
            times[fn] = time.perf_counter() - start
        ratios.append(times[plain] / times[collect])  # throughput ours / throughput plain
        t_ours.append(times[collect])
        t_base.append(times[plain])
    return statistics.median(ratios), statistics.median(t_ours), statistics.median(t_base)


RSS_SCRIPT = textwrap.dedent("""
    import resource, sys, torch, zoo, interp
    from benchmarks.bench_collect import synthetic_digits
    from interp.memory import retain_freed_memory
    retain_freed_memory()
    x = synthetic_digits()
    model = zoo.load("cnn-digits").model
    col = interp.collect(model, x, store=sys.argv[1], progress=False)
    size = sum(f.stat().st_size for f in col.path.iterdir())
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, size / 2**20, col.n)
""")


def run() -> list[Result]:
    retain_freed_memory()
    model = zoo.load("cnn-digits").model
    x = synthetic_digits()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        for label, options, target, rounds in [
            ("penultimate layer", {"layers": ["classifier.2"]}, THROUGHPUT_TARGET, 11),
            ("every leaf, reduce=mean", {"reduce": "mean"}, None, 5),
            ("every leaf, full resolution", {}, None, 3),
        ]:
            ratio, ours, base = _throughput(model, x, store, rounds, **options)
            results.append(Result(
                name=f"collect throughput / plain forward loop, cnn-digits 50k b256, {label}",
                value=ratio, target=target, better="higher", baseline="plain loop of forwards, same batches",
                ours_ms=ours * 1e3, baseline_ms=base * 1e3,
                detail={"samples": N, "batch": BATCH, "rounds": rounds,
                        "samples_per_s": round(N / ours), "plain_samples_per_s": round(N / base), **options}))
        r = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(Path(tmp) / "rss")], capture_output=True,
                           text=True, timeout=600, cwd=Path(__file__).resolve().parent.parent)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        rss, size, n = map(float, r.stdout.split())
    results.append(Result(name="collect peak RSS, cnn-digits 50k samples, every leaf, full resolution",
                          value=rss, target=RSS_TARGET_MB, better="lower", unit="MB",
                          baseline="absolute (process peak resident set)",
                          detail={"written_MB": round(size), "samples": int(n)}))
    return results
