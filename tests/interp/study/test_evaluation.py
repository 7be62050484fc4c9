"""The evaluation of zoo subjects (what the Evaluation view and the reports show): every
method that applies scored by every metric, the numbers interp.evaluate's own, read back
from disk unchanged, the figures drawn, the model untouched; bad settings are InterpErrors."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
import torch

import interp
import zoo
from interp.errors import UnknownNameError
from interp.study import evaluation as ev
from interp.study import saliency
from tests.conftest import assert_untouched, fresh_subject, snapshot, subject_modules


@pytest.mark.parametrize("name", zoo.names())
def test_every_entry_is_scored_by_every_metric(name, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))  # computed here (other tests' reports keep theirs)
    entry = fresh_subject(name)
    watched = subject_modules(entry)
    before = [snapshot(m) for m in watched]
    seen = []
    r = ev.result(entry, progress=lambda done, total: seen.append((done, total)))
    methods, metrics = ev.methods(entry), ev.metrics(entry)
    assert r.methods[:len(methods)] == tuple(methods) and set(r.metrics) == set(metrics)
    n = min(ev.SAMPLES, len(entry.inputs))
    for m in methods:
        for k in metrics:
            values = r.per_sample[(m, k)]
            expected = min(n, ev.RANDOMISED_SAMPLES) if k == "randomisation" else n
            assert values.shape == (expected,) and torch.isfinite(values).all(), (m, k)
    assert seen and seen[-1][0] == seen[-1][1] and all(a <= b for (a, _), (b, _) in zip(seen, seen[1:]))
    figs = ev.dataset_figures(entry, r, "insertion")
    assert {"leaderboard", "curves", "randomisation", "randomisation-maps", "agreement"} <= set(figs)
    assert all(isinstance(f, go.Figure) for f in figs.values())
    assert isinstance(ev.sample_figure(entry, 1, "deletion"), go.Figure)
    for m, b in zip(watched, before):
        assert_untouched(m, b)


def test_the_numbers_are_interp_evaluates_own_and_come_back_from_disk():
    entry = zoo.subject("mlp-cancer")
    r = ev.result(entry)
    model = saliency.fresh_model(entry, "class")
    x = entry.inputs[:ev.SAMPLES]
    direct = interp.evaluate(model, x, methods=["integrated_gradients", "lrp:epsilon"], metrics=["deletion", "aopc"],
                             steps=ev.STEPS, seed=ev.SEED)
    for key in [("integrated_gradients", "deletion"), ("lrp:epsilon", "aopc")]:
        torch.testing.assert_close(r.per_sample[key], direct.per_sample[key])
    again = ev.cached(fresh_subject("mlp-cancer"))  # a new subject: nothing in memory, read from disk
    assert again is not None and again.methods == r.methods
    for key, values in r.per_sample.items():
        assert torch.equal(again.per_sample[key], values), key
    assert torch.equal(again.randomisations["saliency"].examples, r.randomisations["saliency"].examples)
    assert ev.cached(entry, "mean") is None  # another baseline is another result


def test_the_methods_fit_the_model():
    cnn, transformer, ae = (zoo.subject(n) for n in ("cnn-shapes", "transformer-sentiment", "autoencoder-digits"))
    assert {"grad_cam", "lrp:epsilon_plus_flat", "lrp:epsilon_gamma_box", "lrp:alpha2_beta1"} <= set(
        ev.methods(cnn))
    assert {"lrp:attnlrp", "lrp:cp_lrp", "lrp:epsilon"} <= set(ev.methods(transformer))
    assert "grad_cam" not in ev.methods(transformer)
    assert not [m for m in ev.methods(ae) if m.startswith("lrp:")]  # the reconstruction error: no LRP
    assert "mass_accuracy" in ev.metrics(cnn) and "mass_accuracy" not in ev.metrics(zoo.subject("cnn-digits"))
    assert [v for v, _ in ev.baselines(transformer)] == ["pad"]


def test_bad_settings_are_named():
    entry = zoo.subject("mlp-cancer")
    with pytest.raises(UnknownNameError, match="blur"):
        ev.request(entry, "blur")  # images only
    with pytest.raises(UnknownNameError, match="curve"):
        ev.sample_figure(entry, 0, "sideways")


def test_other_ground_truth_or_reference_is_another_result(tmp_path, monkeypatch):
    from torch import nn

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 36, 2)).eval()
    x, y = torch.rand(12, 1, 6, 6), torch.arange(12) % 2
    truth = torch.zeros(12, 6, 6, dtype=torch.bool)
    truth[:, 1:4, 1:4] = True

    def subject(**kw):
        return interp.Subject(model, (x, y), name="tiny", **kw)

    first = ev.result(subject(truth=truth))
    assert ev.cached(subject(truth=truth)) is not None  # the same: read back
    assert ev.cached(subject(truth=~truth)) is None  # other regions: other scores
    assert ev.cached(subject(truth=truth, reference=torch.rand(20, 1, 6, 6))) is None  # the mean baseline reads it
    assert first.per_sample[("saliency", "mass_accuracy")].shape == (12,)
