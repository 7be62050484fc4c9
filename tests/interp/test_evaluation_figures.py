"""Figures of interp.evaluation show what the evaluation holds: curves with the random order,
a leaderboard whose buttons sort the rows by each metric best first, the randomisation
check's curves and example maps, the agreement matrix, and places across models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import interp
from interp import figures
from interp.errors import InterpError
from interp.evaluation import Evaluation, Randomisation
from tests.interp.figure_checks import plot_width, tick_labels_fit, whisker_ends


def _masks(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    m = torch.zeros(n, 8, 8, dtype=torch.bool)
    for i in range(n):
        r, c = torch.randint(0, 5, (2,), generator=g).tolist()
        m[i, r:r + 3, c:c + 3] = True
    return m


@pytest.fixture(scope="module")
def evaluated():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8 * 8, 3)).eval()
    x, masks = torch.rand(10, 1, 8, 8), _masks(10)
    ev = interp.evaluate(model, x, methods=["saliency", "input_x_gradient", "lrp:epsilon"], truth=masks, steps=4,
                         metrics=["deletion", "insertion", "mass_accuracy", "randomisation"])
    return model, x, ev


def test_curves_and_agreement(evaluated):
    model, x, ev = evaluated
    fig = figures.perturbation_curves(ev, "deletion")
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name.split(" (")[0] for t in lines] == ["saliency", "input_x_gradient", "lrp:epsilon", "random order"]
    assert list(lines[0].y) == pytest.approx(ev.curves[("saliency", "deletion")].values.mean(0).tolist())
    assert len(figures.perturbation_curves(ev, "insertion", sample=3).data) == 4  # one sample: no bands
    heat = figures.agreement_matrix(ev)
    assert heat.data[0].z.shape == (3, 3) and list(heat.data[0].x) == ["saliency", "input_x_gradient", "lrp:epsilon"]
    with pytest.raises(InterpError, match="no randomisation"):
        figures.randomisation_curves(interp.evaluate(model, x, methods=["saliency"], steps=4))


def test_the_leaderboard_sorts_by_every_metric_best_first(evaluated):
    _, _, ev = evaluated
    board = figures.leaderboard(ev)
    metrics = [t.name for t in board.data]
    assert metrics == list(ev.metrics)
    ticks = list(board.layout.yaxis.ticktext)
    for trace, metric in zip(board.data, metrics):  # each bar its method's mean, the spread as whisker
        for y, mean, spread, (method, _, n) in zip(trace.y, trace.x, trace.error_x.array, trace.customdata):
            values = ev.per_sample[(method, metric)]
            assert ticks[y] == method and n == len(values)
            assert mean == pytest.approx(float(values.mean())) and spread == pytest.approx(float(values.std()))
    buttons = board.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == [f"sort: {m.replace('_', ' ')}" for m in metrics]
    for button, metric in zip(buttons, metrics):
        positions, layout = button.args
        order = layout["yaxis.ticktext"]
        ranked = [m for m, _ in ev.leaderboard(metric)]
        assert order[:len(ranked)] == ranked and sorted(order) == sorted(ev.methods)
        for trace, ys in zip(board.data, positions["y"]):  # every column's bars move to the new rows
            assert [order[y] for y in ys] == [method for method, _, _ in trace.customdata]
    assert ticks == buttons[0].args[1]["yaxis.ticktext"]
    deletion = dict(ev.leaderboard("deletion"))
    assert deletion["random"] > min(deletion.values())  # the random order is a row too, in grey


def test_randomisation_maps_show_each_stage(evaluated):
    _, x, ev = evaluated
    fig = figures.randomisation_maps(ev)
    r = ev.randomisations["saliency"]
    stages = 1 + len(r.layers)
    assert len(fig.data) == 3 * stages
    first = torch.tensor(fig.data[0].z, dtype=torch.float32)
    expected = r.examples[0].abs().sum(0)
    torch.testing.assert_close(first, expected / expected.max())
    assert torch.equal(r.examples[0], interp.attribute(evaluated[0], x, "predicted", "saliency")[0].float())
    strips = figures.randomisation_maps(ev, methods=["lrp:epsilon"], image=False)
    assert len(strips.data) == 1 and torch.tensor(strips.data[0].z).shape == (stages, 64)
    with pytest.raises(InterpError, match="no randomisation of 'occlusion'"):
        figures.randomisation_maps(ev, methods=["occlusion"])


def test_places_across_models(evaluated):
    _, _, ev = evaluated
    other = interp.evaluate(evaluated[0], evaluated[1][:5], methods=["saliency", "occlusion"], steps=4)
    fig = figures.zoo_leaderboard({"a": ev, "b": other}, "deletion")
    heat = fig.data[0]
    assert list(heat.x) == ["a", "b"]
    rows = list(heat.y)
    for col, e in enumerate((ev, other)):
        board = e.leaderboard("deletion")
        for place, (method, value) in enumerate(board):
            assert heat.z[rows.index(method)][col] == pytest.approx(place / (len(board) - 1))
            assert heat.text[rows.index(method)][col] == f"{value:.3f}"
    assert heat.text[rows.index("occlusion")][0] == ""  # not scored on model a: blank
    with pytest.raises(InterpError, match="mass_accuracy"):
        figures.zoo_leaderboard({"b": other}, "mass_accuracy")


# ---------------------------------------------------------------------------- honest whiskers, legible labels

def _skewed() -> tuple[Evaluation, list[str]]:
    """Areas no sample has below 0 but with a spread above their mean (a few large), and a
    signed metric; a randomisation whose similarities are never negative."""
    area = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.9])
    signed = torch.tensor([-0.5, 0.5, 0.1, -0.2, 0.3])
    similarity = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.8], [0.0, 0.0, 0.0, 0.0, 0.4]])
    words = [f"{i}: word{i}" for i in range(64)]
    examples = torch.rand(3, 64)
    return Evaluation(methods=("saliency", "random"), metrics=("deletion", "aopc"),
                      per_sample={("saliency", "deletion"): area, ("random", "deletion"): area / 2,
                                  ("saliency", "aopc"): signed, ("random", "aopc"): signed / 2},
                      randomisations={"saliency": Randomisation("saliency", ("2", "0"), similarity,
                                                                examples=examples)}), words


def test_leaderboard_whiskers_stop_at_zero_where_no_sample_is_negative():
    ev, _ = _skewed()
    deletion, aopc = figures.leaderboard(ev).data
    assert min(whisker_ends(deletion, "x")) == pytest.approx(0.0)  # not below: no area is negative
    spread = torch.tensor([-0.5, 0.5, 0.1, -0.2, 0.3]).std()
    assert whisker_ends(aopc, "x")[0] == pytest.approx(0.04 - float(spread), rel=1e-5)  # signed: all of it


def test_randomisation_curve_whiskers_stop_at_zero_for_similarities_never_negative():
    ev, _ = _skewed()
    curve = figures.randomisation_curves(ev).data[0]
    assert min(whisker_ends(curve)) == pytest.approx(0.0)
    assert list(curve.error_y.array) == pytest.approx([0.32, 0.16])  # upwards the whole spread


def test_randomisation_strips_keep_a_legible_font_for_64_tokens():
    ev, words = _skewed()
    fig = figures.randomisation_maps(ev, image=False, labels=words)
    assert fig.layout.yaxis.tickfont.size >= 10
    tick_labels_fit(fig, fig.layout.xaxis, plot_width(fig, colorbar=True), rotated=True)
