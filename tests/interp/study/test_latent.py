"""Latent maps of zoo subjects: the default layer is the deepest hidden one, every subject
gets a map coloured as it can be, a second request is read back, and the selection and
layer-by-layer figures draw."""

from __future__ import annotations

import dataclasses

import plotly.graph_objects as go
import pytest
import torch

import zoo
from interp.errors import InterpError
from interp.study import latent, overview
from tests.conftest import fresh_subject

DEEPEST = {"mlp-cancer": "net.3", "cnn-digits": "classifier.2", "cnn-shapes": "classifier.2",
           "lstm-sentiment": "lstm.h", "transformer-sentiment": "ln", "autoencoder-digits": "encoder.3",
           "vae-digits": "encoder.mu", "gan-digits": "net.4"}  # the input of the last layer


@pytest.mark.parametrize("name", zoo.names())
def test_every_entry_maps_its_deepest_hidden_layer(name):
    entry = zoo.subject(name)
    assert latent.default_layer(entry) == DEEPEST[name]
    r = latent.projection(entry, None, "pca")
    assert r.coordinates.shape == (len(entry.inputs), 2) and r.layer == DEEPEST[name]
    assert bool(torch.isfinite(r.coordinates).all()) and 0 <= r.trustworthiness <= 1
    for colour in latent.colourings(entry):
        fig = latent.map_figure(entry, r, colour, selected=[3])
        assert isinstance(fig, go.Figure)
        points = sum(len(t.customdata) for t in fig.data if t.name != "selected")
        assert points == len(entry.inputs)
    assert set(latent.colourings(entry)) == ({"label", "prediction", "correct", "unit", "attribution"}
                                             if entry.is_classifier
                                             else {"label", "unit"})


def test_a_trained_classifier_separates_classes_more_deeply():
    entry = zoo.subject("cnn-shapes")
    first = latent.projection(entry, "features.0", "pca")
    deep = latent.projection(entry, "classifier.2", "pca")
    assert deep.agreement_original > first.agreement_original + 0.2  # 0.999 against 0.55 when measured


def test_a_second_request_is_read_back_from_the_store():
    entry = fresh_subject("mlp-cancer")
    first = latent.projection(entry, "net.1", "tsne")
    again = latent.projection(fresh_subject("mlp-cancer"), "net.1", "tsne")  # a new subject: from disk
    assert torch.equal(first.coordinates, again.coordinates) and again.seconds == first.seconds


def test_hover_selection_and_layer_by_layer():
    entry = zoo.subject("lstm-sentiment")
    texts = latent.hover_texts(entry)
    y = int(entry.labels[0])
    assert texts[0].startswith(f"sample 0 · {entry.classes[y]}") and "<br>" in texts[0]  # the sentence
    assert isinstance(latent.selection_figure(entry, [4, 2, 9]), go.Figure)
    fig = latent.layer_by_layer(zoo.subject("cnn-digits"))
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("features.0") and titles[-1].startswith("classifier.2")


@pytest.mark.parametrize("args, match", [
    (("nope", "pca"), "unknown layer output"),
    (("net.1", "isomap"), "unknown projection method"),
])
def test_bad_choices_are_refused(args, match):
    with pytest.raises(InterpError, match=match):
        latent.projection(zoo.subject("mlp-cancer"), *args)
    with pytest.raises(InterpError, match="n_components must be 2 or 3"):
        latent.projection(zoo.subject("mlp-cancer"), "net.1", "pca", 4)


