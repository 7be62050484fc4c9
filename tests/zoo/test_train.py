"""Zoo training: deterministic under a seed, and writes loadable weights with a true card."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo import train as ztrain
from zoo.evaluate import compare, metrics

pytestmark = pytest.mark.slow


def _state(full):
    return {k: v.clone() for k, v in full.state_dict().items()}


@pytest.mark.parametrize("name", ["mlp-cancer", "lstm-sentiment", "vae-digits"])
def test_same_seed_same_weights(name):
    a, rec_a = ztrain.fit(name, epochs=2, progress=False)
    b, _ = ztrain.fit(name, epochs=2, progress=False)
    c, _ = ztrain.fit(name, epochs=2, seed=1, progress=False)
    sa, sb, sc = _state(a), _state(b), _state(c)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert rec_a["seed"] == 0 and rec_a["epochs"] == 2


@pytest.mark.parametrize("epochs", [0, -3, 2.5])
def test_bad_epochs_are_refused(epochs):
    from interp.errors import InterpError

    with pytest.raises(InterpError, match="epochs must be a positive integer"):
        ztrain.fit("mlp-cancer", epochs=epochs, progress=False)


def test_train_writes_weights_and_card_that_load(tmp_path):
    card = ztrain.train("mlp-cancer", epochs=3, weights_dir=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp-cancer.json", "mlp-cancer.safetensors"]
    entry = zoo.load("mlp-cancer", tmp_path)
    assert entry.card["training"]["epochs"] == 3
    fresh = metrics(entry.kind, entry.full, entry.model, entry.dataset)
    assert compare(card["metrics"], fresh) == []


def test_shipped_weights_are_reproduced_by_training():
    """Retraining the tabular MLP with its card's settings gives the shipped weights again."""
    shipped = zoo.load("mlp-cancer")
    if shipped.card["training"]["threads"] != torch.get_num_threads():
        pytest.skip("bit-identical only with the thread count used for the shipped weights")
    full, _ = ztrain.fit("mlp-cancer", progress=False)
    for k, v in shipped.full.state_dict().items():
        torch.testing.assert_close(full.state_dict()[k], v, rtol=1e-5, atol=1e-6)
