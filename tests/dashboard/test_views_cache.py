"""The dashboard's per-sample cache and its URL state, without a browser."""

from __future__ import annotations

import threading

import plotly.graph_objects as go
import pytest
import torch
from torch import nn

import interp
from dashboard.views import saliency as saliency_view
from dashboard.views import state
from dashboard.views_cache import ViewCache
from interp.errors import InputError


def _subject(seed: int = 0, name: str = "tiny") -> interp.Subject:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(1))
    return interp.Subject(model, (x, torch.randint(0, 3, (12,), generator=torch.Generator().manual_seed(2))),
                          name=name, classes=["a", "b", "c"])


def _figure(n: int) -> dict:
    return {"figure": go.Figure(go.Scatter(x=list(range(n)), y=[float(i) for i in range(n)])), "text": f"n={n}"}


def test_computed_once_then_from_memory_then_from_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    subject, calls = _subject(), []

    def compute():
        calls.append(1)
        return _figure(5)

    cache = ViewCache()
    first = cache.get(subject, "v", {"index": 3}, compute)
    again = cache.get(subject, "v", {"index": 3}, compute)
    assert first == again and len(calls) == 1 and cache.hits == 1 and cache.misses == 1
    assert first["text"] == "n=5" and list(first["figure"]["data"][0]["x"]) == [0, 1, 2, 3, 4]
    assert go.Figure(first["figure"]).data[0].y == (0.0, 1.0, 2.0, 3.0, 4.0)  # a figure again
    # another process (a new cache) reads it from disk; other options are a miss
    other = ViewCache()
    assert other.get(subject, "v", {"index": 3}, compute) == first and len(calls) == 1 and other.disk_hits == 1
    other.get(subject, "v", {"index": 4}, compute)
    assert len(calls) == 2
    # other weights under the same name: a miss, never a stale hit
    ViewCache().get(_subject(seed=5), "v", {"index": 3}, compute)
    assert len(calls) == 3


def test_a_damaged_file_is_computed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    subject, calls = _subject(), []
    ViewCache().get(subject, "v", {"index": 0}, lambda: calls.append(1) or _figure(3))
    (found,) = list(tmp_path.rglob("*.view.json"))
    found.write_text('{"figure": {"data": [')  # cut short
    assert ViewCache().get(subject, "v", {"index": 0}, lambda: calls.append(1) or _figure(3))["text"] == "n=3"
    assert len(calls) == 2


def test_memory_is_bounded_least_recently_used_first_out(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    subject = _subject()
    one = len(ViewCache(disk=False).get(subject, "v", {"i": -1}, lambda: _figure(50)).__repr__())
    cache = ViewCache(max_bytes=4 * one, disk=False)
    for i in range(12):
        cache.get(subject, "v", {"i": i}, lambda: _figure(50))
        cache.get(subject, "v", {"i": 0}, lambda: _figure(50))  # kept warm: the most recently used
    assert cache.bytes <= cache.max_bytes and 2 <= len(cache) < 12
    calls = []
    cache.get(subject, "v", {"i": 0}, lambda: calls.append(1) or _figure(50))
    assert calls == []  # the warm one stayed
    cache.get(subject, "v", {"i": 1}, lambda: calls.append(1) or _figure(50))
    assert calls == [1]  # an old one went
    huge = ViewCache(max_bytes=10, disk=False)
    assert huge.get(subject, "v", {"i": 0}, lambda: _figure(50))["text"] == "n=50" and len(huge) == 0


def test_the_same_request_at_once_is_computed_once(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    subject, calls, started, release = _subject(), [], threading.Event(), threading.Event()
    cache = ViewCache()

    def slow():
        calls.append(1)
        started.set()
        release.wait(10)
        return _figure(4)

    out = []
    first = threading.Thread(target=lambda: out.append(cache.get(subject, "v", {"i": 1}, slow)))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=lambda: out.append(cache.get(subject, "v", {"i": 1}, slow)))
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert len(calls) == 1 and len(out) == 2 and out[0] == out[1]


def test_errors_are_not_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    subject, cache = _subject(), ViewCache()

    def fail():
        raise InputError("no")

    with pytest.raises(InputError):
        cache.get(subject, "v", {"i": 1}, fail)
    assert cache.get(subject, "v", {"i": 1}, lambda: _figure(2))["text"] == "n=2"


def test_url_state_round_trips_and_is_checked():
    from dashboard.catalog import Catalog

    asked = {"model": "tiny", "sample": 7, "view": "lrp", "methods": ["gradient", "smoothgrad"],
             "composite": "epsilon", "layer": "1", "unit": 5}
    search = state.encode(asked)
    assert search.startswith("?model=tiny&sample=7&view=lrp&methods=gradient,smoothgrad&")
    assert state.parse(search) == asked
    assert state.parse("?sample=x&unit=-1&view=&other=1&model=a&model=b") == {"model": "b"}  # the last one counts
    assert state.encode({"model": "m", "sample": None, "methods": []}) == "?model=m"
    catalog = Catalog([_subject()])
    views = ["overview", "lrp"]
    good, problems = state.checked(catalog, views, asked)
    assert good == {"model": "tiny", "view": "lrp", "sample": 7, "methods": ["gradient", "smoothgrad"],
                    "composite": "epsilon", "layer": "1", "unit": 5} and problems == []
    bad = {"model": "tiny", "sample": 12, "view": "nope", "methods": ["gradient", "magic"], "composite": "x",
           "layer": "1", "unit": 8}
    good, problems = state.checked(catalog, views, bad)
    assert good == {"model": "tiny", "methods": ["gradient"], "layer": "1"}
    assert len(problems) == 5 and any("sample 12 is out of range (the test set has 12)" in p for p in problems)
    assert any("unit 8 is out of range (1 has 8)" in p for p in problems)
    assert state.checked(catalog, views, {"model": "other", "sample": 1}) == ({}, [
        "no model 'other' here (the link names it)"])


def test_url_state_names_the_views_own_controls():
    from dashboard.views import activations, lrp

    assert (state.METHODS, state.COMPOSITE, state.LAYER, state.UNIT) == (
        saliency_view.METHODS, lrp.COMPOSITE, activations.LAYER, activations.UNIT)
    wanted = {"state": {"model": "m", "sample": 3}, "at": 1.0}
    assert state.asked(wanted, None, "m", "sample") == 3
    assert state.asked(wanted, 1.0, "m", "sample") is None  # applied: the user has the controls
    assert state.asked(wanted, None, "other", "sample") is None


def test_names_and_edits_are_in_the_key(tmp_path, monkeypatch):
    from interp.study import whatif

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    calls = []
    subject = _subject()
    ViewCache().get(subject, "v", {"i": 0}, lambda: calls.append(1) or _figure(2))
    renamed = _subject()
    renamed.classes = ["x", "y", "z"]  # the same weights and data, other class names: other figures
    ViewCache().get(renamed, "v", {"i": 0}, lambda: calls.append(1) or _figure(2))
    assert len(calls) == 2
    # the same edited values made from two test samples: two figures (each titled by its sample), no files
    files = set(tmp_path.rglob("*.view.json"))
    cache = ViewCache()
    for index in (3, 8):
        cache.get(whatif.edited(subject, index, subject.inputs[0] * 0), "v", {"i": 0},
                  lambda: calls.append(1) or _figure(2))
    assert len(calls) == 4 and set(tmp_path.rglob("*.view.json")) == files


def test_a_full_disk_still_serves(tmp_path, monkeypatch):
    import dashboard.views_cache as module

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))

    def full(*_args, **_kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module, "write_text", full)
    assert ViewCache().get(_subject(), "v", {"i": 0}, lambda: _figure(2))["text"] == "n=2"


