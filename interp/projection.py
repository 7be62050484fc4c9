"""Latent projections: PCA, t-SNE and UMAP maps of activations, and how far to trust them.

    xy = interp.project(features, method="umap", n_components=2, random_state=0)  # (n, 2) ndarray
    est = interp.projection.UMAPProjection(n_neighbors=15).fit(train)        # scikit-learn style
    est.transform(test)                                                      # new points, same map
    q = interp.projection.quality(features, xy, labels)                      # trustworthiness, k-NN agreement

The maps themselves are scikit-learn's ``PCA`` and ``TSNE`` and umap-learn's ``UMAP``.
What this module adds around them:

- one estimator interface that follows scikit-learn to the letter (parameters in
  ``__init__`` stored as given, work in ``fit``, fitted attributes ending in ``_``,
  ``transform`` / ``fit_transform``), and input checks at the edge: NaN or Inf
  features, too few samples for the neighbours or the perplexity, ``n_components``
  out of range, with messages that say the limit;
- PCA first to ``pca_first`` dimensions (50) before t-SNE and UMAP when the features
  are wider, as both authors recommend for speed and noise;
- t-SNE refusing ``transform`` with a clear error (it has no mapping for new points);
- :func:`quality`: trustworthiness (scikit-learn's) and k-nearest-neighbour label
  agreement in the map beside the same in the original space, so a map comes with
  how far to trust it;
- :class:`LayerProjection`: the result of projecting one layer over a dataset, which
  :func:`interp.layer_projection.project_layer` computes (it collects activations, so it
  lives above :mod:`interp.collect`; this module works on arrays only).

Same seed, same map: every estimator takes ``random_state`` (UMAP then runs on one
thread, as umap-learn does for reproducibility).

UMAP of larger sets (from 4,096 samples, where umap-learn switches from exact neighbours to
its approximate NN-descent) is given exact nearest neighbours from scikit-learn
(brute force, BLAS) up to :data:`EXACT_NEIGHBOURS_UP_TO` samples, and 200 epochs (what
umap-learn itself runs above 10,000 samples). Measured on 10,000 × 64 features, 2 cores,
seeded: 29 s in a fresh process and 8.4 s after it (umap-learn's defaults: NN-descent's
numba kernels compile for ~20 s on the first fit of a process, and 500 epochs run single
threaded under a seed) became 8 s and 3.5 s, with the same trustworthiness (0.958 against
0.959) and exact rather than approximate neighbours. ``transform`` still places new points:
their neighbours come from the same scikit-learn index. t-SNE stays scikit-learn's, the
slowest of the three on large sets (35 s at 10,000 points; openTSNE's FFT t-SNE took 12 s,
not enough to take on a compiled dependency for): the dashboard shows PCA while it fits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from . import results
from .errors import InputError, InterpError, UnknownNameError

METHODS = ("pca", "tsne", "umap")
PCA_FIRST = 50              # t-SNE and UMAP run on the first 50 principal components of wider inputs
UMAP_APPROXIMATE_FROM = 4096  # umap-learn's own switch from exact to approximate (NN-descent) neighbours
EXACT_NEIGHBOURS_UP_TO = 30_000  # UMAP gets exact neighbours from scikit-learn up to this many samples
LARGE_SET_EPOCHS = 200      # UMAP's epochs from UMAP_APPROXIMATE_FROM samples (umap-learn's own above 10,000)
EXACT_METRICS = ("euclidean", "l2", "manhattan", "l1", "cityblock", "cosine", "chebyshev")
QUALITY_SAMPLES = 2000      # trustworthiness compares all pairs: larger sets are scored on a seeded subset
DEFAULT_K = 10


# ---------------------------------------------------------------------------- input checks

def _features(x, what: str = "features", at_least: int = 2) -> np.ndarray:
    """``x`` as a float (n, d) array (tensors and arrays of more axes are flattened per
    sample); an InputError for NaN or Inf, or for fewer than ``at_least`` samples."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be an array or tensor of numbers, one row per sample; "
                         f"got {type(x).__name__}") from None
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise InputError(f"{what} must hold numbers; got dtype {a.dtype}")
    if a.ndim < 2 or a.shape[0] == 0 or 0 in a.shape[1:]:
        raise InputError(f"{what} must be (samples, features) with at least {at_least} sample(s) of at least 1 "
                         f"feature; got shape {a.shape}")
    a = a.reshape(len(a), -1)
    if a.dtype != np.float64:
        a = a.astype(np.float32)
    if len(a) < at_least or a.shape[1] < 1:
        raise InputError(f"{what} must hold at least {at_least} sample{'s' if at_least != 1 else ''} of at least "
                         f"1 feature; got shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        rows = np.nonzero(bad.any(1))[0]
        raise InputError(f"{what} hold NaN or Inf in {len(rows)} sample(s) (first: row {int(rows[0])}); "
                         "expected finite numbers")
    return a


def _int(name: str, v, low: int, high: int | None = None, why: str = "") -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low or (high is not None and v > high):
        limit = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise InputError(f"{name} must be an integer {limit}{why}; got {v!r}")
    return int(v)


def _seed(v):
    if v is None:
        return None
    return _int("random_state", v, 0, 2 ** 32 - 1, " (or None)")


# ---------------------------------------------------------------------------- estimators

class _Projection:
    """What the three estimators share: checks, PCA first, fit_transform, get_params."""

    method = ""
    _PARAMS: tuple[str, ...] = ()

    def get_params(self, deep: bool = True) -> dict:
        return {p: getattr(self, p) for p in self._PARAMS}

    def set_params(self, **params) -> _Projection:
        for k, v in params.items():
            if k not in self._PARAMS:
                raise UnknownNameError(f"parameter of {type(self).__name__}", k, self._PARAMS)
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({inner})"

    def _check_common(self, x: np.ndarray) -> None:
        n, d = x.shape
        limit = min(n, d) if self.method == "pca" else max(1, min(n - 1, 3 if self.method == "tsne" else n - 2))
        _int("n_components", self.n_components, 1, limit,
             {"pca": f" (at most min(samples, features) = {min(n, d)})",
              "tsne": " (t-SNE maps to 1-3 dimensions, and fewer than the samples)",
              "umap": f" (at most samples - 2 = {n - 2})"}[self.method])
        _seed(self.random_state)
        if self.method != "pca" and self.pca_first is not None:
            _int("pca_first", self.pca_first, self.n_components, None,
                 " (dimensions kept by PCA before the map; None: no PCA first)")

    def _reduce_fit(self, x: np.ndarray) -> np.ndarray:
        """PCA to ``pca_first`` dimensions first, for t-SNE and UMAP of wider features."""
        from sklearn.decomposition import PCA

        self.pca_ = None
        if self.method != "pca" and self.pca_first is not None and x.shape[1] > self.pca_first:
            keep = min(self.pca_first, len(x))
            self.pca_ = PCA(n_components=keep, random_state=self.random_state).fit(x)
            return self.pca_.transform(x)
        return x

    def _reduce(self, x: np.ndarray) -> np.ndarray:
        return x if self.pca_ is None else self.pca_.transform(x)

    def fit(self, x, y=None) -> _Projection:
        """Learn the map of ``x`` (samples, features); the map of ``x`` itself is ``embedding_``."""
        a = _features(x)
        self._check_common(a)
        self._check(a)
        start = time.perf_counter()
        self.n_features_in_ = a.shape[1]
        try:
            self.embedding_ = np.asarray(self._fit(self._reduce_fit(a)), dtype=np.float32)
        except (ValueError, TypeError) as exc:  # a parameter scikit-learn or umap-learn refuses: say which
            raise InputError(f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())}) "
                             f"cannot fit: {exc}") from None
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def fit_transform(self, x, y=None) -> np.ndarray:
        return self.fit(x, y).embedding_

    def transform(self, x) -> np.ndarray:
        """Place new samples in the fitted map."""
        if not hasattr(self, "embedding_"):
            raise InterpError(f"this {type(self).__name__} is not fitted yet; call fit first")
        a = _features(x, at_least=1)
        if a.shape[1] != self.n_features_in_:
            raise InputError(f"the map was fitted on {self.n_features_in_} features; got {a.shape[1]}")
        return np.asarray(self._transform(self._reduce(a)), dtype=np.float32)

    def _check(self, x: np.ndarray) -> None:
        pass


