"""Projection cost for 10,000 samples x 64 features (ten Gaussian clusters, seeded):
PCA, UMAP on its first call in a fresh process (import and numba compilation included)
and warm, t-SNE, and a second request of a layer's map that the store answers (the
projection issue's target: < 50 ms). Times are single fits (medians where repeated),
on this machine's threads."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

from interp import projection as P
from interp.layer_projection import project_layer

from .harness import Result

N, D = 10_000, 64


def _features() -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, D)) * 4
    return (centres[rng.integers(0, 10, N)] + rng.normal(size=(N, D))).astype(np.float32)


def _seconds(fn, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


FRESH = """
import time, numpy as np
start = time.perf_counter()
from interp.projection import UMAPProjection
rng = np.random.default_rng(0)
centres = rng.normal(size=(10, {d})) * 4
x = (centres[rng.integers(0, 10, {n})] + rng.normal(size=({n}, {d}))).astype(np.float32)
made = time.perf_counter()
UMAPProjection().fit(x)
print(time.perf_counter() - made)
"""


def _umap_learn_defaults(x: np.ndarray) -> None:
    """What UMAPProjection did before: umap-learn's own neighbours and epochs, on the same PCA-50 features."""
    import warnings

    import umap
    from sklearn.decomposition import PCA

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        umap.UMAP(random_state=0).fit_transform(PCA(50, random_state=0).fit_transform(x))


def run() -> list[Result]:
    x = _features()
    first = float(subprocess.run([sys.executable, "-c", FRESH.format(n=N, d=D)], capture_output=True, text=True,
                                 check=True).stdout.strip().splitlines()[-1])
    pca = _seconds(lambda: P.PCAProjection().fit(x), repeat=5)
    P.UMAPProjection().fit(x[:500])  # compile in this process
    umap_warm = _seconds(lambda: P.UMAPProjection().fit(x))
    _umap_learn_defaults(x)  # NN-descent compiles on its first call
    umap_defaults = _seconds(lambda: _umap_learn_defaults(x))
    tsne = _seconds(lambda: P.TSNEProjection().fit(x))

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, D), nn.ReLU()).eval()
    inputs = torch.randn(N, 32)
    with tempfile.TemporaryDirectory() as store:
        project_layer(model, inputs, "1", "pca", store=store, name="bench")
        hit = _seconds(lambda: project_layer(model, inputs, "1", "pca", store=store, name="bench"), repeat=11)
    size = f"{N} x {D}"
    return [
        Result(name=f"PCA fit, {size}", value=pca * 1e3, target=None, baseline="-", unit="ms"),
        Result(name=f"UMAP first call in a fresh process (numba compiles), {size}", value=first, target=None,
               baseline="-", unit="s"),
        Result(name=f"UMAP warm, seeded, {size} (exact neighbours, 200 epochs)", value=umap_warm, target=5.0,
               baseline="-", unit="s", detail={"umap_learn_defaults_s": umap_defaults}),
        Result(name=f"UMAP warm, seeded, umap-learn's defaults (NN-descent, 500 epochs), {size}", value=umap_defaults,
               target=None, baseline="-", unit="s"),
        Result(name=f"t-SNE (Barnes-Hut, PCA init), {size}", value=tsne, target=None, baseline="-", unit="s"),
        Result(name=f"layer map read back from the store (second request), {size}", value=hit * 1e3, target=50,
               baseline="-", unit="ms", detail={"threads": torch.get_num_threads()}),
    ]
