"""Saliency of zoo subjects: every kind explained, figures built, and on the synthetic sets
with known ground truth the explanations land where the evidence is."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
import torch

import interp
import zoo
from interp.errors import InputError, UnknownNameError
from interp.study import overview, saliency
from tests.conftest import assert_untouched, snapshot, subject_modules


@pytest.mark.parametrize("name", zoo.names())
def test_comparison_for_every_entry(name):
    subject = zoo.subject(name)
    # the user's modules, the shared working copy and saliency's own copy are left as they were
    watched = [*subject_modules(subject), saliency.explained_model(subject, saliency.objective(subject, None).key)]
    before = [snapshot(m) for m in watched]
    indices = overview.showcase_samples(subject)[:2]
    grid, summary, attrs = saliency.comparison(subject, indices)
    assert isinstance(grid, go.Figure) and isinstance(summary, go.Figure)
    assert [a.method for a in attrs] == saliency.default_methods(subject)
    per_index = 2 if subject.task == "generation" else 1  # the GAN adds a generated sample
    for a in attrs:
        assert a.values.shape == (len(indices) * per_index, *subject.inputs.shape[1:])
        assert torch.isfinite(a.values).all()
    for m, b in zip(watched, before):
        assert_untouched(m, b)


def test_objectives_by_kind():
    assert [o.key for o in saliency.objectives(zoo.subject("cnn-digits"))] == ["class"]
    vae = zoo.subject("vae-digits")
    keys = [o.key for o in saliency.objectives(vae)]
    assert keys == ["error", "latent"]
    latent = saliency.objective(vae, "latent")
    assert [v for _, v in latent.targets] == list(range(8))
    x = vae.inputs[:3]
    with torch.no_grad():
        mu, _ = overview.parts(vae)["encoder"](x)
        assert torch.equal(saliency.explained_model(vae, "latent")(x), mu)
    a = saliency.explain_batch(vae, x, ["gradient"], "latent", 2)[0]
    assert torch.equal(a.target, torch.full((3,), 2))
    assert [o.key for o in saliency.objectives(zoo.subject("gan-digits"))] == ["real"]


def test_methods_offered_fit_the_model():
    assert "grad_cam" in saliency.available_methods(zoo.subject("cnn-digits"))
    assert saliency.cam_layers(zoo.subject("cnn-digits"))[0] == "features.3"
    mlp = zoo.subject("mlp-cancer")
    assert "grad_cam" not in saliency.available_methods(mlp)
    assert "guided_backprop" not in saliency.available_methods(zoo.subject("lstm-sentiment"))
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
    subject = zoo.subject(name)
    x, truth = subject.inputs[:100], subject.truth[:100].float()
    assert truth.shape == x.shape  # one mask value per input value (cnn-shapes: one channel)
    a = interp.explain(overview.model(subject), x, "predicted", "integrated_gradients", steps=32)
    share, area = _share_on_truth(a.values, truth), float(truth.flatten(1).mean())
    assert share > 2 * area, (share, area)