class PCAProjection(_Projection):
    """Principal component analysis (scikit-learn's ``PCA``): a linear map, exact and
    fast, which places new points (``transform``). Fitted: ``estimator_`` (the PCA),
    ``explained_variance_ratio_``, ``embedding_``."""

    method = "pca"
    _PARAMS = ("n_components", "random_state", "whiten")

    def __init__(self, n_components: int = 2, random_state: int | None = 0, whiten: bool = False):
        self.n_components = n_components
        self.random_state = random_state
        self.whiten = whiten

    def _check(self, x):
        if not isinstance(self.whiten, (bool, np.bool_)):
            raise InputError(f"whiten must be True or False; got {self.whiten!r}")

    def _fit(self, x):
        from sklearn.decomposition import PCA

        self.estimator_ = PCA(n_components=self.n_components, whiten=self.whiten, random_state=self.random_state)
        out = self.estimator_.fit_transform(x)
        self.explained_variance_ratio_ = self.estimator_.explained_variance_ratio_
        return out

    def _transform(self, x):
        return self.estimator_.transform(x)


class TSNEProjection(_Projection):
    """t-SNE (scikit-learn's ``TSNE``): keeps neighbourhoods, not distances; cannot place
    new points. ``perplexity`` must be below the number of samples."""

    method = "tsne"
    _PARAMS = ("n_components", "random_state", "perplexity", "learning_rate", "max_iter", "pca_first", "init")

    def __init__(self, n_components: int = 2, random_state: int | None = 0, perplexity: float = 30.0,
                 learning_rate="auto", max_iter: int = 1000, pca_first: int | None = PCA_FIRST, init: str = "pca"):
        self.n_components = n_components
        self.random_state = random_state
        self.perplexity = perplexity
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.pca_first = pca_first
        self.init = init

    def _check(self, x):
        p = self.perplexity
        if (isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.number)) or not np.isfinite(p)
                or p <= 0):
            raise InputError(f"perplexity must be a number > 0; got {p!r}")
        if self.init not in ("pca", "random"):
            raise InputError(f"init must be 'pca' or 'random'; got {self.init!r}")
        lr = self.learning_rate
        if lr != "auto" and (isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) or not lr > 0):
            raise InputError(f"learning_rate must be 'auto' or a number > 0; got {lr!r}")
        if p >= len(x):
            raise InputError(f"perplexity {p:g} needs more than {p:g} samples; got {len(x)} (lower the "
                             f"perplexity below {len(x)}, e.g. {max(1, (len(x) - 1) // 3)})")
        _int("max_iter", self.max_iter, 250, None, " (scikit-learn's minimum)")

    def _fit(self, x):
        from sklearn.manifold import TSNE

        self.estimator_ = TSNE(n_components=self.n_components, perplexity=float(self.perplexity),
                               learning_rate=self.learning_rate, max_iter=self.max_iter, init=self.init,
                               random_state=self.random_state)
        return self.estimator_.fit_transform(x)

    def _transform(self, x):
        raise InterpError("t-SNE cannot place new points in an existing map: it learns positions, not a "
                          "mapping. Fit it on all the points together, or use UMAP or PCA, which can")