def test_generative_views_of_the_zoo():
    vae = zoo.subject("vae-digits")
    kl = latent.kl(vae)
    units = latent.walked_units(vae)
    assert set(units) == set(torch.topk(kl, 2).indices.tolist())  # the two most informative units
    t = latent.traversal(vae, 3)
    assert t.outputs.shape == (latent.TRAVERSAL_STEPS, latent.TRAVERSAL_STEPS, *vae.inputs.shape[1:])
    frames = t.outputs[latent.TRAVERSAL_STEPS // 2].flatten(1)  # along the second unit, through the code
    steps = (frames[1:] - frames[:-1]).norm(dim=1)
    assert float(steps.min()) > 0 and float(steps.max()) < 3 * float(steps.mean())  # varies, smoothly
    assert set(latent.generative_figures(vae, 3)) == {"traversal", "between", "kl"}
    other = latent.partner(vae, 3)
    assert int(vae.labels[other]) != int(vae.labels[3])
    path = latent.between(vae, 3, other)
    torch.testing.assert_close(path.outputs[0], overview.parts(vae)["decoder"](latent._codes(vae)[0][3:4])[0])
    assert set(latent.generative_figures(zoo.subject("autoencoder-digits"), 3)) == {"traversal", "between"}
    gan = zoo.subject("gan-digits")
    p = latent.interpolation(gan, 2)
    assert p.outputs.shape == (latent.INTERPOLATION_STEPS, *gan.inputs.shape[1:]) and p.scores.shape == (9,)
    assert set(latent.generative_figures(gan, 2)) == {"interpolation"}
    # the path follows the current sample: it starts at the generated image shown beside real sample i
    for i in (2, 3, 2 + overview.N_GENERATED):
        g = overview.generated_partner(gan, i)
        torch.testing.assert_close(latent.interpolation(gan, i).outputs[0], overview.generated(gan)[g])
        torch.testing.assert_close(latent.interpolation(gan, i).outputs[-1],
                                   overview.generated(gan)[(g + 1) % overview.N_GENERATED])
    assert not torch.equal(latent.interpolation(gan, 2).outputs, latent.interpolation(gan, 3).outputs)
    assert "generated #3" in latent.generative_figures(gan, 3)["interpolation"].layout.title.text
    assert latent.generative_figures(zoo.subject("cnn-digits"), 2) == {}


def test_colouring_by_a_units_activation():
    from interp.study import activations

    entry = zoo.subject("cnn-digits")
    r = latent.projection(entry, "classifier.2", "pca")
    values, names = latent.colour_values(entry, latent.UNIT, "classifier.2", 7)
    assert names is None and list(values) == list(activations.values(entry, "classifier.2")[:, 7])
    fig = latent.map_figure(entry, r, latent.UNIT, unit=7)
    assert fig.data[0].marker.colorbar.title.text == "unit 7" and len(fig.data[0].customdata) == len(entry.inputs)
    with pytest.raises(InterpError, match="unit must be an index in \\[0, 63\\]"):
        latent.colour_values(entry, latent.UNIT, "classifier.2", 64)


def test_colouring_by_an_attribution_score():
    from interp import attribute
    from interp.study import saliency

    shapes = zoo.subject("cnn-shapes")  # ground truth: the share of attribution on it
    scores = latent.attribution_scores(shapes)
    a = attribute(saliency.explained_model(shapes, "class"), shapes.inputs[:3], "predicted",
                  "integrated_gradients", steps=latent.IG_STEPS).abs().flatten(1)
    by_hand = (a * shapes.truth[:3].flatten(1)).sum(1) / a.sum(1)
    torch.testing.assert_close(scores[:3], by_hand, rtol=1e-4, atol=1e-6)
    assert float(scores.mean()) > float(shapes.truth.float().mean())  # more than the masks' area: it finds them
    digits = zoo.subject("cnn-digits")  # no ground truth: concentration on the top 10%
    top = latent.attribution_scores(digits)
    assert bool(((top >= 0.1) & (top <= 1)).all())
    assert latent.colourings(digits)[latent.ATTRIBUTION] == "attribution on the top 10% of inputs"
    assert latent.ATTRIBUTION not in latent.colourings(zoo.subject("vae-digits"))


def test_a_map_read_from_the_store_says_so_and_keeps_its_fit_time(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))  # an empty store: the first map is fitted now
    first = fresh_subject("mlp-cancer")
    fitted = latent.projection(first, None, "pca")
    assert not latent.read_back(first, fitted)
    assert latent.fit_text(fitted, latent.read_back(first, fitted)).startswith("fitted in ")
    again = fresh_subject("mlp-cancer")
    back = latent.projection(again, None, "pca")  # a new subject: read from the store
    assert latent.read_back(again, back)
    assert back.seconds == fitted.seconds > 0  # the original fit time, kept in the stored result
    text = latent.fit_text(back, read=True)
    assert text.startswith("read from the store (fitted in ") and "0.00 s" not in text
    assert latent.fit_text(back, read=False).startswith("fitted in ")
    assert latent.fit_text(dataclasses.replace(back, seconds=0.0004), read=False) == "fitted in under 0.01 s"
    assert latent.fit_text(dataclasses.replace(back, seconds=1.234), read=True) == \
        "read from the store (fitted in 1.23 s)"


def test_the_deepest_hidden_layer_when_the_final_output_is_one_unit():
    """The GAN's discriminator ends in one logit, which is no map; the default is the layer
    before it, as the Activations view opens on, not the one before that."""
    from interp.study import activations

    gan = zoo.subject("gan-digits")
    outputs = activations.outputs(gan)
    assert latent.default_layer(gan) == outputs[-2] == activations.default_output(gan)
