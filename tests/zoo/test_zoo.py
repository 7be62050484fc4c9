"""The shipped zoo: every entry loads, matches its card, clears its quality bar; bad files fail clearly."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import zoo
from interp.errors import UnknownNameError, WeightsError
from zoo.evaluate import check_bars, compare, metrics

NAMES = zoo.names()


def test_one_model_of_every_kind():
    assert len(NAMES) >= 7
    assert {zoo.spec(n).kind for n in NAMES} == set(zoo.KINDS)


@pytest.mark.parametrize("name", NAMES)
def test_entry_loads_and_matches_its_card(name):
    entry = zoo.load(name)
    card = entry.card
    assert card["name"] == name and card["kind"] == zoo.spec(name).kind
    for key in ("task", "input_shape", "input_dtype", "training", "metrics", "dataset", "weights"):
        assert key in card, key
    assert not entry.model.training and not entry.full.training
    x, y = entry.test
    assert list(x.shape[1:]) == card["input_shape"]
    assert str(x.dtype) == f"torch.{card['input_dtype']}"
    assert card["dataset"]["n_test"] == len(y) and card["dataset"]["n_train"] == len(entry.train[1])
    assert card["parameters"] == sum(p.numel() for p in entry.full.parameters())
    if entry.is_classifier:
        assert entry.model(x[:3]).shape == (3, len(card["classes"]))
    for key in ("classes", "feature_names", "vocab"):
        names = getattr(entry.dataset, key)
        assert (list(names) if names else None) == card.get(key)
    # metrics recomputed from the shipped weights equal the card's
    fresh = metrics(entry.kind, entry.full, entry.model, entry.dataset)
    assert compare(card["metrics"], fresh) == []
    assert check_bars(entry.kind, fresh) == []


def test_parts_and_analysed_model():
    gan = zoo.load("gan-digits")
    assert set(gan.parts) == {"generator", "discriminator"} and gan.model is gan.parts["discriminator"]
    z = torch.randn(4, gan.parts["generator"].latent)
    assert gan.model(gan.parts["generator"](z)).shape == (4, 1)
    for name in ("autoencoder-digits", "vae-digits"):
        e = zoo.load(name)
        assert set(e.parts) == {"encoder", "decoder"}
        x = e.test[0][:4]
        assert e.model(x).shape == x.shape


def test_quality_bars_are_real():
    cards = {n: zoo.load(n).card["metrics"] for n in NAMES}
    assert cards["mlp-cancer"]["accuracy"] >= 0.93
    for n in ("cnn-digits", "cnn-shapes", "lstm-sentiment", "transformer-sentiment"):
        assert cards[n]["accuracy"] >= 0.95, n
    for n in ("autoencoder-digits", "vae-digits"):
        assert cards[n]["mse"] < 0.5 * cards[n]["baseline_mse"], n
    gan = cards["gan-digits"]
    assert gan["gen_confidence"] >= 0.8
    assert gan["disc_auc_real_vs_shuffled"] >= 0.9  # the discriminator knows digit structure
    assert 0.5 < gan["disc_auc_real_vs_generated"] < 1.0
    assert check_bars("cnn", {"accuracy": 0.5}) == ["accuracy=0.5 (needs >= 0.95)"]


def test_weights_are_small_safetensors_with_matching_hashes():
    total = 0
    for name in NAMES:
        path = zoo.weights_path(name)
        card = json.loads(zoo.card_path(name).read_text())
        total += path.stat().st_size
        assert card["weights"]["bytes"] == path.stat().st_size
        assert card["weights"]["sha256"] == zoo._sha256(path)
        assert not list(zoo.WEIGHTS_DIR.glob("*.pt*")) and not list(zoo.WEIGHTS_DIR.glob("*.pkl"))
    assert total < 20 * 2**20


def test_predict_by_task():
    cnn = zoo.load("cnn-digits")
    p = cnn.predict(cnn.test[0][:5])
    torch.testing.assert_close(p.sum(-1), torch.ones(5))
    gan = zoo.load("gan-digits")
    s = gan.predict(gan.test[0][:5])
    assert s.shape == (5,) and ((s >= 0) & (s <= 1)).all()


# ------------------------------------------------------------------ bad input

@pytest.fixture
def weights_copy(tmp_path):
    for name in ("mlp-cancer",):
        for path in (zoo.weights_path(name), zoo.card_path(name)):
            shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_unknown_name_lists_valid_ones():
    with pytest.raises(UnknownNameError) as err:
        zoo.load("cnn-digit")
    assert "did you mean 'cnn-digits'" in str(err.value)
    assert all(n in str(err.value) for n in NAMES)


def test_missing_weights_file_is_named(weights_copy):
    path = weights_copy / "mlp-cancer.safetensors"
    path.unlink()
    with pytest.raises(WeightsError, match="missing") as err:
        zoo.load("mlp-cancer", weights_copy)
    assert str(path) in str(err.value)


def test_truncated_weights_file_is_named(weights_copy):
    path = weights_copy / "mlp-cancer.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated or not a safetensors") as err:
        zoo.load("mlp-cancer", weights_copy)
    assert str(path) in str(err.value)


def test_pickle_is_refused_not_unpickled(weights_copy):
    path = weights_copy / "mlp-cancer.safetensors"
    state = zoo.load("mlp-cancer").full.state_dict()
    torch.save(state, path)  # a pickle-based file under the safetensors name
    with pytest.raises(WeightsError, match="not a safetensors") as err:
        zoo.load("mlp-cancer", weights_copy)
    assert str(path) in str(err.value)


def test_modified_weights_fail_the_card_hash(weights_copy):
    from safetensors.torch import save_file

    path = weights_copy / "mlp-cancer.safetensors"
    state = {k: v.clone() for k, v in zoo.load("mlp-cancer").full.state_dict().items()}
    state["net.0.weight"][0, 0] += 1.0
    save_file(state, str(path))
    with pytest.raises(WeightsError, match="sha256") as err:
        zoo.load("mlp-cancer", weights_copy)
    assert str(path) in str(err.value)


def test_weights_of_another_model_do_not_fit(weights_copy):
    path = weights_copy / "mlp-cancer.safetensors"
    shutil.copy(zoo.weights_path("cnn-digits"), path)
    card = json.loads((weights_copy / "mlp-cancer.json").read_text())
    card["weights"]["sha256"] = zoo._sha256(path)
    (weights_copy / "mlp-cancer.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="does not fit model 'mlp-cancer'"):
        zoo.load("mlp-cancer", weights_copy)


def test_missing_or_broken_card(weights_copy):
    card = weights_copy / "mlp-cancer.json"
    card.write_text("{not json")
    with pytest.raises(WeightsError, match="not valid JSON"):
        zoo.load("mlp-cancer", weights_copy)
    card.write_text("[1, 2]")
    with pytest.raises(WeightsError, match="incomplete"):
        zoo.load("mlp-cancer", weights_copy)
    card.write_text(json.dumps({"name": "mlp-cancer", "weights": {}}))
    with pytest.raises(WeightsError, match="incomplete"):
        zoo.load("mlp-cancer", weights_copy)
    card.unlink()
    with pytest.raises(WeightsError, match="model card .* is missing"):
        zoo.load("mlp-cancer", weights_copy)