class UMAPProjection(_Projection):
    """UMAP (umap-learn): keeps local and some global structure, and places new points
    (``transform``). ``n_neighbors`` must be below the number of samples. With a
    ``random_state`` it is reproducible and runs on one thread. From 4,096 samples the
    neighbours are exact ones from scikit-learn (up to 30,000 samples, for the metrics in
    :data:`EXACT_METRICS`) and ``n_epochs`` defaults to 200 (see the module's notes);
    fitted ``exact_neighbours_`` says whether the neighbours were exact."""

    method = "umap"
    _PARAMS = ("n_components", "random_state", "n_neighbors", "min_dist", "metric", "pca_first", "n_epochs")

    def __init__(self, n_components: int = 2, random_state: int | None = 0, n_neighbors: int = 15,
                 min_dist: float = 0.1, metric: str = "euclidean", pca_first: int | None = PCA_FIRST,
                 n_epochs: int | None = None):
        self.n_components = n_components
        self.random_state = random_state
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.pca_first = pca_first
        self.n_epochs = n_epochs  # None: umap-learn's 500 below UMAP_APPROXIMATE_FROM samples, 200 from there

    def _check(self, x):
        _int("n_neighbors", self.n_neighbors, 2, None)
        if self.n_neighbors >= len(x):
            raise InputError(f"n_neighbors {self.n_neighbors} needs more than {self.n_neighbors} samples; got "
                             f"{len(x)} (lower n_neighbors below {len(x)})")
        d = self.min_dist
        if isinstance(d, bool) or not isinstance(d, (int, float, np.number)) or not 0 <= d <= 1:
            raise InputError(f"min_dist must be a number in [0, 1]; got {d!r}")
        if not isinstance(self.metric, str):
            raise InputError(f"metric must be the name of a distance umap-learn knows (e.g. 'euclidean', 'cosine'); "
                             f"got {self.metric!r}")
        if self.n_epochs is not None:
            _int("n_epochs", self.n_epochs, 1, None, " (or None: 500 below 4,096 samples, 200 from there)")

    def _fit(self, x):
        import warnings

        import umap

        n = len(x)
        epochs = self.n_epochs if self.n_epochs is not None else (LARGE_SET_EPOCHS if n >= UMAP_APPROXIMATE_FROM
                                                                  else None)
        exact = UMAP_APPROXIMATE_FROM <= n <= EXACT_NEIGHBOURS_UP_TO and self.metric in EXACT_METRICS
        self.exact_neighbours_ = exact or n < UMAP_APPROXIMATE_FROM  # umap-learn's own below the switch
        knn = _ExactNeighbours(x, self.n_neighbors, self.metric).knn() if exact else (None, None, None)
        self.estimator_ = umap.UMAP(n_components=self.n_components, n_neighbors=self.n_neighbors,
                                    min_dist=self.min_dist, metric=self.metric, random_state=self.random_state,
                                    n_epochs=epochs, precomputed_knn=knn)
        with warnings.catch_warnings():  # "n_jobs overridden to 1 by setting random_state": as documented above
            warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
            # ours is a scikit-learn index, not pynndescent's: transform works through its query()
            warnings.filterwarnings("ignore", message=".*knn_search_index.*")
            return self.estimator_.fit_transform(x)

    def _transform(self, x):
        return self.estimator_.transform(x)