def test_a_gans_generator_and_judge_are_in_the_key():
    """The GAN's discriminator is the model; its generator and the judge run beside it:
    other weights there are another key, not a stale hit."""
    import copy

    import zoo
    from dashboard.views_cache import _about

    gan = zoo.subject("gan-digits")
    cache = ViewCache(disk=False)
    key = cache.key(gan, "latent-generative", {"index": 0})
    other = copy.copy(gan)  # the same discriminator and data
    other.memo = {}
    other.parts = {**gan.parts, "generator": copy.deepcopy(gan.parts["generator"])}
    assert cache.key(other, "latent-generative", {"index": 0}) == key  # the same weights: the same key
    with torch.no_grad():
        next(other.parts["generator"].parameters()).add_(0.01)
    other.memo = {}
    assert cache.key(other, "latent-generative", {"index": 0}) != key
    judged = copy.copy(gan)
    judged.memo, judged.judge = {}, copy.deepcopy(gan.judge)
    with torch.no_grad():
        next(judged.judge.parameters()).mul_(1.5)
    assert cache.key(judged, "latent-generative", {"index": 0}) != key
    assert set(_about(gan)["beside"]) == {"generator", "judge"}
    assert "beside" not in _about(_subject())  # a plain model: nothing beside it


def test_view_files_on_disk_stay_within_their_bound(tmp_path, monkeypatch):
    """Beyond max_disk_bytes the least recently used view files go (down to 80%); one read
    since keeps a file; the analyses' other results are never touched."""
    import os

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    subject = _subject()
    writer = ViewCache(max_disk_bytes=10 ** 9)
    for i in range(10):
        writer.get(subject, "v", {"index": i}, lambda: _figure(40))
    files = sorted(tmp_path.rglob("*.view.json"))
    assert len(files) == 10
    each = files[0].stat().st_size
    for i, path in enumerate(sorted(files, key=lambda p: p.stat().st_mtime)):
        os.utime(path, (1000 + i, 1000 + i))  # written one after another, index order unknown: set it
    by_age = sorted(files, key=lambda p: p.stat().st_mtime)
    other = tmp_path / "an-analysis-result.safetensors"
    other.write_bytes(b"x" * (20 * each))
    reader = ViewCache(max_disk_bytes=int(each * 6.5))
    oldest = by_age[0].parent / by_age[0].name.removesuffix(".view.json")
    assert reader._read(oldest) is not None  # the oldest read now: it is the newest
    gone = reader.prune()
    left = set(tmp_path.rglob("*.view.json"))
    assert gone == 5 and len(left) == 5 and sum(p.stat().st_size for p in left) <= 0.8 * each * 6.5
    assert by_age[0] in left and by_age[-1] in left and not set(by_age[1:6]) & left
    assert other.exists()
    # writing prunes by itself: a small bound holds after more writes
    small = ViewCache(max_disk_bytes=each * 3)
    for i in range(20, 26):
        small.get(subject, "v", {"index": i}, lambda: _figure(40))
    assert sum(p.stat().st_size for p in tmp_path.rglob("*.view.json")) <= each * 3
