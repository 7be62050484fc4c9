"""LRP of zoo subjects: every kind explained, the grid's relevance is interp.lrp's, the
objectives fit each kind, overrides reach the plan, and bad names are InterpErrors."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import interp
import zoo
from interp.errors import InterpError, UnknownNameError
from interp.study import lrp, overview, saliency
from tests.conftest import assert_untouched, snapshot, subject_modules


@pytest.mark.parametrize("name", zoo.names())
def test_comparison_for_every_entry(name):
    entry = zoo.subject(name)
    watched = subject_modules(entry)  # the user's modules and the shared working copy
    before = [snapshot(m) for m in watched]
    indices = overview.showcase_samples(entry)[:2]
    c = lrp.comparison(entry, indices)
    for fig in (c.grid, c.flow, c.layer_maps, c.plan, c.summary):
        assert isinstance(fig, go.Figure)
    assert [a.method for a in c.attributions] == ["lrp", *lrp.DEFAULT_SALIENCY]
    per_index = 2 if entry.task == "generation" else 1  # the GAN adds a generated sample
    assert c.result.relevance.shape == (len(indices) * per_index, *entry.inputs.shape[1:])
    assert torch.isfinite(c.result.relevance).all()
    assert c.result.composite == lrp.default_composite(entry)
    assert len(c.titles) == len(indices) * per_index
    assert c.has_layer_maps == (zoo.spec(name).kind in ("cnn", "rnn", "transformer"))  # convolution, sequence layers
    for m, b in zip(watched, before):
        assert_untouched(m, b)


def test_default_composite_by_first_layer():
    """Flat on the first layer where it reads part of the input; not where it is dense over
    all of it, since the flat rule then gives every input the same relevance."""
    for name in zoo.names():
        kind = zoo.spec(name).kind
        expected = {"cnn": lrp.DEFAULT_COMPOSITE, "rnn": lrp.TOKEN_COMPOSITE,
                    "transformer": lrp.TOKEN_COMPOSITE}.get(kind, lrp.DENSE_COMPOSITE)
        assert lrp.default_composite(zoo.subject(name)) == expected, name
    mlp = zoo.subject("mlp-cancer")
    uniform = lrp.comparison(mlp, 0, lrp.DEFAULT_COMPOSITE, saliency=()).result.relevance
    assert torch.allclose(uniform, uniform[0, 0].expand_as(uniform))
    informative = lrp.comparison(mlp, 0, saliency=()).result.relevance
    assert informative.std() > 0.1 * informative.abs().max()


def test_objectives_by_kind():
    keys = {name: [o.key for o in lrp.objectives(zoo.subject(name))] for name in zoo.names()}
    for name, found in keys.items():
        kind = zoo.spec(name).kind
        expected = {"autoencoder": ["latent"], "vae": ["latent"], "gan": ["real"]}.get(kind, ["class"])
        assert found == expected, name
    # the reconstruction error squares its terms: LRP does not offer it, and says why
    vae = zoo.subject("vae-digits")
    assert "error" in [o.key for o in saliency.objectives(vae)]
    with pytest.raises(UnknownNameError, match="squares"):
        lrp.comparison(vae, 0, key="error")
    assert [v for _, v in lrp.objective(vae, "latent").targets] == list(range(8))


def test_vae_explains_the_latent_mean():
    vae = zoo.subject("vae-digits")
    c = lrp.comparison(vae, 3, target=2, saliency=())
    x = vae.inputs[3:4]
    with torch.no_grad():
        mu, _ = overview.parts(vae)["encoder"](x)
    assert torch.allclose(c.result.score, mu[:, 2])
    assert torch.equal(c.result.target, torch.tensor([2]))
    assert [a.method for a in c.attributions] == ["lrp"]


def test_gan_explains_a_real_and_a_generated_sample():
    gan = zoo.subject("gan-digits")
    c = lrp.comparison(gan, 1)
    x, titles, _ = saliency.inputs(gan, 1)
    assert list(c.titles) == titles and titles[0] == "real #1" and titles[1].startswith("generated")
    with torch.no_grad():
        assert torch.allclose(c.result.score, overview.model(gan)(x)[:, 0], atol=1e-5)


def _image_panel(grid: go.Figure, column: int) -> np.ndarray:
    """The raw values of an image grid's first row, method ``column`` (0: the first method):
    the overlays are the heatmaps that carry raw values in customdata."""
    overlays = [t for t in grid.data if isinstance(t, go.Heatmap) and t.customdata is not None]
    return np.asarray(overlays[column].customdata, dtype=float)


@pytest.mark.parametrize("name", ["cnn-digits", "lstm-sentiment", "mlp-cancer"])
def test_grid_shows_what_interp_lrp_computes(name):
    entry = zoo.subject(name)
    c = lrp.comparison(entry, 5, "epsilon", target=1)
    x = entry.inputs[5:6]
    expected = interp.lrp(saliency.fresh_model(entry, "class"), x, 1, "epsilon")
    assert torch.allclose(c.result.relevance, expected.relevance, atol=1e-6)
    assert torch.allclose(c.attributions[0].values, expected.relevance, atol=1e-6)
    if entry.modality == "image":
        shown = _image_panel(c.grid, 0)
        assert np.allclose(shown, expected.relevance[0].sum(0).numpy(), atol=1e-6)
    else:  # one heatmap per sample, a row per method, LRP first
        shown = np.asarray(c.grid.data[0].customdata, dtype=float)[0]
        assert np.allclose(shown, expected.relevance[0].reshape(-1).numpy(), atol=1e-6)
    assert c.grid.data[0].y is None or c.grid.data[0].y[0].startswith("lrp")


def test_overrides_change_the_plan():
    entry = zoo.subject("cnn-digits")
    layers = dict(lrp.overridable_layers(entry))
    assert layers == {"features.0": "Conv2d", "features.2": "Conv2d", "classifier.1": "Linear",
                      "classifier.3": "Linear"}
    default = lrp.plan(entry)
    assert default.rule_of("features.2") == "z+"
    changed = lrp.plan(entry, "epsilon_plus_flat", {"features.2": "gamma"})
    assert changed.rule_of("features.2") == "gamma (0.25)"
    assert changed.rule_of("features.0") == default.rule_of("features.0")  # the others keep theirs
    c = lrp.comparison(entry, 0, overrides={"features.2": "gamma"}, saliency=())
    assert c.result.plan.rule_of("features.2") == "gamma (0.25)"
    assert c.result.layers["features.2"].rule == "gamma (0.25)"
    assert not torch.allclose(c.result.relevance, lrp.comparison(entry, 0, saliency=()).result.relevance)


def test_the_lstm_unrolled_layers_can_be_overridden():
    entry = zoo.subject("lstm-sentiment")
    assert [p for p, _ in lrp.overridable_layers(entry)] == ["lstm.input_l0", "lstm.hidden_l0", "head"]
    assert lrp.plan(entry, None, {"lstm.hidden_l0": "zplus"}).rule_of("lstm.hidden_l0") == "z+"


def test_composites_change_the_plan():
    entry = zoo.subject("cnn-digits")
    assert set(lrp.composites()) >= {"epsilon_plus_flat", "epsilon", "alpha2_beta1", "lrp0"}
    assert lrp.plan(entry, "epsilon_plus_flat").rule_of("features.0") == "flat"
    assert lrp.plan(entry, "alpha2_beta1").rule_of("features.2").startswith("alpha2")


@pytest.mark.parametrize("kwargs, match", [
    ({"composite": "epsilon_plsu_flat"}, "composite"),
    ({"overrides": {"features.2": "gama"}}, "LRP rule"),
    ({"overrides": {"features.9": "gamma"}}, "layer of cnn-digits"),
    ({"overrides": {"features.1": "gamma"}}, "layer of cnn-digits"),  # a ReLU has no weights
    ({"target": 11}, "target 11"),
    ({"saliency": ("gradient", "nope")}, "attribution method"),
])
def test_bad_names_are_interp_errors(kwargs, match):
    entry = zoo.subject("cnn-digits")
    with pytest.raises(InterpError, match=match):
        lrp.comparison(entry, 0, **kwargs)


def test_an_input_layer_rule_on_a_hidden_layer_is_refused_in_words():
    entry = zoo.subject("cnn-digits")
    assert lrp.plan(entry, None, {"features.2": "flat"}).rule_of("features.2") == "flat"
    with pytest.raises(InterpError, match="input-layer rule"):
        lrp.comparison(entry, 0, overrides={"features.2": "flat"}, saliency=())


def test_rule_names_are_the_engines():
    assert set(lrp.rules()) == set(interp.lrp.rules.WEIGHTED_RULES)
    assert lrp.rules()["gamma"] == "gamma (0.25)"


def test_a_large_conservation_gap_is_flagged_with_what_absorbed_it():
    import zoo
    from interp.study import lrp as study_lrp

    lstm = study_lrp.comparison(zoo.subject("lstm-sentiment"), 0, saliency=()).result
    note = study_lrp.gap_note(lstm)
    gap = float((lstm.score[0] - lstm.total[0]) / lstm.score[0])
    assert gap > study_lrp.GAP_WARNING and f"falls short of the score by {gap:.0%}" in note
    top = max(lstm.layers.items(), key=lambda kv: abs(float(kv[1].absorbed[0])))
    assert f"{top[0]} absorbed" in note.split("(")[1].split(";")[0]  # the largest taker named first
    cnn = study_lrp.comparison(zoo.subject("cnn-digits"), 0, saliency=()).result
    assert abs(float(cnn.score[0] - cnn.total[0])) <= study_lrp.GAP_WARNING * abs(float(cnn.score[0]))
    assert study_lrp.gap_note(cnn) == ""  # conserved within the threshold: nothing to flag


def test_layer_names_are_the_subjects_in_every_view():
    """The VAE's encoder is explained alone (its code), inside a wrapper that named its
    layers "model.body.1" where the Activations and Latent views say "encoder.body.1"."""
    from interp.study import activations, latent

    vae = zoo.subject("vae-digits")
    names = [path for path, _ in lrp.overridable_layers(vae)]
    assert names == ["encoder.body.1", "encoder.mu", "encoder.logvar"]
    assert set(names) <= set(activations.outputs(vae)) and set(names) <= set(latent.layers(vae)) | {"encoder.logvar"}
    c = lrp.comparison(vae, 0)
    assert [n for n in c.result.layers if not n.startswith("encoder.")] == []
    assert all(r.name == "(model)" or not r.name.startswith("model.") for r in c.result.plan.rows)
    assert "encoder.body.1" in str(c.flow.to_json()) and "model.body" not in str(c.flow.to_json())
    # an override named as the views name it reaches the layer
    assert lrp.plan(vae, "epsilon", {"encoder.body.1": "zplus"}).rule_of("encoder.body.1") == "z+"
    r = lrp.comparison(vae, 0, "epsilon", overrides={"encoder.body.1": "zplus"}).result
    assert r.layers["encoder.body.1"].rule == "z+"


def test_sensitivity_names_layers_as_the_other_views():
    from interp.study import activations
    from interp.study import sensitivity as sens

    vae = zoo.subject("vae-digits")
    s = sens.settings(vae, kind="layer", objective="error")
    text = sens.sample_figure(vae, 0, s).to_json()
    assert "model.encoder" not in text and "encoder.body.1" in text
    assert set(activations.outputs(vae)) >= {"encoder.body.1", "decoder.0"}


def test_a_gap_on_a_score_of_zero_is_told_in_amounts():
    """A score of exactly 0 with relevance left over has no share to give: the note says
    the amounts (it divided by the score and raised ZeroDivisionError)."""
    from types import SimpleNamespace

    layer = SimpleNamespace(absorbed=torch.tensor([-0.5]))
    result = SimpleNamespace(score=torch.tensor([0.0]), total=torch.tensor([0.5]), layers={"fc": layer},
                             outside_layers=torch.tensor([0.0]))
    note = lrp.gap_note(result)
    assert "the score is 0 and Σ relevance is 0.5" in note and "fc created 0.5" in note
    result.total = torch.tensor([1e-9])
    assert lrp.gap_note(result) == ""  # rounding, not a gap


def test_composites_offered_fit_the_models_layers():
    """The views offer the composites that mean something for the model: no convolution
    rules (z+, flat, z^B, alpha-beta) on a dense model, no AttnLRP or CP-LRP without attention."""
    conv = {"epsilon_plus_flat", "epsilon_gamma_box", "alpha2_beta1", "alpha1_beta0"}
    attention = {"attnlrp", "cp_lrp"}
    cnn = lrp.fitting_composites(zoo.subject("cnn-digits"))
    assert cnn[0] == lrp.default_composite(zoo.subject("cnn-digits")) and conv <= set(cnn) and not attention & set(cnn)
    mlp = lrp.fitting_composites(zoo.subject("mlp-cancer"))
    assert mlp == ["epsilon_plus", "epsilon", "lrp0"]
    words = lrp.fitting_composites(zoo.subject("transformer-sentiment"))
    assert attention <= set(words) and not conv & set(words)
    assert not (conv | attention) & set(lrp.fitting_composites(zoo.subject("lstm-sentiment")))

    class Attending(torch.nn.Module):  # a user's model: attention by name, no convolution
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Linear(4, 8)
            self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
            self.head = torch.nn.Linear(8, 2)

        def forward(self, x):
            h = self.embed(x)
            return self.head(self.attn(h, h, h, need_weights=False)[0].mean(1))

    own = interp.Subject(Attending().eval(), torch.rand(6, 3, 4), name="attending")
    assert attention <= set(lrp.fitting_composites(own)) and not conv & set(lrp.fitting_composites(own))
