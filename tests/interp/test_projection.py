"""interp.projection and interp.layer_projection against references that can fail:
scikit-learn's own PCA, the same map for the same seed, trustworthiness of UMAP on the zoo
CNN, classes that separate better deep in a trained classifier than at its input, the
store read back on a second request, and clear errors for what the maps cannot take."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import interp
from interp import projection as P
from interp.errors import InputError, InterpError, UnknownNameError
from interp.layer_projection import project_layer


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.RandomState(0)
    centres = rng.randn(3, 20) * 6
    y = np.repeat(np.arange(3), 40)
    return (centres[y] + rng.randn(120, 20)).astype(np.float32), y


def test_pca_is_scikit_learns(blobs):
    from sklearn.decomposition import PCA

    x, _ = blobs
    ours = interp.project(x, "pca", n_components=3)
    theirs = PCA(n_components=3, random_state=0).fit_transform(x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)  # float32: summation order
    est = P.PCAProjection(n_components=3).fit(x)
    np.testing.assert_allclose(est.transform(x[:5]), theirs[:5], rtol=1e-5, atol=1e-4)  # new points: same map
    assert est.n_features_in_ == 20 and est.explained_variance_ratio_.shape == (3,)


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_the_same_seed_gives_the_same_map(blobs, method):
    x, y = blobs
    params = {"perplexity": 20} if method == "tsne" else {"n_neighbors": 10}
    a = interp.project(x, method, random_state=3, **params)
    b = interp.project(x, method, random_state=3, **params)
    c = interp.project(x, method, random_state=4, **params)
    assert a.shape == (120, 2) and np.array_equal(a, b)
    # UMAP's layout starts from the seed; t-SNE starts from PCA (init="pca"), the same for any seed
    assert np.array_equal(a, c) == (method == "tsne")
    assert P.knn_agreement(a, y, 5) > 0.95  # well-separated blobs stay apart


def test_estimators_follow_scikit_learn():
    from sklearn.base import clone

    est = P.UMAPProjection(n_neighbors=7, min_dist=0.3)
    assert est.get_params() == {"n_components": 2, "random_state": 0, "n_neighbors": 7, "min_dist": 0.3,
                                "metric": "euclidean", "pca_first": 50, "n_epochs": None}
    copy = clone(est)
    assert copy is not est and copy.get_params() == est.get_params() and not hasattr(copy, "embedding_")
    assert est.set_params(n_neighbors=9).n_neighbors == 9
    with pytest.raises(UnknownNameError):
        est.set_params(perplexity=3)
    with pytest.raises(InterpError, match="not fitted"):
        est.transform(np.zeros((2, 3)))


@pytest.fixture(scope="module")
def large_blobs():
    """Past umap-learn's switch to approximate neighbours (4,096 samples): 4,200 points of
    4 clusters in 8 dimensions, and 40 new points of each cluster."""
    rng = np.random.RandomState(1)
    centres = rng.randn(4, 8) * 8
    y = np.repeat(np.arange(4), 1050)
    new_y = np.repeat(np.arange(4), 10)
    return (centres[y] + rng.randn(len(y), 8)).astype(np.float32), y, (centres[new_y] + rng.randn(40, 8)), new_y


@pytest.fixture(scope="module")
def large_map(large_blobs):
    x, *_ = large_blobs
    return P.UMAPProjection(n_neighbors=10, random_state=5).fit(x)


def test_umap_of_a_large_set_has_exact_neighbours(large_blobs, large_map):
    x, y, *_ = large_blobs
    est = large_map
    assert est.exact_neighbours_ and est.estimator_.n_epochs == P.LARGE_SET_EPOCHS
    # the neighbours umap-learn used are the exact ones: numpy's full distance matrix, sorted
    d = ((x[:300, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    reference = np.sort(d, axis=1)[:, :10]
    used = est.estimator_._knn_indices[:300]
    np.testing.assert_allclose(np.take_along_axis(d, used.astype(np.int64), 1), reference, rtol=1e-4, atol=1e-3)
    assert P.knn_agreement(est.embedding_, y, 5) > 0.98
    # the same seed, the same map
    again = P.UMAPProjection(n_neighbors=10, random_state=5).fit(x)
    assert np.array_equal(again.embedding_, est.embedding_)


def test_umap_of_a_large_set_places_new_points(large_blobs, large_map):
    x, y, new, new_y = large_blobs
    placed = large_map.transform(new)
    assert placed.shape == (40, 2) and np.isfinite(placed).all()
    centroids = np.stack([large_map.embedding_[y == c].mean(0) for c in range(4)])
    nearest = np.argmin(((placed[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == new_y).mean() == 1.0  # each new point lands among its own cluster


def test_umap_epochs_are_checked_and_small_sets_keep_umap_learns_defaults(blobs):
    x, _ = blobs
    est = P.UMAPProjection(n_neighbors=10).fit(x)
    assert est.estimator_.n_epochs is None and est.exact_neighbours_  # umap-learn's exact path, its 500 epochs
    assert P.UMAPProjection(n_neighbors=10, n_epochs=30).fit(x).estimator_.n_epochs == 30
    for bad in (0, 2.5, "many"):
        with pytest.raises(InputError, match="n_epochs must be an integer"):
            P.UMAPProjection(n_epochs=bad).fit(x)


def test_wide_features_go_through_pca_first(blobs):
    x, _ = blobs
    wide = np.concatenate([x] * 4, 1)  # 80 features
    est = P.UMAPProjection(n_neighbors=10, pca_first=12).fit(wide)
    assert est.pca_ is not None and est.pca_.n_components_ == 12
    assert est.transform(wide[:3]).shape == (3, 2)  # new points go through the same PCA
    assert P.UMAPProjection(n_neighbors=10, pca_first=None).fit(wide).pca_ is None
    assert P.TSNEProjection(perplexity=10).fit(x).pca_ is None  # 20 features: narrow enough


def test_tsne_cannot_place_new_points(blobs):
    x, _ = blobs
    est = P.TSNEProjection(perplexity=10).fit(x)
    with pytest.raises(InterpError, match="t-SNE cannot place new points"):
        est.transform(x[:2])


@pytest.mark.parametrize("call, match", [
    (lambda x: interp.project(np.where(np.eye(120, 20) > 0, np.nan, x)), "NaN or Inf in 20 sample"),
    (lambda x: interp.project(x[:10], "tsne", perplexity=30), "perplexity 30 needs more than 30 samples"),
    (lambda x: interp.project(x[:10], "umap", n_neighbors=15), "n_neighbors 15 needs more than 15 samples"),
    (lambda x: interp.project(x, "pca", n_components=21), "n_components must be an integer in \\[1, 20\\]"),
    (lambda x: interp.project(x, "tsne", n_components=4), "n_components must be an integer in \\[1, 3\\]"),
    (lambda x: interp.project(x, "pca", n_components=0), "n_components"),
    (lambda x: interp.project(x, "isomap"), "unknown projection method"),
    (lambda x: interp.project(x, "umap", perplexity=5), "unknown parameter of umap"),
    (lambda x: interp.project(x[0]), "must be \\(samples, features\\)"),
    (lambda x: interp.project(x, random_state=-1), "random_state"),
    (lambda x: interp.project(x, "umap", min_dist=2.0), "min_dist"),
    (lambda x: interp.project(np.zeros((0, 3))), "at least 2 sample"),
    (lambda x: interp.project(x, "tsne", init="bogus"), "init must be"),
    (lambda x: interp.project(x, "tsne", learning_rate=-1), "learning_rate must be"),
    (lambda x: interp.project(x, "pca", whiten="yes"), "whiten must be"),
    (lambda x: interp.project(x, "umap", metric=len), "metric must be the name"),
    (lambda x: interp.project(x, "tsne", max_iter=300, perplexity=np.float32(5), init="random",
                              learning_rate="bogus"), "learning_rate must be"),
])
def test_bad_input_says_the_limit(blobs, call, match):
    x, _ = blobs
    with pytest.raises(InterpError, match=match):
        call(x)


def test_quality_numbers(blobs):
    x, y = blobs
    q = P.quality(x, x[:, :2] * 0, y, k=5)  # every point on one spot: no true neighbourhoods
    assert q.trustworthiness < 0.7 and q.agreement_original == 1.0
    flat = np.random.RandomState(1).randn(120, 2) @ np.random.RandomState(2).randn(2, 20)  # a plane in 20-D
    good = P.quality(flat, interp.project(flat, "pca"), y, k=5)  # PCA finds the plane: nothing is lost
    assert good.trustworthiness > 0.999 and good.samples == 120
    assert P.quality(x, interp.project(x, "pca"), y, k=5).agreement_map == 1.0
    # by hand: four points on a line, labels a a b b, k = 1: each one's nearest shares its label
    assert P.knn_agreement(np.array([[0.0], [1.0], [10.0], [11.0]]), [0, 0, 1, 1], k=1) == 1.0
    assert P.knn_agreement(np.array([[0.0], [1.0], [10.0], [11.0]]), [0, 1, 0, 1], k=1) == 0.0
    with pytest.raises(InputError, match="labels must be one per"):
        P.quality(x, x[:, :2], y[:5])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    import zoo

    return zoo.load("cnn-digits"), tmp_path_factory.mktemp("store")


def test_umap_of_the_zoo_cnns_penultimate_layer_is_trustworthy(digits):
    entry, store = digits
    m = project_layer(entry.model, entry.test[0], "classifier.2", "umap", store=store, name=entry.name,
                        labels=entry.test[1])
    assert m.coordinates.shape == (len(entry.test[0]), 2) and m.features == 64
    assert m.trustworthiness >= 0.9
    assert m.agreement_map > 0.9


def test_classes_separate_better_deep_in_a_trained_classifier_than_at_its_input(digits):
    entry, store = digits
    x, y = entry.test
    deep = project_layer(entry.model, entry.test[0], "classifier.2", "pca", store=store, name=entry.name,
                           labels=y)
    assert deep.agreement_original > P.knn_agreement(x.flatten(1), y) + 0.03


def test_the_store_is_hit_on_the_second_request(digits, monkeypatch):
    entry, store = digits
    fits = []
    real = P.PCAProjection._fit
    monkeypatch.setattr(P.PCAProjection, "_fit", lambda self, x: fits.append(1) or real(self, x))
    first = project_layer(entry.model, entry.test[0], "features.4", "pca", store=store, name=entry.name, reduce="mean")
    import time

    start = time.perf_counter()
    second = project_layer(entry.model, entry.test[0], "features.4", "pca", store=store, name=entry.name,
                           reduce="mean")
    hit = time.perf_counter() - start
    assert len(fits) == 1 and torch.equal(first.coordinates, second.coordinates)
    assert hit < 1.0  # read back, not refitted (make bench times it: target < 50 ms)
    assert second.reduce == "mean" and second.features == first.features
    other = project_layer(entry.model, entry.test[0], "features.4", "pca", store=store, name=entry.name,
                          reduce="max")
    assert len(fits) == 2 and not torch.equal(other.coordinates, first.coordinates)  # another request: fitted


def test_project_layer_refuses_a_layer_with_several_outputs():
    model = nn.Sequential(nn.Linear(3, 4))

    class Pair(nn.Module):
        def forward(self, x):
            return x, x * 2

    model.append(Pair())
    with pytest.raises(InputError, match="gives 2 outputs"):
        project_layer(model, torch.randn(20, 3), "1", "pca")


def test_project_layer_on_a_small_set_and_on_batches(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU()).eval()
    x, y = torch.randn(14, 3), torch.arange(14) % 2
    small = project_layer(model, x, "1", "pca", store=tmp_path, labels=y)  # k shrinks to the set: 14 // 2 - 1
    assert small.k == 6 and small.quality.samples == 14
    batches = [(x[:7], y[:7]), (x[7:], y[7:])]
    named = project_layer(model, batches, "1", "pca", store=tmp_path, dataset="two batches", labels=1)
    torch.testing.assert_close(named.coordinates, small.coordinates)
    with pytest.raises(InputError, match="k must be"):
        project_layer(model, x, "1", "pca", store=tmp_path, labels=y, k=10)  # given explicitly: checked
