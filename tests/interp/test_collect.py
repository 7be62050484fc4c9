"""interp.collect and interp.store: values, cache hits and misses, refusals, atomicity, memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import interp
from interp.errors import InputError, ModelError, StoreError, UnknownNameError
from tests.conftest import assert_untouched, snapshot


class Counting(nn.Module):
    """Wraps a model and counts its forward calls on data (so a cache hit is proven, not
    assumed); collect's probe of batch axes (two or three copies of one sample) is not counted."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.probes = 0

    def forward(self, x):
        if len(x) in (2, 3) and bool((x == x[:1]).all()):
            self.probes += 1
        else:
            self.calls += 1
        return self.inner(x)


class FailsOnBatch(nn.Module):
    def __init__(self, inner: nn.Module, batch: int):
        super().__init__()
        self.inner, self.batch, self.seen = inner, batch, 0

    def forward(self, x):
        if not (len(x) in (2, 3) and bool((x == x[:1]).all())):  # collect's probe of batch axes: not a batch
            self.seen += 1
        if self.seen == self.batch:
            raise RuntimeError("interrupted")
        return self.inner(x)


@pytest.fixture
def cnn():
    from zoo.models import CNN

    torch.manual_seed(0)
    return CNN(1, 8, 10).eval()


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(70, 1, 8, 8, generator=g), torch.randint(0, 10, (70,), generator=g)


