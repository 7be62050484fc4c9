"""interp.figures.sensitivity: each figure plots the numbers of its sensitivity result."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from torch import nn

import interp
from interp import figures
from interp.errors import InputError
from interp.sensitivity import (
    ExplanationSensitivity,
    FeatureSweep,
    LayerSensitivity,
    NoiseSensitivity,
    OcclusionSensitivity,
)
from tests.interp.figure_checks import python_reprs, table_fits, whisker_ends


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def _y(trace) -> np.ndarray:
    return np.asarray(trace.y, dtype=float)


def _named(fig: go.Figure, name: str):
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, [t.name for t in fig.data]
    return found[0]


def _noise_result(accuracy=True) -> NoiseSensitivity:
    change = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [2.0, 6.0, 4.0]])
    return NoiseSensitivity(
        scales=torch.tensor([0.0, 0.1, 0.5]), score_change=change,
        score_change_std=torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.1, 0.2], [3.0, 1.0, 1.0]]),
        probability_change=None, agreement=torch.tensor([1.0, 0.9, 0.5]),
        accuracy=torch.tensor([0.8, 0.7, 0.4]) if accuracy else None, target=torch.tensor([0, 1, 2]),
        score=torch.tensor([1.0, 2.0, 3.0]), std=0.25, draws=7, seed=0)


# ---------------------------------------------------------------------------- noise

def test_noise_curves_mean_band_and_agreement():
    r = _noise_result()
    fig = figures.noise_curves(r)
    change = r.score_change.numpy()
    mean, spread = change.mean(1), change.std(1)
    line = _named(fig, "mean RMS score change")
    np.testing.assert_allclose(np.asarray(line.x, float), [0.0, 0.1, 0.5])
    np.testing.assert_allclose(_y(line), mean, rtol=1e-6)
    np.testing.assert_allclose(_y(_named(fig, "mean RMS score change + spread")), mean + spread, rtol=1e-6)
    np.testing.assert_allclose(_y(_named(fig, "mean RMS score change − spread")),
                               np.maximum(mean - spread, 0), rtol=1e-6)
    np.testing.assert_allclose(_y(_named(fig, "agrees with clean prediction")), [1.0, 0.9, 0.5], rtol=1e-6)
    np.testing.assert_allclose(_y(_named(fig, "accuracy")), [0.8, 0.7, 0.4], rtol=1e-6)
    assert list(fig.layout.yaxis2.range) == [0, 1.02]
    assert "std 0.25" in fig.layout.title.text and "7 draws" in fig.layout.title.text


def test_noise_curves_one_sample_uses_its_own_spread_clipped_at_zero():
    r = _noise_result(accuracy=False)
    fig = figures.noise_curves(r, sample=0)
    np.testing.assert_allclose(_y(_named(fig, "RMS score change, sample 0")), [0.0, 1.0, 2.0])
    np.testing.assert_allclose(_y(_named(fig, "RMS score change, sample 0 + spread")), [0.0, 1.5, 5.0])
    np.testing.assert_allclose(_y(_named(fig, "RMS score change, sample 0 − spread")), [0.0, 0.5, 0.0])
    assert not [t for t in fig.data if t.name == "accuracy"]


def test_noise_curves_of_a_real_result(mlp):
    x = torch.randn(6, 4)
    r = interp.sensitivity(mlp, x, "predicted", "noise", scales=(0, 0.5, 1), draws=3,
                           labels=torch.tensor([0, 1, 2, 0, 1, 2]))
    fig = figures.noise_curves(r, sample=5)
    np.testing.assert_allclose(_y(_named(fig, "RMS score change, sample 5")), r.score_change[:, 5].numpy(), rtol=1e-6)
    np.testing.assert_allclose(_y(_named(fig, "accuracy")), r.accuracy.numpy())


@pytest.mark.parametrize("bad", [3, -1, 1.0, True])
def test_noise_curves_bad_sample(bad):
    with pytest.raises(InputError, match="sample must be an index"):
        figures.noise_curves(_noise_result(), sample=bad)


def test_builders_refuse_the_wrong_result():
    with pytest.raises(InputError, match="NoiseSensitivity"):
        figures.noise_curves(_layer_result())
    with pytest.raises(InputError, match="FeatureSweep"):
        figures.ice_curves(_noise_result())


# ---------------------------------------------------------------------------- occlusion

def test_occlusion_view_image_overlays_the_map():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)).eval()
    x = torch.rand(2, 1, 6, 6)
    r = interp.sensitivity(model, x, "predicted", "occlusion", window=(2, 2), stride=(2, 2), baseline="mean")
    fig = figures.occlusion_view(x, r, "image", sample=1)
    overlay = [t for t in fig.data if isinstance(t, go.Heatmap)][-1]
    np.testing.assert_allclose(np.asarray(overlay.z, float), r.maps[1, 0].numpy(), rtol=1e-6)
    assert overlay.colorbar.title.text == "score drop"
    assert "baseline (mean)" in fig.layout.title.text and "window 2×2, stride 2×2" in fig.layout.title.text
    with pytest.raises(InputError, match="sample must be an index"):
        figures.occlusion_view(x, r, "image", sample=2)
    with pytest.raises(InputError, match="samples"):
        figures.occlusion_view(x[:1], r, "image")


def test_occlusion_view_tokens_strip():
    r = OcclusionSensitivity(maps=torch.tensor([[0.5, -1.0, 2.0]]), target=torch.tensor([1]),
                             score=torch.tensor([3.0]), baseline="0", window=1, stride=1)
    fig = figures.occlusion_view(torch.tensor([[2, 0, 1]]), r, "tokens", vocab=["a", "b", "c"])
    strip = fig.data[0]
    np.testing.assert_allclose(np.asarray(strip.z, float), [[0.5, -1.0, 2.0]])
    assert list(strip.text[0]) == ["c", "a", "b"]


# ---------------------------------------------------------------------------- feature sweep

def test_ice_curves_lines_and_partial_dependence(mlp):
    x = torch.randn(7, 4)
    r = interp.sensitivity(mlp, x, "predicted", "occlusion", feature=2, grid=5)
    fig = figures.ice_curves(r, feature_name="petal")
    ice = fig.data[:-1]
    assert len(ice) == 7
    for i, t in enumerate(ice):
        np.testing.assert_allclose(_y(t), r.curves[i].numpy(), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(t.x, float), r.grid.numpy(), rtol=1e-6)
        assert t.customdata[0] == i
    pd = fig.data[-1]
    assert pd.name == "mean (partial dependence)" and pd.line.width > ice[0].line.width
    np.testing.assert_allclose(_y(pd), r.mean.numpy(), rtol=1e-6)
    assert fig.layout.xaxis.title.text == "petal"


def test_ice_curves_max_curves_caps_lines_not_the_mean():
    curves = torch.arange(20.0).view(10, 2)
    r = FeatureSweep(feature=0, grid=torch.tensor([0.0, 1.0]), curves=curves, mean=curves.mean(0),
                     target=torch.zeros(10, dtype=torch.long))
    fig = figures.ice_curves(r, max_curves=3)
    assert len(fig.data) == 4
    np.testing.assert_allclose(_y(fig.data[-1]), [9.0, 10.0])
    assert "3 of 10" in fig.layout.title.text
    assert len(figures.ice_curves(r, max_curves=0).data) == 1
    with pytest.raises(InputError, match="max_curves"):
        figures.ice_curves(r, max_curves=-1)


# ---------------------------------------------------------------------------- layers

def _layer_result() -> LayerSensitivity:
    return LayerSensitivity(layers=("0", "lstm:out", "2"), change=torch.tensor([0.1, 0.3, 0.2]),
                            change_std=torch.tensor([0.01, 0.05, 0.02]),
                            ablation=torch.tensor([0.5, float("nan"), 0.25], dtype=torch.float64),
                            baseline=0.75, noise=0.1, draws=2, seed=0)


def test_layer_profile_bars_errors_and_missing_ablation():
    fig = figures.layer_profile(_layer_result())
    change, ablated = _named(fig, "relative change"), _named(fig, "ablated")
    assert list(change.y) == ["0", "lstm:out", "2"] and list(ablated.y) == ["0", "lstm:out", "2"]
    np.testing.assert_allclose(np.asarray(change.x, float), [0.1, 0.3, 0.2], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(change.error_x.array, float), [0.01, 0.05, 0.02], rtol=1e-6)
    assert list(ablated.x) == [0.5, None, 0.25]  # NaN: no bar, not a value
    note = _named(fig, "not ablated")
    assert list(note.y) == ["lstm:out"]
    assert fig.layout.yaxis.autorange == "reversed"  # model order from the top
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 1 and lines[0].x0 == 0.75 == lines[0].x1


def test_layer_profile_of_a_real_result(mlp):
    x = torch.randn(8, 4)
    r = interp.sensitivity(mlp, x, "predicted", "layer", draws=2, labels=torch.zeros(8, dtype=torch.long))
    fig = figures.layer_profile(r)
    np.testing.assert_allclose(np.asarray(_named(fig, "relative change").x, float), r.change.numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(_named(fig, "ablated").x, float), r.ablation.numpy(), rtol=1e-6)
    assert list(_named(fig, "ablated").y) == list(r.layers)


# ---------------------------------------------------------------------------- explanations

def test_explanation_robustness_table():
    r = ExplanationSensitivity(methods=("gradient", "lrp:epsilon"),
                               sensitivity_max=torch.tensor([[0.1, 0.3], [0.2, 0.6]]),
                               infidelity=torch.tensor([[1.0, 3.0], [0.5, 0.5]]),
                               target=torch.tensor([0, 1]), radius=0.02, draws=5, seed=0)
    fig = figures.explanation_robustness(r)
    cols = fig.data[0].cells.values
    assert list(cols[0]) == ["gradient", "lrp:epsilon"]
    assert [float(v) for v in cols[1]] == pytest.approx([0.2, 0.4])
    assert [float(v) for v in cols[2]] == pytest.approx([0.3, 0.6])
    assert [float(v) for v in cols[3]] == pytest.approx([2.0, 0.5])
    assert "radius 0.02" in fig.layout.title.text and "5 draws" in fig.layout.title.text


def test_explanation_robustness_of_a_real_result(mlp):
    x = torch.randn(3, 4)
    r = interp.sensitivity(mlp, x, "predicted", "explanation", methods=("gradient",), composites=(), draws=2)
    cols = figures.explanation_robustness(r).data[0].cells.values
    assert list(cols[0]) == ["gradient"]
    assert float(cols[1][0]) == pytest.approx(float(r.sensitivity_max.mean()), rel=1e-3)


def test_ice_curves_highlight_a_sample_and_its_value():
    curves = torch.tensor([[0.0, 1.0, 2.0], [5.0, 5.0, 5.0], [1.0, 0.0, -1.0]])
    r = FeatureSweep(feature=0, grid=torch.tensor([0.0, 1.0, 2.0]), curves=curves, mean=curves.mean(0),
                     target=torch.zeros(3, dtype=torch.long))
    fig = figures.ice_curves(r, "f", max_curves=1, highlight=2, feature_value=0.5)
    picked, value = _named(fig, "sample 2"), _named(fig, "sample 2's value")
    np.testing.assert_allclose(_y(picked), [1.0, 0.0, -1.0])  # drawn although beyond max_curves
    assert picked.customdata[0] == 2
    assert list(value.x) == [0.5] and list(value.y) == [pytest.approx(0.5)]  # on its curve
    with pytest.raises(InputError, match="sample must be an index"):
        figures.ice_curves(r, highlight=3)


def test_noise_curves_show_the_probability_change():
    r = _noise_result()
    p = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.2, 0.3], [0.5, 0.2, 0.2]])
    import dataclasses

    fig = figures.noise_curves(dataclasses.replace(r, probability_change=p))
    np.testing.assert_allclose(_y(_named(fig, "RMS probability change")), [0.0, 0.2, 0.3], rtol=1e-6)
    one = figures.noise_curves(dataclasses.replace(r, probability_change=p), sample=2)
    np.testing.assert_allclose(_y(_named(one, "RMS probability change, sample 2")), [0.0, 0.3, 0.2], rtol=1e-6)
    assert not [t for t in figures.noise_curves(r).data if "probability" in (t.name or "")]  # None: no line


# ---------------------------------------------------------------------------- honest whiskers, words, whole tables

def test_layer_profile_whiskers_stop_at_zero():
    """A relative change is a size: a spread larger than the mean ends its whisker at 0."""
    r = LayerSensitivity(layers=("0", "1"), change=torch.tensor([0.02, 0.3]), change_std=torch.tensor([0.05, 0.1]),
                         ablation=torch.tensor([0.5, 0.25], dtype=torch.float64), baseline=0.75, noise=0.1,
                         draws=2, seed=0)
    change = _named(figures.layer_profile(r), "relative change")
    np.testing.assert_allclose(whisker_ends(change, "x"), [0.0, 0.2], atol=1e-6)
    np.testing.assert_allclose(np.asarray(change.error_x.array, float), [0.05, 0.1], rtol=1e-6)


@pytest.mark.parametrize("window, stride, words", [((1,), (1,), "window 1, stride 1"),
                                                   ((3, 3), (1, 2), "window 3×3, stride 1×2"),
                                                   (None, None, "window default, stride default")])
def test_occlusion_view_says_its_window_in_words(window, stride, words):
    r = OcclusionSensitivity(maps=torch.rand(1, 1, 4, 4), target=torch.tensor([1]), score=torch.tensor([3.0]),
                             baseline="zero", window=window, stride=stride)
    fig = figures.occlusion_view(torch.rand(1, 1, 4, 4), r, "image")
    assert words in fig.layout.title.text
    assert python_reprs(fig) == []


def test_explanation_robustness_table_gives_each_column_its_content():
    r = ExplanationSensitivity(methods=("integrated_gradients", "lrp:epsilon_plus_flat", "guided_backprop"),
                               sensitivity_max=torch.rand(3, 4), infidelity=1e-7 * torch.rand(3, 4),
                               target=torch.zeros(4, dtype=torch.long), radius=0.02, draws=5, seed=0)
    table_fits(figures.explanation_robustness(r))
