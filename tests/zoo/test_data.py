"""Zoo datasets: deterministic, bundled or generated, and their ground truth is right."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.errors import UnknownNameError
from zoo import data


def test_splits_are_deterministic_and_disjoint():
    a, b = data.digits(), data.digits.__wrapped__()
    torch.testing.assert_close(a.test[0], b.test[0])
    assert len(a.train[0]) + len(a.test[0]) == 1797
    xs, _, ms = data.make_shapes(20, seed=5)
    xs2, _, ms2 = data.make_shapes(20, seed=5)
    np.testing.assert_array_equal(xs, xs2)
    np.testing.assert_array_equal(ms, ms2)
    assert not np.array_equal(xs, data.make_shapes(20, seed=6)[0])


def test_tabular_standardised_with_training_statistics():
    ds = data.breast_cancer()
    torch.testing.assert_close(ds.train[0].mean(0), torch.zeros(30), atol=1e-4, rtol=0)
    torch.testing.assert_close(ds.train[0].std(0, unbiased=False), torch.ones(30), atol=1e-4, rtol=0)
    assert len(ds.feature_names) == 30 and ds.classes == ("malignant", "benign")


def test_shape_masks_mark_the_shape():
    x, y, m = data.make_shapes(200, seed=1)
    assert x.shape == m.shape == (200, 1, 16, 16) and x.min() >= 0 and x.max() <= 1
    sizes = m.reshape(200, -1).sum(1)
    assert (sizes >= 8).all()
    # shape pixels are drawn at 0.8-1.0 (plus noise); clutter stays at 0.7 or below (plus noise)
    assert x[m].min() > 0.6
    assert set(np.unique(y)) == set(range(len(data.SHAPE_CLASSES)))
    ds = data.shapes()
    assert ds.test_truth.shape == ds.test[0].shape and ds.test_truth.dtype == torch.bool


def _label_from_tokens(tokens: list[str]) -> tuple[int, set[int]]:
    """The rule, re-derived independently from the words."""
    pos = [i for i, t in enumerate(tokens) if t in data.POSITIVE or t in data.NEGATIVE]
    assert len(pos) == 1
    p = pos[0]
    negated = p > 0 and tokens[p - 1] == "not"
    positive = tokens[p] in data.POSITIVE
    return int(positive != negated), ({p, p - 1} if negated else {p})


def test_sentiment_label_decided_by_known_positions():
    ds = data.sentiment()
    x, y = ds.test
    negations = distractors = 0
    for i in range(len(y)):
        words = [ds.vocab[j] for j in x[i]]
        label, where = _label_from_tokens(words)
        assert label == int(y[i])
        assert set(torch.nonzero(ds.test_truth[i]).flatten().tolist()) == where
        negations += len(where) == 2
        distractors += words.count("not") > (len(where) == 2)
    assert 400 < negations < 600 and distractors > 150


def test_unknown_dataset():
    with pytest.raises(UnknownNameError, match="did you mean 'digits'"):
        data.load("digit")
