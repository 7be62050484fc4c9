"""interp.study.activations: the test-set collection behind the Activations view and report section."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import zoo
from interp.errors import InputError, UnknownNameError
from interp.study import activations, overview
from tests.conftest import fresh_subject


@pytest.fixture(autouse=True)
def _own_store(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))


@pytest.mark.parametrize("name, expected", [
    ("cnn-digits", "features.3"), ("lstm-sentiment", "lstm.out"),
    ("transformer-sentiment", "blocks.0.attn.softmax"), ("mlp-cancer", "net.3"),
])
def test_default_output_and_its_figure(name, expected):
    subject = zoo.subject(name)
    assert activations.default_output(subject) == expected
    fig = activations.sample_figure(subject, expected, 3, unit=0)
    kind = {"cnn-digits": "channel", "lstm-sentiment": "time step", "transformer-sentiment": "head",
            "mlp-cancer": "unit"}[name]
    assert kind in fig.to_json()


def test_collection_matches_the_model_and_is_reused():
    subject = fresh_subject("cnn-digits")  # collected into this test's store
    col = activations.test_collection(subject)
    with torch.no_grad():
        logits = overview.model(subject)(subject.inputs)
    np.testing.assert_allclose(col["classifier.3"], logits.numpy(), atol=1e-5)
    again = fresh_subject("cnn-digits")
    assert activations.test_collection(again).hit  # a restart reads the store back


def test_top_samples_are_those_with_the_highest_unit_value():
    subject = zoo.subject("cnn-digits")
    out = "classifier.2"
    unit = activations.most_active_unit(subject, out)
    idx, vals = activations.top_samples(subject, out, unit)
    v = activations.values(subject, out)[:, unit]
    assert vals[0] == pytest.approx(v.max()) and sorted(v)[-len(idx):][::-1] == pytest.approx(list(vals))
    fig = activations.top_figure(subject, out, unit)
    assert [int(np.asarray(t.customdata).flat[0]) for t in fig.data] == list(idx)


def test_attention_units_are_key_positions():
    subject = zoo.subject("transformer-sentiment")
    s = activations.stats(subject, "blocks.1.attn.softmax")
    assert s.units == 12  # positions, not the 2 heads
    assert s.mean.sum() == pytest.approx(1.0, rel=1e-5)  # attention received sums to one


def test_every_model_every_output_draws():
    for name in zoo.names():
        subject = zoo.subject(name)
        for out in activations.outputs(subject):
            assert isinstance(activations.sample_figure(subject, out, 0), go.Figure)
        assert isinstance(activations.stats_table_figure(subject), go.Figure)


def test_bad_requests():
    subject = zoo.subject("cnn-digits")
    with pytest.raises(UnknownNameError, match="did you mean"):
        activations.sample_figure(subject, "features.33", 0)
    with pytest.raises(InputError, match="index"):
        activations.sample_figure(subject, "features.3", 10_000)
    with pytest.raises(InputError, match="unit"):
        activations.stats_figure(subject, "features.3", 32)


def _is_red(colour: str) -> bool:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return r > 1.5 * max(g, b)


def test_dead_units_are_red_as_the_caption_says():
    from interp import figures
    from interp.stats import LayerStats

    frac_zero = np.array([1.0, 0.0, 0.995, 0.5])
    s = LayerStats(output="h", n_samples=200, sample_shape=(4,), channels_first=False, mean=np.zeros(4),
                   std=np.zeros(4), frac_zero=frac_zero, max=np.zeros(4), top_indices=np.zeros((4, 1), int),
                   top_values=np.zeros((4, 1)), class_means=None, class_counts=None)
    fig = figures.unit_statistics(s)
    assert "red" in fig.layout.annotations[1].text and "2 dead" in fig.layout.title.text
    colours = list(fig.data[1].marker.color)
    assert [_is_red(c) for c in colours] == [True, False, True, False]


@pytest.mark.parametrize("name, code", [("autoencoder-digits", "encoder.3"), ("vae-digits", "encoder.mu")])
def test_reconstruction_default_is_the_code(name, code):
    subject = zoo.subject(name)
    assert subject.task == "reconstruction" and "encoder" in subject.parts
    assert activations.default_output(subject) == code  # not the decoder's 1-channel image


def test_reconstruction_without_encoder_defaults_to_the_deepest_hidden_layer():
    from interp import Subject

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 3, padding=1))
    subject = Subject(net, torch.rand(16, 1, 8, 8), task="reconstruction", name="plain-reconstruction")
    assert not subject.parts
    assert activations.default_output(subject) == "1"  # the last hidden map, not the output image "2"


def test_vae_names_agree_with_latent_space():
    from interp.study import latent

    subject = zoo.subject("vae-digits")
    assert set(latent.layers(subject)) <= set(activations.outputs(subject))
    assert activations.default_output(subject) == latent.default_layer(subject) == "encoder.mu"


def test_top_figure_title_says_what_it_shows_not_what_a_click_does():
    """The report shows the same figure: the dashboard's caption says what a click does."""
    fig = activations.top_figure(zoo.subject("cnn-digits"), "classifier.2", 5)
    assert fig.layout.title.text == "top 9 samples for classifier.2, unit 5"
