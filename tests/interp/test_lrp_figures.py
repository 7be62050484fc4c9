"""interp.figures.lrp: the figures carry the LRP result's own numbers, checked against a
two-layer network worked out by hand and read back from the traces, the table cells and
the heatmaps of small models run here."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from torch import nn

import interp
from interp import figures
from interp.errors import InputError
from interp.figures.lrp import ABSORBED, CONSERVED, CREATED, UNSUPPORTED_TEXT
from interp.lrp import LRPResult, Plan, PlanRow
from tests.interp.figure_checks import table_fits


def hand_mlp() -> nn.Sequential:
    """x = (1, 2): layer 0 has the bias (0, -0.5), so z = (1, 1.5) and unit 1 creates
    relevance; layer 2 sums with bias 1, so it absorbs 1 of the score 3.5."""
    m = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        m[0].weight.copy_(torch.eye(2))
        m[0].bias.copy_(torch.tensor([0.0, -0.5]))
        m[2].weight.copy_(torch.tensor([[1.0, 1.0]]))
        m[2].bias.fill_(1.0)
    return m.eval()


HAND_X = torch.tensor([[1.0, 2.0]])


def cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 3),
                         nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 3)).eval()


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3)).eval()


def _run(make, shape, composite="epsilon_plus_flat") -> LRPResult:
    torch.manual_seed(1)
    return interp.lrp(make(), torch.rand(*shape), composite=composite)


def _trace(fig: go.Figure, name: str):
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, [t.name for t in fig.data]
    return found[0]


# ---------------------------------------------------------------------------- flow

def test_flow_of_a_hand_computed_network():
    r = interp.lrp(hand_mlp(), HAND_X, target=0, composite="lrp0")
    fig = figures.relevance_flow(r)
    passed = _trace(fig, "Σ relevance passed to the input")
    np.testing.assert_allclose(passed.y, [3.5, 2.5, 2.5, 3.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(_trace(fig, "Σ relevance received at the output").y, [3.5, 2.5, 2.5], rtol=1e-6)
    bars = [t for t in fig.data if isinstance(t, go.Bar)][0]
    np.testing.assert_allclose(bars.y, [1.0, 0.0, -0.5], atol=1e-6)
    assert list(bars.marker.color) == [ABSORBED, CONSERVED, CREATED]
    assert list(fig.layout.xaxis2.ticktext) == ["output (score)", "2", "1", "0", "input"]
    assert "-14.29% of the score" in fig.layout.title.text


@pytest.mark.parametrize("make, shape", [(mlp, (3, 5)), (cnn, (3, 2, 8, 8))])
def test_flow_plots_exactly_the_results_numbers(make, shape):
    r = _run(make, shape)
    layers = list(r.layers.values())
    for sample in range(3):
        fig = figures.relevance_flow(r, sample=sample)
        passed = _trace(fig, "Σ relevance passed to the input")
        assert list(passed.y) == ([float(r.score[sample])] + [float(layer.total[sample]) for layer in layers]
                                  + [float(r.total[sample])])
        assert list(passed.customdata) == [""] + [layer.name for layer in layers] + [""]
        received = _trace(fig, "Σ relevance received at the output")
        assert list(received.y) == [float(layer.received[sample]) for layer in layers]
        bars = [t for t in fig.data if isinstance(t, go.Bar)][0]
        assert list(bars.y) == [float(layer.received[sample] - layer.total[sample]) for layer in layers]
        assert list(_trace(fig, "positive part").y[1:-1]) == [float(layer.positive[sample]) for layer in layers]
        assert list(_trace(fig, "negative part").y[1:-1]) == [float(layer.negative[sample]) for layer in layers]
        gap = float(r.total[sample]) - float(r.score[sample])
        assert f"gap {gap:+.4g}" in fig.layout.title.text


def test_flow_of_a_stored_result_without_layers_and_bad_samples():
    r = _run(mlp, (2, 5))
    stored = LRPResult(relevance=r.relevance, target=r.target, score=r.score, composite=r.composite, plan=r.plan)
    fig = figures.relevance_flow(stored, sample=1)
    assert list(_trace(fig, "Σ relevance passed to the input").y) == [float(r.score[1]), float(r.total[1])]
    assert any("no per-layer relevance" in a.text for a in fig.layout.annotations)
    for bad in (2, -1, 0.5, True):
        with pytest.raises(InputError, match="sample"):
            figures.relevance_flow(r, sample=bad)
    with pytest.raises(InputError, match="LRPResult"):
        figures.relevance_flow(r.as_attribution())


# ---------------------------------------------------------------------------- per-layer maps

def test_layer_maps_show_each_spatial_layer_channel_summed():
    r = _run(cnn, (3, 2, 8, 8))
    spatial = [n for n, layer in r.layers.items() if layer.relevance is not None and layer.relevance.ndim == 4]
    assert len(spatial) == 6   # Flatten, ReLU, Conv, MaxPool, ReLU, Conv (not the Linear)
    fig = figures.layer_relevance_maps(r, sample=2)
    maps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert [t.name for t in maps] == spatial
    for t in maps:
        expected = r.layers[t.name].relevance[2].double().sum(0).numpy()
        np.testing.assert_allclose(np.asarray(t.z), expected, rtol=1e-12)
        bound = np.abs(expected).max()
        assert t.zmax == pytest.approx(bound) and t.zmin == pytest.approx(-bound)
    titles = [a.text for a in fig.layout.annotations]
    for name in spatial:
        assert any(t.startswith(f"<b>{name}</b>") and f"Σ {float(r.layers[name].total[2]):.4g}" in t
                   for t in titles)


def test_layer_maps_pick_limit_and_refuse():
    r = _run(cnn, (2, 2, 8, 8))
    picked = figures.layer_relevance_maps(r, layers=["3", "0"])
    assert [t.name for t in picked.data] == ["3", "0"]
    assert len(figures.layer_relevance_maps(r, max_layers=2).data) == 2
    with pytest.raises(InputError, match="no layer 'nope'"):
        figures.layer_relevance_maps(r, layers=["nope"])
    with pytest.raises(InputError, match="not spatial"):
        figures.layer_relevance_maps(r, layers=["6"])   # the Linear: a vector per sample
    with pytest.raises(InputError, match="sample"):
        figures.layer_relevance_maps(r, sample=5)


def test_layer_maps_of_sequences_and_the_empty_state():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8, 2)).eval()
    r = interp.lrp(seq, torch.rand(2, 2, 10))
    fig = figures.layer_relevance_maps(r, sample=1, layers=["0"])
    np.testing.assert_allclose(np.asarray(fig.data[0].z), r.layers["0"].relevance[1].numpy(), rtol=1e-12)
    empty = figures.layer_relevance_maps(_run(mlp, (2, 5)))
    assert len(empty.data) == 0
    assert [a.text for a in empty.layout.annotations] == ["no spatial layers"]


# ---------------------------------------------------------------------------- plan

def test_plan_table_lists_every_module_with_its_rule():
    plan = interp.lrp.plan(cnn(), "epsilon_plus_flat")
    fig = figures.lrp_plan_table(plan)
    module, kind, rule, _ = fig.data[0].cells.values
    assert [m.replace("\u00a0", "") for m in module] == [r.name for r in plan.rows]
    assert list(kind) == [r.kind for r in plan.rows] and list(rule) == [r.rule for r in plan.rows]
    assert "UNSUPPORTED" not in str(fig.to_dict())
    assert "first-layer rule on: 0" in fig.layout.title.text


def test_plan_table_marks_unsupported_rows_and_names_canonizers():
    plan = Plan("epsilon", (PlanRow("model", "Net", "", "container"),
                            PlanRow("fc", "Linear", "flat", "rule", "", 1),
                            PlanRow("act", "Swish", "no rule", "unsupported", "no rule covers this layer type", 1),
                            PlanRow("rnn", "LSTM", "canonized (unroll_recurrent)", "canonized", "", 1),
                            PlanRow("rnn.input_l0", "Linear", "flat", "rule", "", 2)),
                (("unroll_recurrent", ("rnn",)),), ("fc",))
    fig = figures.lrp_plan_table(plan)
    table = fig.data[0]
    module, _, rule, note = table.cells.values
    assert module[4] == "\u00a0" * 6 + "rnn.input_l0"
    assert "UNSUPPORTED" in rule[2] and "UNSUPPORTED" not in "".join(rule[:2] + rule[3:])
    assert [c[2] for c in table.cells.font.color] == [UNSUPPORTED_TEXT] * 4
    assert [c[1] for c in table.cells.font.color] != [UNSUPPORTED_TEXT] * 4
    assert note[1].startswith("first layer")
    head = fig.layout.title.text
    assert "unroll_recurrent (rnn)" in head and "1 UNSUPPORTED" in head and "act" in head
    with pytest.raises(InputError, match="Plan"):
        figures.lrp_plan_table(plan.rows)


# ---------------------------------------------------------------------------- summary

def _column(fig: go.Figure, header: str) -> list[str]:
    table = fig.data[0]
    names = [h.replace("<b>", "").replace("</b>", "") for h in table.header.values]
    return list(table.cells.values[names.index(header)])


def test_summary_of_the_hand_computed_network():
    r = interp.lrp(hand_mlp(), HAND_X, target=0, composite="lrp0")
    fig = figures.lrp_summary(r)
    expected = {"target": 0, "score": 3.5, "Σ relevance": 3.0, "gap": -0.5, "Σ positive": 3.0,
                "Σ negative": 0.0, "absorbed by layers": 1.0, "created by layers": 0.5}
    for header, value in expected.items():
        assert float(_column(fig, header)[0]) == pytest.approx(value, abs=1e-5), header
    assert _column(fig, "gap % of score") == ["-14.29%"]


def test_summary_numbers_equal_the_results():
    x = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    model = cnn()
    results = [interp.lrp(model, x), interp.lrp(model, x, composite="epsilon")]
    fig = figures.lrp_summary(results, sample_titles=["a", "b", "c"])
    assert _column(fig, "composite") == ["epsilon_plus_flat"] * 3 + ["epsilon"] * 3
    assert _column(fig, "sample") == ["a", "b", "c"] * 2
    for k, (r, i) in enumerate((r, i) for r in results for i in range(3)):
        absorbed = torch.stack([layer.absorbed[i] for layer in r.layers.values()])
        flat = r.relevance[i].flatten()
        expected = {"target": r.target[i], "score": r.score[i], "Σ relevance": r.total[i],
                    "gap": r.total[i] - r.score[i], "Σ positive": flat.clamp(min=0).sum(),
                    "Σ negative": flat.clamp(max=0).sum(), "absorbed by layers": absorbed.clamp(min=0).sum(),
                    "created by layers": -absorbed.clamp(max=0).sum()}
        for header, value in expected.items():
            assert float(_column(fig, header)[k]) == pytest.approx(float(value), rel=1e-3, abs=1e-5), header
        gap_pct = 100 * float(r.total[i] - r.score[i]) / float(r.score[i])
        assert float(_column(fig, "gap % of score")[k].rstrip("%")) == pytest.approx(gap_pct, abs=0.006)


def test_summary_refuses_mismatches():
    r = _run(mlp, (2, 5))
    with pytest.raises(InputError, match="sample titles"):
        figures.lrp_summary(r, sample_titles=["only one"])
    with pytest.raises(InputError, match="at least one"):
        figures.lrp_summary([])
    with pytest.raises(InputError, match="LRPResult"):
        figures.lrp_summary([r, r.as_attribution()])
    with pytest.raises(InputError, match="different sizes"):
        figures.lrp_summary([r, _run(mlp, (3, 5))])


def test_plan_and_summary_tables_give_each_column_its_content():
    plan = Plan("epsilon_plus_flat", (PlanRow("model", "TransformerClassifier", "", "container"),
                                      PlanRow("encoder.layers.0.self_attn.out_proj", "NonDynamicallyQuantizableLinear",
                                              "epsilon (0.25)", "rule", "", 4),
                                      PlanRow("encoder.layers.0.norm1", "LayerNorm", "scale held constant",
                                              "function", "canonized (layer_norm)", 3)),
                (), ("encoder.layers.0.self_attn.out_proj",))
    table_fits(figures.lrp_plan_table(plan))
    x = torch.rand(2, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    table_fits(figures.lrp_summary(interp.lrp(cnn(), x), sample_titles=["sample 12 (true: 7)", "sample 3"]))