def test_stored_values_equal_a_manual_forward(cnn, images, tmp_path):
    x, y = images
    before = snapshot(cnn)
    col = interp.collect(cnn, x, store=tmp_path, labels=y, batch_size=32, progress=False)
    assert not col.hit and col.n == 70
    with torch.no_grad():
        f0 = cnn.features[0](x)
        f4 = cnn.features(x)
        logits = cnn(x)
    np.testing.assert_allclose(col["features.0"], f0.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(col["features.4"], f4.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(col["classifier.3"], logits.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(col.labels, y.numpy())
    np.testing.assert_array_equal(col.sample_ids, np.arange(70))
    assert col.channels_first("features.0") and not col.channels_first("classifier.1")
    assert isinstance(col["features.0"], np.memmap)
    meta = col.meta
    assert meta["model"]["name"] == "CNN" and meta["model"]["weights"] and meta["n"] == 70
    assert meta["outputs"]["features.4"]["shape"] == [32, 4, 4]
    assert meta["outputs"]["features.4"]["layer"] == "features.4"
    assert_untouched(cnn, before)


def test_reduce_and_batch_axes_are_stored_batch_first(tmp_path):
    from zoo.models import LSTMClassifier

    torch.manual_seed(0)
    lstm = LSTMClassifier(30, 2).eval()
    tokens = torch.randint(0, 30, (40, 9))
    col = interp.collect(lstm, tokens, store=tmp_path, batch_size=16, progress=False)
    with torch.no_grad():
        out, (h, c) = lstm.lstm(lstm.embedding(tokens))
    np.testing.assert_allclose(col["lstm.h"], h.transpose(0, 1).numpy(), atol=1e-6)  # (n, layers, hidden)
    np.testing.assert_allclose(col["lstm.out"], out.numpy(), atol=1e-6)
    mean = interp.collect(lstm, tokens, store=tmp_path, reduce="mean", progress=False)
    np.testing.assert_allclose(mean["lstm.out"], out.mean(1).numpy(), atol=1e-6)
    assert mean.path != col.path


def test_second_call_is_a_hit_and_runs_no_forward(cnn, images, tmp_path):
    model = Counting(cnn)
    x, y = images
    first = interp.collect(model, x, store=tmp_path, labels=y, batch_size=32, progress=False)
    assert model.calls == 3 and not first.hit
    again = interp.collect(model, x, store=tmp_path, labels=y, batch_size=32, progress=False)
    assert model.calls == 3 and again.hit and again.path == first.path
    np.testing.assert_array_equal(again["inner.features.2"], first["inner.features.2"])
    interp.collect(model, x, store=tmp_path, labels=y, batch_size=64, progress=False)  # batch size: same data
    assert model.calls == 3
    interp.collect(model, x, store=tmp_path, labels=y, progress=False, refresh=True)
    assert model.calls == 4


def test_changed_weights_data_or_layers_are_misses(cnn, images, tmp_path):
    model = Counting(cnn)
    x, y = images
    first = interp.collect(model, x, store=tmp_path, progress=False)
    with torch.no_grad():
        cnn.classifier[3].bias += 1.0
    changed = interp.collect(model, x, store=tmp_path, progress=False)
    assert model.calls == 2 and not changed.hit and changed.path != first.path
    assert changed.meta["model"]["weights"] != first.meta["model"]["weights"]
    np.testing.assert_allclose(changed["inner.classifier.3"], first["inner.classifier.3"] + 1.0, atol=1e-5)
    interp.collect(model, x[:-1], store=tmp_path, progress=False)
    interp.collect(model, x, "inner.features.*", store=tmp_path, progress=False)
    interp.collect(model, x, store=tmp_path, reduce="max", progress=False)
    assert model.calls == 5
    assert len(list((tmp_path / "Counting").iterdir())) == 6  # model.json + 5 entries


def test_interrupted_collect_leaves_nothing_half_written(cnn, images, tmp_path):
    x, _ = images
    failing = FailsOnBatch(cnn, batch=2)
    before = snapshot(failing)
    with pytest.raises(ModelError, match="interrupted") as raised:  # the model's own failure, blamed on it
        interp.collect(failing, x, store=tmp_path, batch_size=16, progress=False, name="m")
    assert isinstance(raised.value.__cause__, RuntimeError)  # torch's (here the model's) exception kept
    assert_untouched(failing, before)
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["model.json"]  # no entry, no temp folder
    failing.batch = -1  # now it works: the retry computes, it does not find a broken entry
    col = interp.collect(failing, x, store=tmp_path, batch_size=16, progress=False, name="m")
    assert not col.hit and col.n == 70


def test_stale_temp_folder_of_a_dead_run_is_removed(cnn, images, tmp_path):
    x, _ = images
    interp.collect(cnn, x, store=tmp_path, progress=False, name="m")
    dead = tmp_path / "m" / ".tmp-abc-999999999-xyz"
    dead.mkdir()
    (dead / "half.bin").write_bytes(b"123")
    interp.collect(cnn, x, "features.0", store=tmp_path, progress=False, name="m")
    assert not dead.exists()


def test_store_of_another_model_under_the_same_name_is_refused(cnn, images, tmp_path):
    x, _ = images
    interp.collect(cnn, x, store=tmp_path, progress=False, name="shared")
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with pytest.raises(StoreError, match="different model named 'shared'.*pass another name="):
        interp.collect(other, x, store=tmp_path, progress=False, name="shared")
    interp.collect(other, x, store=tmp_path, progress=False, name="other")  # the way out works


def test_tampered_entry_is_never_reused(cnn, images, tmp_path):
    x, _ = images
    counting = Counting(cnn)
    col = interp.collect(counting, x, store=tmp_path, progress=False)
    meta = json.loads((col.path / "meta.json").read_text())
    meta["identity"]["weights"] = "0" * 32
    (col.path / "meta.json").write_text(json.dumps(meta))
    with pytest.warns(RuntimeWarning, match="written for other inputs.*computing it again"):
        again = interp.collect(counting, x, store=tmp_path, progress=False)
    assert not again.hit and counting.calls == 2
    np.testing.assert_allclose(again["inner.features.0"], cnn.features[0](x).detach().numpy(), atol=1e-6)


def test_damaged_arrays_are_recomputed_with_a_warning_even_at_the_same_size(cnn, images, tmp_path):
    x, _ = images
    counting = Counting(cnn)
    first = interp.collect(counting, x, store=tmp_path, progress=False)
    expected = np.array(first["inner.features.0"])
    target = first.path / first.meta["outputs"]["inner.features.0"]["file"]
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0xFF  # one flipped byte: same size, other content
    target.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match="does not match the hash.*computing it again"):
        again = interp.collect(counting, x, store=tmp_path, progress=False)
    assert not again.hit and counting.calls == 2
    np.testing.assert_array_equal(again["inner.features.0"], expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert interp.collect(counting, x, store=tmp_path, progress=False).hit  # repaired: a plain hit again
    target.write_bytes(b"short")
    with pytest.warns(RuntimeWarning, match="wrong size"):
        assert not interp.collect(counting, x, store=tmp_path, progress=False).hit
    assert counting.calls == 3


def test_an_edited_forward_is_a_miss(images, tmp_path):
    x, _ = images

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(64, 3)

        def forward(self, x):
            return self.lin(x.flatten(1))

    torch.manual_seed(0)
    net = Net().eval()
    first = interp.collect(net, x, "model", store=tmp_path, progress=False, name="net")
    assert interp.collect(net, x, "model", store=tmp_path, progress=False, name="net").hit

    def edited(self, x):  # the class edited in place (a notebook cell run again): same weights, other code
        return self.lin(x.flatten(1)) * 2

    Net.forward = edited
    other = interp.collect(net, x, "model", store=tmp_path, progress=False, name="net")
    assert not other.hit and other.path != first.path
    assert first.meta["model"]["architecture"] == other.meta["model"]["architecture"]
    assert first.meta["model"]["code"] != other.meta["model"]["code"]
    np.testing.assert_allclose(other["model"], 2 * first["model"], rtol=1e-6)


def test_store_that_cannot_be_written(cnn, images, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot write to store"):
        interp.collect(cnn, images[0], store=blocker / "store", progress=False)


def test_bad_inputs(cnn, images, tmp_path):
    x, y = images
    before = snapshot(cnn)
    with pytest.raises(UnknownNameError, match="did you mean 'features.0'"):
        interp.collect(cnn, x, "feature.0", store=tmp_path, progress=False)
    bad = x.clone()
    bad[3, 0, 2, 2] = float("nan")
    with pytest.raises(InputError, match="1 NaN or infinite"):
        interp.collect(cnn, bad, store=tmp_path, progress=False)
    with pytest.raises(InputError, match="5 labels for 70 samples"):
        interp.collect(cnn, x, store=tmp_path, labels=y[:5], progress=False)
    with pytest.raises(InputError, match="labels=y.*never takes labels from their position"):
        interp.collect(cnn, (x, y), store=tmp_path, progress=False)  # the old (inputs, labels) habit: said, not guessed
    with pytest.raises(InputError, match="dataset="):
        interp.collect(cnn, [x[:10], x[10:]], store=tmp_path, progress=False)
    with pytest.raises(InputError, match="reduce failed"):
        interp.collect(cnn, x, store=tmp_path, reduce=lambda t: t.nope, progress=False)
    with pytest.raises(InputError, match="batch_size"):
        interp.collect(cnn, x, store=tmp_path, batch_size=0, progress=False)
    with pytest.raises(InputError, match="sample_ids"):
        interp.collect(cnn, x, store=tmp_path, sample_ids=range(3), progress=False)
    with pytest.raises(InputError, match="shape"):
        interp.collect(cnn, torch.rand(4, 3, 8, 8), store=tmp_path, progress=False)
    assert_untouched(cnn, before)
    assert not any((tmp_path / "CNN").glob(".tmp-*"))


def test_iterable_batches_with_a_dataset_name(cnn, images, tmp_path):
    x, y = images
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=20)
    ids = [f"img{i}" for i in range(70)]
    col = interp.collect(cnn, loader, store=tmp_path, dataset="my-images", labels=1, progress=False, sample_ids=ids)
    np.testing.assert_array_equal(col.labels, y.numpy())
    assert col.sample_ids[3] == "img3"
    direct = interp.collect(cnn, x, store=tmp_path, progress=False)
    np.testing.assert_allclose(col["features.3"], direct["features.3"], atol=1e-6)
    assert interp.collect(cnn, loader, store=tmp_path, dataset="my-images", labels=1, progress=False,
                          sample_ids=ids).hit
    other = interp.collect(cnn, loader, store=tmp_path, dataset="my-images", labels=-1, progress=False)
    assert not other.hit and other.sample_ids[3] == 3  # other ids: not the stored ones


def test_outputs_without_a_row_per_sample_are_skipped(tmp_path):
    from zoo.models import TransformerClassifier

    model = TransformerClassifier(20, 2, max_len=6).eval()
    col = interp.collect(model, torch.randint(0, 20, (9, 6)), store=tmp_path, progress=False)
    assert "embedding.positions" in col.meta["skipped"]  # (6, d): one row per position, not per sample
    assert col["blocks.0.attn.softmax"].shape == (9, 2, 6, 6)


@pytest.mark.slow
def test_memory_stays_bounded_whatever_the_dataset_size(tmp_path):
    """Peak RSS of a collect run barely grows with the number of samples (batches stream to disk)."""
    script = textwrap.dedent("""
        import resource, sys, torch, zoo, interp
        n = int(sys.argv[1])
        model = zoo.load("cnn-digits").model
        x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        col = interp.collect(model, x, "features.*", store=sys.argv[2], progress=False)
        assert col.n == n
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
    """)
    growth = {}
    for n in (2_000, 32_000):
        r = subprocess.run([sys.executable, "-c", script, str(n), str(tmp_path / str(n))],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        growth[n] = float(r.stdout.split()[-1])
    written = 30_000 * (16 * 64 * 2 + 32 * 64 * 2 + 32 * 16) * 4 / 2**20  # MB more data for 32k
    assert written > 700
    assert growth[32_000] - growth[2_000] < 64, growth  # MB: far below what was written


def test_refresh_replaces_the_entry(cnn, images, tmp_path):
    x, _ = images
    first = interp.collect(cnn, x, store=tmp_path, progress=False)
    counting = Counting(cnn)
    interp.collect(counting, x, store=tmp_path, progress=False)
    again = interp.collect(counting, x, store=tmp_path, progress=False, refresh=True)
    assert counting.calls == 2 and not again.hit  # refresh recomputes what was stored
    repaired = interp.collect(cnn, x, store=tmp_path, progress=False, refresh=True)
    assert repaired.path == first.path
    np.testing.assert_allclose(interp.collect(cnn, x, store=tmp_path, progress=False)["features.0"],
                               cnn.features[0](x).detach().numpy(), atol=1e-6)
    assert not any(p.name.startswith((".tmp-", ".old-")) for p in (tmp_path / "CNN").iterdir())


def test_no_stale_hit_for_mode_named_tensors_or_another_function(cnn, images, tmp_path):
    x, _ = images
    model = Counting(cnn)
    interp.collect(model, x, store=tmp_path, progress=False, dataset="test")
    model.inner.classifier[1].train()  # a module in train mode (no batch-norm: allowed, another entry)
    assert not interp.collect(model, x, store=tmp_path, progress=False, dataset="test").hit  # train mode
    model.eval()
    assert not interp.collect(model, x * 2, store=tmp_path, progress=False, dataset="test").hit  # same name
    mean = interp.collect(model, x, store=tmp_path, progress=False,
                          reduce=lambda t: t.mean((2, 3)) if t.ndim == 4 else t)
    top = interp.collect(model, x, store=tmp_path, progress=False,
                         reduce=lambda t: t.amax((2, 3)) if t.ndim == 4 else t)
    assert not top.hit and not np.allclose(top["inner.features.0"], mean["inner.features.0"])
    np.testing.assert_allclose(top["inner.features.0"], cnn.features[0](x).amax((2, 3)).detach().numpy(), atol=1e-6)
