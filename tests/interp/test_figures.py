"""interp.figures: each builder puts the right numbers and labels into its figure."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from interp import figures, summarize
from interp.errors import InputError
from tests.interp.figure_checks import (
    cell_texts_fit,
    labels,
    plain,
    plot_width,
    python_reprs,
    table_fits,
    tick_labels_fit,
    whisker_ends,
)


def test_architecture_table_rows(tiny_mlp):
    fig = figures.architecture_table(summarize(tiny_mlp, torch.randn(1, 4)))
    cells = fig.data[0].cells.values
    assert list(cells[0]) == ["0", "1", "2", "<b>total</b>"]
    assert list(cells[3])[:3] == ["15", "0", "8"]
    assert "23" in cells[3][3]


def test_confusion_matrix_counts_and_row_shares():
    m = [[8, 2], [1, 9]]
    fig = figures.confusion_matrix(m, ["cat", "dog"])
    hm = fig.data[0]
    np.testing.assert_allclose(np.asarray(hm.z), [[0.8, 0.2], [0.1, 0.9]])
    assert np.asarray(hm.text).tolist() == [["8", "2"], ["1", "9"]]
    assert list(hm.x) == ["cat", "dog"] and list(hm.y) == ["cat", "dog"]
    with pytest.raises(InputError, match="square"):
        figures.confusion_matrix([[1, 2, 3]], ["a"])


def test_metrics_table_leaves_out_lists():
    fig = figures.metrics_table({"accuracy": 0.91234, "n": 3, "cm": [[1]]}, bars={"accuracy": ">= 0.9"})
    cols = fig.data[0].cells.values
    assert list(cols[1]) == ["0.9123", "3"]
    assert list(cols[2]) == [">= 0.9", ""]


def test_image_sample_shows_pixels_and_outlines_mask():
    img = torch.rand(1, 6, 6)
    mask = torch.zeros(1, 6, 6, dtype=torch.bool)
    mask[0, 2:4, 2:4] = True
    fig = figures.image_sample(img, "x", mask=mask)
    np.testing.assert_allclose(np.asarray(fig.data[0].z), img[0].numpy(), rtol=1e-6)
    assert isinstance(fig.data[1], go.Contour)
    np.testing.assert_array_equal(np.asarray(fig.data[1].z), mask[0].float().numpy())
    rgb = figures.image_sample(torch.rand(3, 4, 4))
    assert isinstance(rgb.data[0], go.Image)
    with pytest.raises(InputError, match="shaped"):
        figures.image_sample(torch.rand(2, 2, 2, 2))
    with pytest.raises(InputError, match="does not match"):
        figures.image_sample(img, mask=torch.ones(1, 5, 5, dtype=torch.bool))
    hwc = torch.rand(4, 5, 3)  # channels-last RGB is shown as RGB, not averaged
    assert isinstance(figures.image_sample(hwc).data[0], go.Image)


def test_image_grid_places_every_image():
    imgs = torch.rand(5, 1, 4, 4)
    fig = figures.image_grid(imgs, [f"#{i}" for i in range(5)], cols=3)
    assert len(fig.data) == 5
    for i, trace in enumerate(fig.data):
        np.testing.assert_allclose(np.asarray(trace.z), imgs[i, 0].numpy(), rtol=1e-6)
    assert [a.text for a in fig.layout.annotations] == [f"#{i}" for i in range(5)]
    with pytest.raises(InputError, match="non-empty"):
        figures.image_grid(torch.rand(0, 1, 4, 4))
    with pytest.raises(InputError, match="titles"):
        figures.image_grid(imgs, ["a"])


def test_tabular_and_token_views():
    fig = figures.tabular_sample([0.5, -1.0], ["a", "b"], raw_values=[10.0, 2.0])
    assert list(fig.data[0].x) == [0.5, -1.0] and list(fig.data[0].y) == ["a", "b"]
    assert list(fig.data[0].customdata) == [10.0, 2.0]
    with pytest.raises(InputError):
        figures.tabular_sample([1.0], ["a", "b"])
    with pytest.raises(InputError, match="raw values"):
        figures.tabular_sample([1.0, 2.0], ["a", "b"], raw_values=[1.0])
    tok = figures.token_sample(["not", "good"], mask=[1, 1])
    assert np.asarray(tok.data[0].text).tolist() == [["not", "good"]]
    view = figures.sample_view(torch.tensor([2, 0]), "tokens", vocab=["a", "b", "c"])
    assert np.asarray(view.data[0].text).tolist() == [["c", "a"]]
    for bad in ([3, 0], [-1, 0]):
        with pytest.raises(InputError, match=r"token ids must lie in \[0, 2\]"):
            figures.sample_view(torch.tensor(bad), "tokens", vocab=["a", "b", "c"])
    with pytest.raises(InputError, match="modality"):
        figures.sample_view(torch.zeros(2), "audio")


def test_class_probabilities_marks_prediction_and_truth():
    fig = figures.class_probabilities([0.2, 0.7, 0.1], ["a", "b", "c"], true=0)
    assert list(fig.data[0].y) == [0.2, 0.7, 0.1]
    assert "predicted b (0.70)" in fig.layout.title.text and "true a ✗" in fig.layout.title.text
    with pytest.raises(InputError):
        figures.class_probabilities([0.5, 0.5], ["a"])
    with pytest.raises(InputError, match="out of range"):
        figures.class_probabilities([0.5, 0.5], ["a", "b"], true=5)
    assert figures.real_score(0.25).data[0].x == (0.25,)


# ------------------------------------------------------------------ activations

def test_feature_maps_tiles_every_channel_with_its_index():
    maps = np.arange(5 * 2 * 3, dtype=float).reshape(5, 2, 3)
    fig = figures.feature_maps(maps, cols=2, highlight=3)
    z, ch = np.asarray(fig.data[0].z, dtype=float), np.asarray(fig.data[0].customdata)
    for c in range(5):
        r, q = divmod(c, 2)
        np.testing.assert_array_equal(z[r * 3:r * 3 + 2, q * 4:q * 4 + 3], maps[c])
        assert (ch[r * 3:r * 3 + 2, q * 4:q * 4 + 3] == c).all()
    assert np.isnan(z[2, 0]) and len(fig.layout.shapes) == 1  # gap row; highlight box
    assert fig.data[0].colorscale[0][1] != "rgb(5,48,97)"  # non-negative: sequential scale
    many = figures.feature_maps(np.ones((80, 2, 2)), max_channels=64)
    assert "first 64 of 80" in many.layout.title.text
    with pytest.raises(InputError, match="channels"):
        figures.feature_maps(np.ones((2, 2, 2, 2)))


def test_unit_heatmap_groups_rows_by_class():
    values = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    fig = figures.unit_heatmap(values, labels=[1, 0, 1], classes=["a", "b"])
    hm = fig.data[0]
    np.testing.assert_array_equal(np.asarray(hm.z), values[[1, 0, 2]])
    assert np.asarray(hm.customdata)[:, 0].tolist() == [1, 0, 2]  # click -> sample index
    assert list(fig.layout.yaxis.ticktext) == ["a", "b"]
    with pytest.raises(InputError):
        figures.unit_heatmap(values, labels=[0, 1])


def test_sequence_and_attention_figures():
    seq = figures.sequence_heatmap(np.ones((3, 4)), ["not", "bad", "at"])
    assert list(seq.data[0].y) == ["0: not", "1: bad", "2: at"]
    w = np.random.default_rng(0).random((2, 3, 3))
    att = figures.attention_maps(w, ["a", "b", "c"])
    assert len(att.data) == 2
    np.testing.assert_allclose(np.asarray(att.data[1].z), w[1])
    assert list(att.data[0].x) == ["0: a", "1: b", "2: c"]
    # the axes say which tokens attend and which are attended to
    assert att.layout.xaxis.title.text == att.layout.xaxis2.title.text == "key (attended to)"
    assert att.layout.yaxis.title.text == "query (attending)"
    assert seq.layout.yaxis.title.text == "time step: token" and seq.layout.xaxis.title.text == "unit"
    with pytest.raises(InputError):
        figures.attention_maps(w, ["a"])


def test_unit_statistics_and_table_show_the_numbers():
    from interp import layer_stats

    a = np.random.default_rng(1).random((20, 3))
    a[:, 1] = 0
    s = layer_stats({"layer": a})["layer"]
    fig = figures.unit_statistics(s, unit=2)
    np.testing.assert_allclose(fig.data[0].y, s.mean)
    np.testing.assert_allclose(fig.data[0].error_y.array, s.std)
    np.testing.assert_allclose(fig.data[1].y, s.frac_zero)
    assert fig.data[1].marker.color[1] != fig.data[1].marker.color[0]  # the dead unit stands out
    assert "1 dead" in fig.layout.title.text
    table = figures.layer_stats_table({"layer": s})
    assert list(table.data[0].cells.values[0]) == ["layer"] and list(table.data[0].cells.values[5]) == ["1"]
    hist = figures.unit_histogram(a[:, 0], 0)
    np.testing.assert_allclose(hist.data[0].x, a[:, 0])


def test_sample_grid_is_clickable_by_id():
    grid = figures.sample_grid(torch.rand(3, 1, 4, 4), "image", ids=[7, 8, 9])
    assert [int(np.asarray(t.customdata).flat[0]) for t in grid.data] == [7, 8, 9]
    tok = figures.sample_grid(torch.tensor([[0, 1], [1, 1]]), "tokens", ids=[4, 5], vocab=["x", "y"])
    assert np.asarray(tok.data[0].text).tolist() == [["x", "y"], ["y", "y"]]
    assert np.asarray(tok.data[0].customdata)[:, 0].tolist() == [4, 5]
    tab = figures.sample_grid(torch.rand(2, 3), "tabular", ids=[1, 2], feature_names=["a", "b", "c"])
    assert list(tab.data[0].x) == ["a", "b", "c"]
    with pytest.raises(InputError, match="ids"):
        figures.sample_grid(torch.rand(2, 3), "tabular", ids=[1])


# ---------------------------------------------------------------- attribution figures

def _attr(method: str, values, target=0):
    from interp.attribution import Attribution

    v = torch.as_tensor(values, dtype=torch.float32)
    n = len(v)
    return Attribution(method=method, values=v, target=torch.full((n,), target), score=torch.ones(n),
                       delta=torch.zeros(n) if method == "integrated_gradients" else None,
                       options={"steps": 8} if method == "integrated_gradients" else {})


def test_attribution_image_is_zero_centred_over_the_image():
    image = np.zeros((1, 4, 4))
    values = np.zeros((1, 4, 4))
    values[0, 1, 2], values[0, 3, 0] = 2.0, -0.5
    fig = figures.attribution_image(image, values, "x", mask=np.eye(4, dtype=bool))
    base, overlay = fig.data[0], fig.data[1]
    assert np.asarray(base.z).shape == (4, 4)
    assert overlay.zmin == -2.0 and overlay.zmax == 2.0 and overlay.zmid == 0.0
    scale = overlay.colorscale
    assert scale[len(scale) // 2][1].endswith(",0)")  # transparent at zero: the image shows through
    assert np.asarray(overlay.z)[1, 2] == 2.0
    assert any(isinstance(t, go.Contour) for t in fig.data)  # the ground truth outlined
    with pytest.raises(InputError, match="does not match the image"):
        figures.attribution_image(image, np.zeros((3, 3)))


def test_attribution_bars_sorted_by_magnitude_with_names():
    fig = figures.attribution_bars([0.1, -3.0, 2.0], ["a", "b", "c"], top=2)
    bar = fig.data[0]
    assert list(bar.y) == ["b", "c"] and list(bar.x) == [-3.0, 2.0]
    assert bar.marker.color[0] != bar.marker.color[1]  # sign by colour
    with pytest.raises(InputError, match="3 feature names"):
        figures.attribution_bars([1.0, 2.0], ["a", "b", "c"])


def test_attribution_tokens_one_cell_per_token():
    fig = figures.attribution_tokens([0.5, -1.0, 0.0], ["not", "bad", "movie"], mask=[1, 1, 0])
    hm = fig.data[0]
    assert np.asarray(hm.z).shape == (1, 3) and hm.zmid == 0.0 and hm.zmin == -1.0 and hm.zmax == 1.0
    assert list(hm.text[0]) == ["<b>not</b>", "<b>bad</b>", "movie"]
    with pytest.raises(InputError, match="2 attributions for 3 tokens"):
        figures.attribution_tokens([1.0, 2.0], ["a", "b", "c"])


def test_attribution_grid_methods_by_samples_each_map_scaled_to_one():
    x = torch.rand(2, 1, 3, 3)
    a1 = _attr("gradient", torch.randn(2, 1, 3, 3))
    a2 = _attr("integrated_gradients", 10 * torch.randn(2, 1, 3, 3))
    fig = figures.attribution_grid(x, [a1, a2], "image", sample_titles=["s0", "s1"])
    overlays = [t for t in fig.data if isinstance(t, go.Heatmap) and t.coloraxis == "coloraxis"
                and t.customdata is not None and np.asarray(t.customdata).dtype.kind == "f"]
    assert len(overlays) == 4  # 2 methods x 2 samples
    for t in overlays:
        assert np.isclose(np.abs(np.asarray(t.z)).max(), 1.0)
    raw = np.asarray(overlays[0].customdata)  # hover keeps the raw values
    np.testing.assert_allclose(raw, a1.values[0, 0].numpy(), rtol=1e-6)
    tokens = torch.tensor([[0, 1, 2]])
    fig = figures.attribution_grid(tokens, [_attr("gradient", [[1.0, -2.0, 0.5]])], "tokens",
                                   vocab=["a", "b", "c"])
    np.testing.assert_allclose(np.asarray(fig.data[0].z), [[0.5, -1.0, 0.25]])
    assert list(fig.data[0].y) == ["gradient"]
    with pytest.raises(InputError, match="one attribution per input"):
        figures.attribution_grid(x, [_attr("gradient", torch.zeros(1, 1, 3, 3))], "image")


def test_attribution_summary_lists_scores_gaps_and_ground_truth_share():
    a = _attr("integrated_gradients", [[1.0, 3.0], [0.0, 2.0]])
    fig = figures.attribution_summary([a], ["s0", "s1"], truth=np.array([[1, 0], [0, 1]]))
    header = [h.replace("<b>", "").replace("</b>", "") for h in fig.data[0].header.values]
    cells = dict(zip(header, fig.data[0].cells.values))
    assert list(cells["Σ attribution"]) == ["4", "2"]
    assert list(cells["on ground truth"]) == ["25% (area 50%)", "100% (area 50%)"]
    assert "completeness gap" in cells


def test_images_in_grids_keep_their_aspect_ratio():
    """Each cell's y axis is anchored to its own x axis, so an image keeps square pixels
    in traversal, interpolation and sample grids as it does alone."""
    import torch

    from interp.figures.samples import image_grid

    fig = image_grid(torch.rand(6, 1, 4, 8), [f"{i}" for i in range(6)], cols=3)
    layout = fig.layout.to_plotly_json()
    ys = sorted(k for k in layout if k.startswith("yaxis"))
    assert len(ys) == 6
    for y in ys:
        assert layout[y]["scaleanchor"] == "x" + y[len("yaxis"):]


# ------------------------------------------------------------------ honest whiskers, legible labels, whole tables

def _relu_stats():
    from interp import layer_stats

    rng = np.random.default_rng(3)
    a = rng.normal(size=(200, 3))
    a[:, 0] = np.maximum(a[:, 0] - 1.0, 0)  # after a ReLU: mostly 0, mean below its std
    a[:, 2] = 0                             # dead
    return a, layer_stats({"features.3": a})["features.3"]


def test_unit_statistics_whiskers_stop_at_zero_for_units_never_negative():
    a, s = _relu_stats()
    assert a[:, 0].min() >= 0 and s.std[0] > s.mean[0] > 0 and a[:, 1].min() < 0
    bars = figures.unit_statistics(s).data[0]
    ends = whisker_ends(bars)
    assert ends[0] == pytest.approx(0.0)                  # a ReLU unit: down to 0, not below
    assert ends[1] == pytest.approx(s.mean[1] - s.std[1])  # a signed unit keeps its whole spread
    np.testing.assert_allclose(bars.error_y.array, s.std)  # upwards the whole spread
    np.testing.assert_allclose(s.min, a.min(0))            # what tells the figure a unit is never negative


def test_unit_statistics_draws_dead_units_red_as_its_title_says():
    fig = figures.unit_statistics(_relu_stats()[1])
    zero = fig.data[1]
    assert "red: ≥ 99%, dead" in fig.layout.annotations[1].text
    assert zero.marker.color[2] == figures.activations.POSITIVE == "#d62728"  # the palette's red
    assert zero.marker.color[0] != zero.marker.color[2]


TOKENS64 = [f"word{i}" for i in range(64)]  # 64 tokens of up to 6 characters


def test_token_strips_keep_a_legible_font_for_64_tokens():
    values = np.sin(np.arange(64))
    strip = figures.attribution_tokens(values, TOKENS64)
    cell_texts_fit(strip, strip.data[0], colorbar=True)
    tick_labels_fit(strip, strip.layout.xaxis, plot_width(strip, colorbar=True))
    sample = figures.token_sample(TOKENS64)
    cell_texts_fit(sample, sample.data[0], colorbar=False)
    assert [plain(t) for t in strip.data[0].hovertext[0]] == TOKENS64  # hover names every token
    ids = torch.arange(64).repeat(3, 1)
    grid = figures.sample_grid(ids, "tokens", ids=[0, 1, 2], vocab=TOKENS64)
    cell_texts_fit(grid, grid.data[0], colorbar=False)


def test_attribution_grid_and_pair_keep_a_legible_font_for_64_tokens():
    ids = torch.arange(64)[None]
    fig = figures.attribution_grid(ids, [_attr("gradient", torch.randn(1, 64)),
                                         _attr("integrated_gradients", torch.randn(1, 64))], "tokens",
                                   vocab=TOKENS64)
    for trace in fig.data:
        cell_texts_fit(fig, trace, colorbar=True)
    pair = figures.attribution_pair([(ids[0], torch.randn(64), "left"), (ids[0], torch.randn(64), "right")],
                                    "tokens", vocab=TOKENS64, difference=True)
    cell_texts_fit(pair, pair.data[0], colorbar=True)


def test_attention_maps_keep_a_legible_font_for_64_tokens():
    heads = 2
    w = np.random.default_rng(0).random((heads, 64, 64))
    fig = figures.attention_maps(w, TOKENS64)
    per_head = plot_width(fig, colorbar=True) * 0.88 / heads  # 12% of the width between the heads
    for axis in (fig.layout.xaxis, fig.layout.xaxis2):
        tick_labels_fit(fig, axis, per_head, rotated=True)
    rows = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    assert fig.layout.yaxis.tickfont.size >= 10 and rows / 64 >= 1.2 * fig.layout.yaxis.tickfont.size
    seq = figures.sequence_heatmap(np.ones((64, 4)), TOKENS64)
    rows = seq.layout.height - seq.layout.margin.t - seq.layout.margin.b
    assert seq.layout.yaxis.tickfont.size >= 10 and rows / 64 >= 1.2 * seq.layout.yaxis.tickfont.size


def test_tables_give_each_column_its_content():
    from interp import layer_stats

    a = np.random.default_rng(0).random((10, 4))
    stats = {name: layer_stats({name: a})[name] for name in
             ("encoder.layers.0.self_attn.out_proj", "encoder.layers.0.linear1", "classifier.2")}
    table_fits(figures.layer_stats_table(stats))
    table_fits(figures.architecture_table(summarize(
        torch.nn.Sequential(torch.nn.Linear(4, 300), torch.nn.ReLU(), torch.nn.Linear(300, 2)), torch.randn(1, 4))))
    table_fits(figures.metrics_table({"mean_squared_reconstruction_error": 0.01234, "balanced_accuracy": 0.9},
                                     bars={"balanced_accuracy": ">= 0.9 (the zoo's bar for every classifier)"}))
    a = _attr("integrated_gradients", [[1.0, 3.0], [0.0, 2.0]])
    table_fits(figures.attribution_summary([a], ["sample 12 (true: positive)", "s1"], truth=np.eye(2)))


def test_method_labels_read_as_words():
    from interp.attribution import Attribution

    def attr(method, **options):
        return Attribution(method=method, values=torch.rand(1, 1, 4, 4), target=torch.zeros(1, dtype=torch.long),
                           score=torch.ones(1), options=options)

    attrs = [attr("occlusion", window=(1,), stride=(1,)), attr("occlusion", window=(3, 3)),
             attr("integrated_gradients", steps=64, baseline=None), attr("smoothgrad", samples=25, noise=0.15),
             attr("grad_cam", layer="features.3"), attr("lrp", composite="epsilon_plus_flat"),
             attr("occlusion", window={"image": (3, 3), "mask": 1})]
    assert [a.label for a in attrs] == [
        "occlusion (window 1)", "occlusion (window 3×3)", "integrated_gradients (steps 64)",
        "smoothgrad (samples 25, noise 0.15)", "grad_cam (layer features.3)", "lrp (composite epsilon_plus_flat)",
        "occlusion (window image: 3×3 · mask: 1)"]
    grid = figures.attribution_grid(torch.rand(1, 1, 4, 4), attrs, "image")
    assert python_reprs(grid) == [] and "occlusion (window 3×3)" in labels(grid)


@pytest.mark.parametrize("vocab, responsive", [(["no", "ok", "a", "so"] * 3, True),
                                               (["excellent", "not", "a", "movie"] * 3, False)])
def test_samples_of_a_short_sentence_keep_every_word(vocab, responsive):
    """Rows of 12 tokens (the zoo's sentences): every word written, at a legible size. Short
    words fit the narrowest page beside the margins, so the figure stays responsive; long
    ones get a set width that holds them (a printed page zooms it to its width)."""
    ids = torch.arange(12).repeat(9, 1)
    grid = figures.sample_grid(ids, "tokens", ids=list(range(9)), vocab=vocab)
    attrs = figures.attribution_grid(ids[:4], [_attr("gradient", torch.randn(4, 12))], "tokens", vocab=vocab)
    for fig in (grid, attrs):
        assert (fig.layout.width is None) == responsive
        assert all(all(t for t in row) for row in fig.data[0].text)
        cell_texts_fit(fig, fig.data[0], colorbar=fig is attrs)


def test_labels_too_long_for_any_plot_still_lay_out():
    """One label wider than the widest plot: every n-th (here: one) label shown, no error."""
    from interp.figures._style import MAX_PLOT, fit_labels

    fit = fit_labels(["w" * 400, "x", "y"])
    assert fit.step == 3 and fit.width == MAX_PLOT and fit.shown(["a", "b", "c"]) == ([0], ["a"])
