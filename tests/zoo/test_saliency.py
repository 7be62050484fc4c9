"""Saliency of zoo entries: every kind explained, figures built, and on the synthetic sets
with known ground truth the explanations land where the evidence is."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
import torch

import interp
import zoo
from interp.errors import InputError, UnknownNameError
from tests.conftest import assert_untouched, snapshot
from zoo import overview, saliency


@pytest.mark.parametrize("name", zoo.names())
def test_comparison_for_every_entry(name):
    entry = overview.cached_entry(name)
    before = snapshot(entry.full)
    indices = overview.showcase_samples(entry)[:2]
    grid, summary, attrs = saliency.comparison(entry, indices)
    assert isinstance(grid, go.Figure) and isinstance(summary, go.Figure)
    assert [a.method for a in attrs] == saliency.default_methods(entry)
    per_index = 2 if entry.card["task"] == "generation" else 1  # the GAN adds a generated sample
    for a in attrs:
        assert a.values.shape == (len(indices) * per_index, *entry.test[0].shape[1:])
        assert torch.isfinite(a.values).all()
    assert_untouched(entry.full, before)


def test_objectives_by_kind():
    assert [o.key for o in saliency.objectives(overview.cached_entry("cnn-digits"))] == ["class"]
    vae = overview.cached_entry("vae-digits")
    keys = [o.key for o in saliency.objectives(vae)]
    assert keys == ["error", "latent"]
    latent = saliency.objective(vae, "latent")
    assert [v for _, v in latent.targets] == list(range(8))
    x = vae.test[0][:3]
    with torch.no_grad():
        mu, _ = vae.parts["encoder"](x)
        assert torch.equal(saliency.explained_model(vae, "latent")(x), mu)
    a = saliency.explain_batch(vae, x, ["gradient"], "latent", 2)[0]
    assert torch.equal(a.target, torch.full((3,), 2))
    assert [o.key for o in saliency.objectives(overview.cached_entry("gan-digits"))] == ["real"]


def test_methods_offered_fit_the_model():
    assert "grad_cam" in saliency.available_methods(overview.cached_entry("cnn-digits"))
    assert saliency.cam_layers(overview.cached_entry("cnn-digits"))[0] == "features.3"
    mlp = overview.cached_entry("mlp-cancer")
    assert "grad_cam" not in saliency.available_methods(mlp)
    assert "guided_backprop" not in saliency.available_methods(overview.cached_entry("lstm-sentiment"))
    with pytest.raises(UnknownNameError, match="grad_cam"):
        saliency.comparison(mlp, 0, ["gradient", "grad_cam"])
    with pytest.raises(InputError, match="target 5"):
        saliency.comparison(mlp, 0, ["gradient"], "class", 5)
    with pytest.raises(UnknownNameError, match="objective"):
        saliency.comparison(mlp, 0, ["gradient"], "latent")


def _share_on_truth(values: torch.Tensor, truth: torch.Tensor) -> float:
    mag = values.abs().flatten(1)
    return float(((mag * truth.flatten(1)).sum(1) / mag.sum(1).clamp_min(1e-12)).mean())


@pytest.mark.parametrize("name", ["cnn-shapes", "lstm-sentiment"])
def test_integrated_gradients_land_on_the_ground_truth(name):
    """The synthetic sets know where the evidence is: |IG| concentrates there, far beyond
    the share of the input the ground truth covers."""
    entry = overview.cached_entry(name)
    x, truth = entry.test[0][:100], entry.truth[:100].float()
    a = interp.explain(entry.model, x, "predicted", "integrated_gradients", steps=32)
    share, area = _share_on_truth(a.values, truth), float(truth.flatten(1).mean())
    assert share > 2 * area, (share, area)