class _ExactNeighbours:
    """Exact nearest neighbours of the fitted points from scikit-learn (brute force), in
    the form umap-learn takes as ``precomputed_knn``: (indices, distances, search index),
    each point its own first neighbour. The search index answers umap-learn's
    ``query(points, k, epsilon)`` for ``transform`` (exactly; ``epsilon`` is NN-descent's)."""

    _angular_trees = False  # read by umap-learn's transform to pick NN-descent's epsilon

    def __init__(self, x: np.ndarray, k: int, metric: str):
        from sklearn.neighbors import NearestNeighbors

        self.k, self.x = k, x
        self.index = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(x)

    def knn(self) -> tuple[np.ndarray, np.ndarray, _ExactNeighbours]:
        indices, distances = self.query(self.x, self.k)
        return indices, distances, self

    def query(self, x, k: int, epsilon: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        distances, indices = self.index.kneighbors(np.asarray(x), n_neighbors=k)
        return indices.astype(np.int32), distances.astype(np.float32)


ESTIMATORS: dict[str, type] = {"pca": PCAProjection, "tsne": TSNEProjection, "umap": UMAPProjection}


def estimator(method: str = "pca", n_components: int = 2, random_state: int | None = 0, **params) -> _Projection:
    """A new, unfitted estimator of ``method`` ("pca", "tsne", "umap") with ``params``."""
    if not isinstance(method, str) or method not in ESTIMATORS:
        raise UnknownNameError("projection method", method, ESTIMATORS)
    cls = ESTIMATORS[method]
    unknown = [k for k in params if k not in cls._PARAMS]
    if unknown:
        raise UnknownNameError(f"parameter of {method}", unknown[0], [p for p in cls._PARAMS
                                                                     if p not in ("n_components", "random_state")])
    return cls(n_components=n_components, random_state=random_state, **params)


def project(features, method: str = "pca", n_components: int = 2, random_state: int | None = 0,
            **params) -> np.ndarray:
    """The (n, n_components) map of ``features`` (samples, features) by ``method``."""
    return estimator(method, n_components, random_state, **params).fit_transform(features)


# ---------------------------------------------------------------------------- quality

@dataclass(frozen=True)
class MapQuality:
    """How far to trust a map. ``trustworthiness`` (scikit-learn's, in [0, 1]): how much
    the map's neighbourhoods are true neighbourhoods of the original space (1: no false
    neighbours among the ``k`` nearest). ``agreement_map`` / ``agreement_original``: the
    share of each sample's ``k`` nearest neighbours with its label, in the map and in the
    original space (None without labels): a map that separates classes better than the
    original space invents structure. ``samples``: how many samples were scored."""

    trustworthiness: float
    agreement_map: float | None
    agreement_original: float | None
    k: int
    samples: int


def knn_agreement(points, labels, k: int = DEFAULT_K) -> float:
    """The mean share of each point's ``k`` nearest neighbours (itself excluded) that carry
    its label."""
    from sklearn.neighbors import NearestNeighbors

    a = _features(points, "points")
    y = np.asarray(labels).reshape(-1)
    if len(y) != len(a):
        raise InputError(f"labels must be one per point ({len(a)}); got {len(y)}")
    k = _int("k", k, 1, len(a) - 1, f" (below the number of points, {len(a)})")
    index = NearestNeighbors(n_neighbors=k + 1).fit(a).kneighbors(a, return_distance=False)
    neighbours = np.array([row[row != i][:k] for i, row in enumerate(index)])  # itself out, even among ties
    return float((y[neighbours] == y[:, None]).mean())


def quality(features, embedding, labels=None, k: int = DEFAULT_K, random_state: int = 0) -> MapQuality:
    """Trustworthiness of ``embedding`` as a map of ``features``, and k-NN label agreement
    in both (with ``labels``). Above QUALITY_SAMPLES samples, scored on a seeded subset
    (trustworthiness compares all pairs)."""
    from sklearn.manifold import trustworthiness

    x, e = _features(features), _features(embedding, "embedding")
    if len(x) != len(e):
        raise InputError(f"features ({len(x)}) and embedding ({len(e)}) must have one row per sample each")
    y = None if labels is None else np.asarray(labels).reshape(-1)
    if y is not None and len(y) != len(x):
        raise InputError(f"labels must be one per sample ({len(x)}); got {len(y)}")
    if len(x) > QUALITY_SAMPLES:
        keep = np.sort(np.random.default_rng(random_state).choice(len(x), QUALITY_SAMPLES, replace=False))
        x, e, y = x[keep], e[keep], (None if y is None else y[keep])
    k = _int("k", k, 1, max(1, len(x) // 2 - 1), f" (below half the samples scored, {len(x)})")
    trust = float(trustworthiness(x, e, n_neighbors=k))
    if y is None:
        return MapQuality(trust, None, None, k, len(x))
    return MapQuality(trust, knn_agreement(e, y, k), knn_agreement(x, y, k), k, len(x))


# ---------------------------------------------------------------------------- layers

@results.register
@dataclass(frozen=True)
class LayerProjection:
    """The map of one layer's activations over a dataset: ``coordinates`` (n, k), the
    ``labels`` stored with the data (or None), how it was made (``layer``, ``method``,
    ``params``, ``reduce``: None flattened, "mean"/"max" pooled over positions;
    ``features``: the width projected), and its :class:`MapQuality` numbers."""

    coordinates: torch.Tensor
    labels: torch.Tensor | None
    layer: str
    method: str
    params: dict
    reduce: str | None
    features: int
    trustworthiness: float
    agreement_map: float | None
    agreement_original: float | None
    k: int
    seconds: float
    scored: int | None = None  # samples the quality numbers were computed on (a subset above QUALITY_SAMPLES)

    @property
    def quality(self) -> MapQuality:
        return MapQuality(self.trustworthiness, self.agreement_map, self.agreement_original, self.k,
                          self.scored or len(self.coordinates))


__all__ = ["project", "estimator", "PCAProjection", "TSNEProjection", "UMAPProjection", "ESTIMATORS", "METHODS",
           "quality", "knn_agreement", "MapQuality", "LayerProjection", "PCA_FIRST", "QUALITY_SAMPLES", "DEFAULT_K"]
