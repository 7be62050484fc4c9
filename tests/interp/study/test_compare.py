"""Compare two explanations on one scale: the numbers against a second computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import zoo
from interp.errors import InputError
from interp.study import compare, saliency


def test_two_methods_on_one_sample_share_a_scale():
    cnn = zoo.subject("cnn-digits")
    p = compare.pair((cnn, 3, "gradient"), (cnn, 3, "input_x_gradient"))
    a = saliency.comparison(cnn, 3, ["gradient"])[2][0].values[0].reshape(-1).numpy()
    b = saliency.comparison(cnn, 3, ["input_x_gradient"])[2][0].values[0].reshape(-1).numpy()
    assert p.same_input and p.spearman == pytest.approx(spearmanr(a, b).statistic)
    k = round(0.1 * a.size)
    top = set(np.argsort(-np.abs(a))[:k]), set(np.argsort(-np.abs(b))[:k])
    assert p.top_overlap == pytest.approx(len(top[0] & top[1]) / len(top[0] | top[1]))
    bound = max(np.abs(a).max(), np.abs(b).max())
    assert p.figure.layout.coloraxis.cmax == pytest.approx(bound)  # one scale: the larger of the two
    assert len(p.figure.layout.annotations) == 3  # left, right, and right − left
    same = compare.pair((cnn, 3, "gradient"), (cnn, 3, "gradient"))
    assert same.spearman == pytest.approx(1.0) and same.top_overlap == 1.0


def test_lrp_composites_pinned_samples_and_two_models():
    cnn = zoo.subject("cnn-digits")
    p = compare.pair((cnn, 3, "lrp:epsilon"), (cnn, 3, "lrp:epsilon_plus_flat"))
    assert p.same_input and -1 <= p.spearman <= 1
    pinned = compare.pair((cnn, 3, "gradient"), (cnn, 9, "gradient"))
    assert not pinned.same_input and len(pinned.figure.layout.annotations) == 2
    lstm, transformer = zoo.subject("lstm-sentiment"), zoo.subject("transformer-sentiment")
    assert torch.equal(lstm.inputs[2], transformer.inputs[2])
    models = compare.pair((lstm, 2, "integrated_gradients"), (transformer, 2, "integrated_gradients"))
    assert models.same_input and models.figure.data[0].z.shape[0] == 3  # two models and their difference
    assert "lstm-sentiment" in models.figure.data[0].y[0]
    assert "Spearman" in compare.text(models)
    with pytest.raises(InputError, match="nothing to set side by side"):
        compare.pair((cnn, 0, "gradient"), (lstm, 0, "gradient"))
    with pytest.raises(InputError, match="cannot be explained by 'grad_cam'"):
        compare.explain(lstm, 0, "grad_cam")
