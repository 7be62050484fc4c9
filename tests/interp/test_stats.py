"""interp.layer_stats against plain numpy on small random sets, chunked or not."""

from __future__ import annotations

import numpy as np
import pytest

from interp import layer_stats, stats
from interp.errors import InputError, UnknownNameError


def _reference(a: np.ndarray, channels_first: bool, labels: np.ndarray, k: int, n_classes: int):
    """The definitions, written out with numpy on the whole array."""
    n = len(a)
    if a.ndim == 2:
        u = a[:, :, None]
    elif channels_first:
        u = a.reshape(n, a.shape[1], -1)
    else:
        u = np.moveaxis(a, -1, 1).reshape(n, a.shape[-1], -1)
    v = u.mean(2)
    order = np.argsort(-v, axis=0, kind="stable")[:k].T
    return {
        "mean": v.mean(0), "std": v.std(0), "frac_zero": (np.abs(u).max(2) == 0).mean(0),
        "max": u.max(axis=(0, 2)), "min": u.min(axis=(0, 2)), "top_indices": order,
        "top_values": np.take_along_axis(v.T, order, 1),
        "class_means": np.stack([v[labels == c].mean(0) for c in range(n_classes)]),
    }


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    conv = np.maximum(rng.normal(size=(50, 6, 4, 3)), 0).astype(np.float32)
    conv[:, 2] = 0                      # a dead channel
    conv[::5, 4] = 0                    # a channel silent on every fifth sample
    seq = rng.normal(size=(50, 7, 5)).astype(np.float32)     # (time, features): units last
    dense = rng.normal(size=(50, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 50)
    return {"conv": conv, "seq": seq, "dense": dense}, labels


@pytest.mark.parametrize("chunk_bytes", [None, 500])  # whole array, or a few samples per chunk
def test_statistics_equal_numpy(data, monkeypatch, chunk_bytes):
    arrays, labels = data
    if chunk_bytes:
        monkeypatch.setattr(stats, "CHUNK_BYTES", chunk_bytes)
    result = layer_stats(arrays, labels=labels, k=4, channels_first={"seq": False})
    for name, first in (("conv", True), ("seq", False), ("dense", True)):
        ref = _reference(arrays[name].astype(np.float64), first, labels, 4, 3)
        s = result[name]
        for field in ("mean", "std", "frac_zero", "max", "min", "top_values", "class_means"):
            np.testing.assert_allclose(getattr(s, field), ref[field], rtol=1e-6, atol=1e-7, err_msg=field)
        np.testing.assert_array_equal(s.top_indices, ref["top_indices"])
        np.testing.assert_array_equal(s.class_counts, np.bincount(labels, minlength=3))
    conv = result["conv"]
    assert conv.units == 6 and conv.sample_shape == (6, 4, 3)
    assert conv.frac_zero[2] == 1.0 and conv.frac_zero[4] == pytest.approx(0.2)
    assert list(conv.dead()) == [2]
    assert result["seq"].units == 5


def test_ties_in_top_k_prefer_lower_indices():
    a = np.zeros((6, 2), np.float32)
    a[[1, 4], 0] = 1.0
    s = layer_stats({"x": a}, k=3)["x"]
    assert s.top_indices[0].tolist() == [1, 4, 0]
    assert s.top_indices[1].tolist() == [0, 1, 2]


def test_collection_source_uses_stored_labels_and_layout(tmp_path):
    import torch

    import interp
    from zoo.models import LSTMClassifier

    torch.manual_seed(0)
    model = LSTMClassifier(15, 2).eval()
    tokens, labels = torch.randint(0, 15, (30, 5)), torch.randint(0, 2, (30,))
    col = interp.collect(model, tokens, store=tmp_path, labels=labels, progress=False)
    s = layer_stats(col, ["lstm.out"], k=2)["lstm.out"]
    assert s.units == 64  # features of the sequence, not its 5 time steps
    v = col["lstm.out"].mean(1)
    np.testing.assert_allclose(s.mean, v.mean(0), rtol=1e-5)
    np.testing.assert_allclose(s.class_means[1], v[labels.numpy() == 1].mean(0), rtol=1e-5)


def test_bad_input(data):
    arrays, labels = data
    with pytest.raises(UnknownNameError):
        layer_stats(arrays, ["convv"])
    with pytest.raises(InputError, match="labels for"):
        layer_stats(arrays, labels=labels[:3])
    with pytest.raises(InputError, match="non-negative integer"):
        layer_stats(arrays, labels=labels - 5)
    with pytest.raises(InputError, match="k must be"):
        layer_stats(arrays, k=0)
    with pytest.raises(InputError, match="source must be"):
        layer_stats([1, 2, 3])
