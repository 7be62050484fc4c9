"""Projection figures: one trace per category with each point's sample index, colour
scales for continuous values, the selected samples ringed, 3-D maps, the quality line,
small multiples per layer, and clear errors."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from interp import figures
from interp.errors import InputError
from interp.projection import LayerProjection, MapQuality


def _coords(n=12, d=2):
    return np.arange(n * d, dtype=float).reshape(n, d)


def test_categories_get_a_trace_each_with_their_sample_indices():
    labels = np.array([0, 1, 2] * 4)
    fig = figures.projection_map(_coords(), labels, class_names=["a", "b", "c"], sample_ids=np.arange(100, 112))
    assert [t.name for t in fig.data] == ["a", "b", "c"]
    assert list(fig.data[1].customdata) == [101, 104, 107, 110]
    np.testing.assert_allclose(np.asarray(fig.data[1].x, float), _coords()[labels == 1, 0])
    assert all(isinstance(t, go.Scatter) for t in fig.data) and fig.layout.dragmode == "lasso"
    right = figures.projection_map(_coords(), labels == 0, color_name="correct")
    assert [t.name for t in right.data] == ["wrong", "right"]


def test_continuous_colours_use_a_scale_and_signed_ones_centre_at_zero():
    activation = figures.projection_map(_coords(), np.linspace(0, 2, 12), color_name="unit 3")
    (t,) = activation.data
    assert t.marker.colorbar.title.text == "unit 3" and t.marker.cmin is None
    score = figures.projection_map(_coords(), np.linspace(-1, 3, 12), color_name="attribution")
    assert score.data[0].marker.cmin == -3 and score.data[0].marker.cmax == 3
    forced = figures.projection_map(_coords(), np.arange(12), categorical=False)
    assert len(forced.data) == 1


def test_selected_points_are_ringed_and_hover_names_the_sample():
    hover = [f"digit {i}" for i in range(12)]
    fig = figures.projection_map(_coords(), hover=hover, selected=[2, 5])
    ring = [t for t in fig.data if t.name == "selected"][0]
    assert list(ring.customdata) == [2, 5] and list(ring.text) == ["digit 2", "digit 5"]
    assert fig.data[0].text[3] == "digit 3"


def test_three_dimensions_and_the_quality_line():
    q = MapQuality(0.93, 0.9, 0.8, 10, 12)
    fig = figures.projection_map(_coords(d=3), np.zeros(12, int), quality=q, title="UMAP")
    assert isinstance(fig.data[0], go.Scatter3d)
    title = fig.layout.title.text
    assert "trustworthiness 0.930 (10 nearest neighbours)" in title and "90.0% in the map" in title


@pytest.mark.parametrize("kwargs, match", [
    ({"coordinates": np.zeros((5, 4))}, "\\(samples, 2\\) or \\(samples, 3\\)"),
    ({"color": np.zeros(3)}, "color must be one value per point"),
    ({"hover": ["a"]}, "hover must be one text per point"),
    ({"sample_ids": [1, 2]}, "sample_ids must be one per point"),
])
def test_bad_input(kwargs, match):
    args = {"coordinates": _coords(), **kwargs}
    with pytest.raises(InputError, match=match):
        figures.projection_map(args.pop("coordinates"), **args)


def _projection(layer, agreement):
    return LayerProjection(coordinates=torch.randn(12, 2), labels=torch.tensor([0, 1] * 6), layer=layer,
                           method="pca", params={"n_components": 2}, reduce=None, features=8,
                           trustworthiness=0.95, agreement_map=agreement, agreement_original=agreement, k=5,
                           seconds=0.01)


def test_layer_maps_one_panel_per_layer_titled_with_its_separation():
    fig = figures.layer_maps([_projection("input", 0.5), _projection("fc1", 0.75), _projection("fc2", 1.0)],
                             class_names=["cat", "dog"], cols=2)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("input") and "neighbours 50%" in titles[0] and "neighbours 100%" in titles[2]
    assert len(fig.data) == 6 and sum(t.showlegend for t in fig.data) == 2  # one legend entry per class
    assert {t.name for t in fig.data} == {"cat", "dog"}
    with pytest.raises(InputError, match="at least one"):
        figures.layer_maps([])
    with pytest.raises(InputError, match="expected LayerProjection"):
        figures.layer_maps([np.zeros((3, 2))])
