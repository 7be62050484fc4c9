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
    card = ztrain.train("mlp-cancer", epochs=3, weights_dir=tmp_path, progress=False, keep_below_bar=True)
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


def _shipped_bytes():
    return {p.name: p.read_bytes() for p in sorted(zoo.WEIGHTS_DIR.iterdir())}


def test_training_never_touches_the_shipped_weights_unless_forced(tmp_path, monkeypatch):
    """`interp zoo train cnn-digits --epochs 1` writes to the user's folder (under the
    cache root), refuses to save a model below its bar, and leaves zoo/weights (and so
    `git status`) as it was; the shipped folder is written only with --force."""
    import subprocess

    from interp.cli import main
    from interp.errors import InterpError

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    before = _shipped_bytes()
    assert main(["zoo", "train", "cnn-digits", "--epochs", "1", "--quiet"]) == 1  # below its bar: not saved
    assert not (tmp_path / "cache" / "zoo-weights" / "cnn-digits.safetensors").exists()
    assert main(["zoo", "train", "mlp-cancer", "--epochs", "1", "--quiet", "--keep-below-bar"]) == 1
    written = tmp_path / "cache" / "zoo-weights"
    assert sorted(p.name for p in written.iterdir()) == ["mlp-cancer.json", "mlp-cancer.safetensors"]
    assert zoo.load("mlp-cancer", written).card["training"]["epochs"] == 1
    with pytest.raises(InterpError, match="shipped weights.*--force"):
        ztrain.train("mlp-cancer", epochs=1, weights_dir=zoo.WEIGHTS_DIR, progress=False)
    assert main(["zoo", "train", "mlp-cancer", "--epochs", "1", "--weights-dir", str(zoo.WEIGHTS_DIR),
                 "--quiet"]) == 2
    assert _shipped_bytes() == before
    root = zoo.WEIGHTS_DIR.parent.parent
    if (root / ".git").exists():
        status = subprocess.run(["git", "status", "--porcelain", "--", "zoo/weights"], cwd=root,
                                capture_output=True, text=True, check=True).stdout
        assert status == ""


def test_a_model_below_its_bar_is_not_saved(tmp_path):
    with pytest.raises(ztrain.BelowBar, match="below its quality bar.*--keep-below-bar"):
        ztrain.train("cnn-digits", epochs=1, weights_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
