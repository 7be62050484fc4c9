"""interp.results: every sensitivity result survives a round trip to disk; damaged,
foreign or unknown files are refused with an InterpError and never unpickled."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch
from torch import nn

import interp
from interp import results
from interp.errors import InterpError


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return type(b) is tuple and len(a) == len(b) and all(map(_equal, a, b))
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(_equal(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    return a == b and type(a) is type(b)


@pytest.fixture(scope="module")
def computed():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(72, 2)).eval()
    x, image = torch.randn(6, 4), torch.randn(3, 1, 6, 6)
    return [
        interp.sensitivity(mlp, x, "predicted", "noise", draws=2, labels=torch.zeros(6, dtype=torch.long)),
        interp.sensitivity(mlp, x, "predicted", "noise", draws=2),  # accuracy None
        interp.sensitivity(mlp, x, "predicted", "layer", draws=2, ablate=0.5),
        interp.sensitivity(mlp, x, "predicted", "occlusion", feature=2, grid=4),
        interp.sensitivity(cnn, image, "predicted", "occlusion", window=2),
        interp.sensitivity(mlp, x, "predicted", "explanation", methods=("gradient",), composites=(), draws=2),
        # nested results and (method, metric) keys
        interp.evaluate(mlp, x, methods=["saliency", "lrp:epsilon"], steps=3,
                        metrics=["deletion", "insertion", "aopc", "randomisation"]),
    ]


def test_every_result_round_trips(computed, tmp_path):
    for i, r in enumerate(computed):
        path = results.save(r, tmp_path / f"{i}.safetensors")
        back = results.load(path)
        assert type(back) is type(r)
        for f in dataclasses.fields(r):
            assert _equal(getattr(back, f.name), getattr(r, f.name)), (type(r).__name__, f.name)


def test_bad_files_are_refused(computed, tmp_path):
    with pytest.raises(InterpError, match="no result file"):
        results.load(tmp_path / "missing.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(results.save(computed[0], tmp_path / "whole.safetensors").read_bytes()[:50])
    with pytest.raises(InterpError, match="not a readable result file"):
        results.load(cut)
    pickled = tmp_path / "pickled.safetensors"
    pickled.write_bytes(pickle.dumps(computed[0]))  # never unpickled: refused as unreadable
    with pytest.raises(InterpError, match="not a readable result file"):
        results.load(pickled)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))  # weights, not a result
    with pytest.raises(InterpError, match="not an interp result file"):
        results.load(foreign)
    renamed = tmp_path / "renamed.safetensors"
    save_file({"w": torch.zeros(2)}, str(renamed), metadata={"format": results.FORMAT, "type": "os.system",
                                                              "fields": "{}"})
    with pytest.raises(InterpError, match="not an interp result file"):
        results.load(renamed)
    damaged = tmp_path / "damaged.safetensors"
    save_file({"scales": torch.zeros(2)}, str(damaged),
              metadata={"format": results.FORMAT, "type": "NoiseSensitivity", "fields": "{}"})
    with pytest.raises(InterpError, match="damaged NoiseSensitivity"):
        results.load(damaged)


def test_only_registered_results_are_saved(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Other:
        values: torch.Tensor

    with pytest.raises(InterpError, match="cannot save a Other"):
        results.save(Other(torch.zeros(1)), tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_a_result_type_registers_itself_where_it_is_defined(tmp_path):
    @results.register
    @dataclasses.dataclass(frozen=True)
    class OwnResult:  # as interp.sensitivity and interp.projection register theirs
        values: torch.Tensor
        layer: str

    saved = results.save(OwnResult(torch.arange(3.0), "fc"), tmp_path / "own.safetensors")
    back = results.load(saved)
    assert type(back) is OwnResult and torch.equal(back.values, torch.arange(3.0)) and back.layer == "fc"
    assert results.register(OwnResult) is OwnResult  # again (a reloaded module): fine

    @dataclasses.dataclass(frozen=True)
    class LayerProjection:  # another class under a registered name: files could not tell them apart
        values: torch.Tensor

    with pytest.raises(TypeError, match="registered already"):
        results.register(LayerProjection)

    @dataclasses.dataclass
    class Mutable:
        values: torch.Tensor

    with pytest.raises(TypeError, match="not a frozen dataclass"):
        results.register(Mutable)


def test_the_store_keeps_results_by_model_and_request(computed, tmp_path):
    from interp.errors import StoreError
    from interp.store import Store, model_identity

    store = Store(tmp_path)
    model = nn.Sequential(nn.Linear(4, 3))
    identity = model_identity(model, "m")
    calls = []

    def compute():
        calls.append(1)
        return computed[0]

    first = store.result(identity, {"kind": "noise"}, compute)
    again = store.result(identity, {"kind": "noise"}, compute)
    assert len(calls) == 1 and torch.equal(first.score_change, again.score_change)  # the second is read back
    store.result(identity, {"kind": "noise", "draws": 3}, compute)  # another request: computed
    with torch.no_grad():
        model[0].weight += 1
    store.result(model_identity(model, "m"), {"kind": "noise"}, compute)  # other weights: computed
    assert len(calls) == 3
    path = store.result_path(identity, {"kind": "noise"})
    assert path.parent == tmp_path / "m" / "results" and store.entries(identity) == []
    good = path.read_bytes()
    path.write_bytes(b"cut")
    with pytest.warns(RuntimeWarning, match="not a readable result file.*computing it again"):
        assert store.cached_result(identity, {"kind": "noise"}) is None  # unreadable: a miss
    with pytest.warns(RuntimeWarning):
        store.result(identity, {"kind": "noise"}, compute)
    assert len(calls) == 4 and store.cached_result(identity, {"kind": "noise"}) is not None
    damaged = bytearray(good)
    damaged[-3] ^= 0xFF  # a flipped byte in the tensors: same size, still a valid safetensors file
    path.write_bytes(bytes(damaged))
    with pytest.warns(RuntimeWarning, match="do not match the hash"):
        assert store.cached_result(identity, {"kind": "noise"}) is None
    with pytest.warns(RuntimeWarning):
        store.result(identity, {"kind": "noise"}, compute)
    assert len(calls) == 5
    other = model_identity(nn.Sequential(nn.Linear(4, 5)), "m")  # same name, another architecture
    with pytest.raises(StoreError, match="different model"):
        store.result(other, {"kind": "noise"}, compute)
