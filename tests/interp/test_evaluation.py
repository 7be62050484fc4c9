"""interp.evaluation against references that can fail: the papers' formulas written out,
hand-computed curves on a linear model, and the sanity checks' known outcomes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import interp
from interp import evaluation as E
from interp.errors import InterpError

from ..conftest import assert_untouched, snapshot


def _masks(n=200, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(n, size, size, dtype=torch.bool)
    for i in range(n):
        r, c = torch.randint(0, size - 3, (2,), generator=g).tolist()
        m[i, r:r + 3, c:c + 3] = True
    return m


# ---------------------------------------------------------------------------- ground truth

def test_the_true_mask_scores_one_and_a_random_map_its_area():
    masks = _masks()
    x = torch.rand(len(masks), 1, 8, 8)
    perfect = masks[:, None].float()
    assert torch.equal(E.mass_accuracy(perfect, masks, x), torch.ones(len(masks)))
    assert torch.equal(E.rank_accuracy(perfect, masks, x), torch.ones(len(masks)))
    assert torch.equal(E.pointing_game(perfect, masks, x), torch.ones(len(masks)))
    noise = torch.rand(len(masks), 1, 8, 8, generator=torch.Generator().manual_seed(1))
    area = masks.float().mean()
    assert abs(float(E.mass_accuracy(noise, masks, x).mean()) - float(area)) < 0.02
    assert abs(float(E.rank_accuracy(noise, masks, x).mean()) - float(area)) < 0.04
    assert abs(float(E.pointing_game(noise, masks, x).mean()) - float(area)) < 0.08


def test_the_formulas_as_written_in_the_papers():
    """Arras et al. 2022: mass accuracy = R_within / R_total over positive relevance; rank
    accuracy = |top-K ∩ GT| / K with K = |GT|."""
    r = torch.tensor([[3.0, -1.0, 2.0, 0.5, 0.0, 1.0]])
    m = torch.tensor([[True, True, False, False, False, True]])
    assert float(E.mass_accuracy(r, m)) == pytest.approx((3.0 + 1.0) / (3.0 + 2.0 + 0.5 + 1.0))
    assert float(E.rank_accuracy(r, m)) == pytest.approx(2 / 3)  # top 3: 3.0, 2.0, 1.0 -> two inside
    assert float(E.pointing_game(r, m)) == 1.0
    a, b = torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([[10.0, 20.0, 40.0, 30.0]])
    assert float(E.spearman(a, b)) == pytest.approx(1 - 6 * 2 / (4 * 15))  # 1 - 6 Σd² / n(n²-1)


# ---------------------------------------------------------------------------- faithfulness

def test_deletion_on_a_linear_model_equals_the_hand_computed_curve():
    torch.manual_seed(0)
    model = nn.Linear(6, 2).eval()
    x = torch.randn(5, 6)
    target = torch.zeros(5, dtype=torch.long)
    contributions = (model.weight[0] * x).detach()  # w·x per feature: the exact attribution of a linear score
    curve = E.perturbation_curve(model, x, contributions, target, steps=6, measure="score")
    expected = torch.empty(5, 7)
    for i in range(5):
        order = contributions[i].argsort(descending=True)
        for k in range(7):
            xi = x[i].clone()
            xi[order[:k]] = 0
            expected[i, k] = model(xi)[0]
    torch.testing.assert_close(curve.values, expected.detach())
    torch.testing.assert_close(curve.aopc, (expected[:, :1] - expected).mean(1).detach())
    # on a linear score, the most relevant first drops fastest: no order has a smaller area
    assert bool((curve.area <= curve.random_area + 1e-6).all()) and float(curve.area.mean()) < float(
        curve.random_area.mean())
    insertion = E.perturbation_curve(model, x, contributions, target, mode="insertion", steps=6, measure="score")
    assert bool((insertion.area >= insertion.random_area - 1e-6).all())


@pytest.mark.parametrize("baseline", ["zero", "mean", "blur", "noise", "road"])
def test_every_baseline_keeps_what_is_not_removed(baseline):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    x = torch.rand(4, 3, 8, 8)
    a = torch.rand(4, 1, 8, 8)
    c = E.perturbation_curve(model, x, a, baseline=baseline, steps=4, seed=3)
    with torch.no_grad():
        clean = model(x).softmax(1).gather(1, c.target[:, None])[:, 0]
    torch.testing.assert_close(c.values[:, 0], clean)  # nothing removed at step 0
    again = E.perturbation_curve(model, x, a, baseline=baseline, steps=4, seed=3)
    assert torch.equal(c.values, again.values) and torch.equal(c.random, again.random)  # seeded


def test_road_imputes_from_the_neighbours():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    removed = torch.zeros(1, 4, 4, dtype=torch.bool)
    removed[0, 1, 1] = True
    out = E._road(x, removed, torch.Generator().manual_seed(0), noise=0.0)
    neighbours = x[0, 0, 0:3, 0:3].sum() - x[0, 0, 1, 1]
    assert float(out[0, 0, 1, 1]) == pytest.approx(float(neighbours / 8))
    assert torch.equal(out[0, 0][~removed[0]], x[0, 0][~removed[0]])


def test_token_deletion_puts_the_pad_token():
    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.fc = nn.Embedding(10, 4), nn.Linear(4, 2)

        def forward(self, ids):
            return self.fc(self.emb(ids).mean(1))

    torch.manual_seed(0)
    model, ids = Bag().eval(), torch.randint(1, 10, (3, 5))
    a = interp.attribute(model, ids, 0, method="input_x_gradient")
    c = E.perturbation_curve(model, ids, a, 0, baseline=0, steps=5, measure="score")
    with torch.no_grad():
        all_pad = model(torch.zeros_like(ids))[:, 0]
    torch.testing.assert_close(c.values[:, -1], all_pad)


# ---------------------------------------------------------------------------- sanity checks

def test_an_explanation_that_ignores_the_weights_passes_through_randomisation_unchanged():
    def edges(model, x, target):  # an edge filter of the input: no model in it
        return (x[..., 1:, :] - x[..., :-1, :]).abs().sum(1, keepdim=True).expand(-1, x.shape[1], -1, -1)[..., :7, :]

    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()
    x = torch.rand(6, 1, 8, 8)
    r = E.randomisation(model, x, 0, edges, measure="spearman")
    assert r.layers == ("3", "0") and torch.allclose(r.similarity, torch.ones_like(r.similarity), atol=1e-6)


def test_the_gradient_of_the_zoo_cnn_fails_to_survive_randomisation():
    import zoo
    entry = zoo.load("cnn-digits")
    model, x = entry.model, entry.test[0][:16]
    before = snapshot(model)
    r = E.randomisation(model, x, "predicted", "saliency")
    assert r.measure == "ssim" and len(r.layers) >= 3
    assert float(r.final.mean()) < 0.5 < float(r.similarity[0].mean()) or float(r.final.mean()) < 0.3
    spear = E.randomisation(model, x, "predicted", "saliency", measure="spearman")
    assert float(spear.final.mean()) < 0.3
    assert_untouched(model, before)


# ---------------------------------------------------------------------------- evaluate

def test_evaluate_gives_a_tidy_table_reproducible_under_its_seed():
    import zoo
    entry = zoo.load("cnn-shapes")
    x, truth = entry.test[0][:24], entry.truth[:24]
    before = snapshot(entry.model)
    kwargs = dict(methods=["saliency", "input_x_gradient", "lrp:epsilon"],
                  metrics=["deletion", "insertion", "aopc", "mass_accuracy", "rank_accuracy", "pointing_game"],
                  truth=truth, seed=1, steps=8)
    a = interp.evaluate(entry.model, x, **kwargs)
    b = interp.evaluate(entry.model, x, **kwargs)
    assert a.methods == ("saliency", "input_x_gradient", "lrp:epsilon", "random")
    rows = a.table()
    assert {r["metric"] for r in rows} == set(kwargs["metrics"])
    for (m, k), v in a.per_sample.items():
        assert v.shape == (24,) and torch.equal(v, b.per_sample[(m, k)]), (m, k)
    assert a.agreement.shape == (3, 3) and torch.equal(torch.diag(a.agreement), torch.ones(3))
    best = a.leaderboard("deletion")
    assert best[-1][0] == "random"  # every method beats random order
    assert_untouched(entry.model, before)


@pytest.mark.parametrize("call, error", [
    (lambda m, x: interp.evaluate(m, x, metrics=["mass_accuracy"]), "need ground truth"),
    (lambda m, x: interp.evaluate(m, x, metrics=["faithfulness"]), "unknown metric"),
    (lambda m, x: interp.evaluate(m, x, methods=["shap"]), "unknown explanation method"),
    (lambda m, x: interp.evaluate(m, x, methods=["lrp:nope"]), "unknown composite"),
    (lambda m, x: interp.evaluate(m, x, steps=1), "at least 2 steps"),
    (lambda m, x: E.perturbation_curve(m, x, x, baseline=torch.zeros(3)), "does not fit"),
    (lambda m, x: E.perturbation_curve(m, x, x, baseline="sharpen"), "unknown baseline"),
    (lambda m, x: interp.evaluate(m, x, metrics=["mass_accuracy"], truth=torch.ones(2, 3, dtype=torch.bool)),
     "do not fit"),
])
def test_bad_input_is_named(call, error):
    model = nn.Sequential(nn.Linear(5, 3)).eval()
    with pytest.raises(InterpError, match=error):
        call(model, torch.randn(4, 5))


# ---------------------------------------------------------------------------- figures

def test_the_figures_show_what_the_evaluation_holds():
    from interp import figures

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8 * 8, 3)).eval()
    x, masks = torch.rand(10, 1, 8, 8), _masks(10)
    ev = interp.evaluate(model, x, methods=["saliency", "input_x_gradient"], truth=masks, steps=4,
                         metrics=["deletion", "insertion", "mass_accuracy", "randomisation"])
    fig = figures.perturbation_curves(ev, "deletion")
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name.split(" (")[0] for t in lines] == ["saliency", "input_x_gradient", "random order"]
    np_mean = ev.curves[("saliency", "deletion")].values.mean(0).numpy()
    assert list(lines[0].y) == pytest.approx(list(np_mean))
    assert len(figures.perturbation_curves(ev, "insertion", sample=3).data) == 3  # one sample: no bands
    board = figures.leaderboard(ev)
    deletion = board.data[0]
    assert list(deletion.y)[::-1] == [m for m, _ in ev.leaderboard("deletion")]  # best at the top
    heat = figures.agreement_matrix(ev)
    assert heat.data[0].z.shape == (2, 2) and list(heat.data[0].x) == ["saliency", "input_x_gradient"]
    rand = figures.randomisation_curves(ev)
    assert len(rand.data) == 2 and len(rand.data[0].x) == 2  # two weighted layers, from the top
    with pytest.raises(InterpError, match="no randomisation"):
        figures.randomisation_curves(interp.evaluate(model, x, methods=["saliency"], steps=4))


def test_ground_truth_metrics_equal_quantus():
    """Quantus 0.6 (Hedström et al. 2023) on the same inputs: rank accuracy and the pointing
    game as they are; mass accuracy on positive relevance (Arras et al. 2022 count positive
    relevance only; Quantus sums signed values unless given positive ones)."""
    quantus = pytest.importorskip("quantus")
    import numpy as np

    rng = np.random.default_rng(0)
    n = 24
    x = rng.random((n, 1, 8, 8)).astype(np.float32)
    a = rng.normal(size=(n, 1, 8, 8)).astype(np.float32)
    s = _masks(n, seed=2)[:, None].numpy().astype(np.float32)
    y = np.zeros(n, dtype=int)

    def theirs(metric, attribution):
        out = metric(disable_warnings=True)(model=None, x_batch=x, y_batch=y, a_batch=attribution, s_batch=s,
                                            device="cpu")
        return torch.tensor(np.asarray(out, dtype=np.float64)).float()

    at, st, xt = torch.tensor(a), torch.tensor(s).bool(), torch.tensor(x)
    torch.testing.assert_close(E.mass_accuracy(at, st, xt), theirs(quantus.RelevanceMassAccuracy, a.clip(min=0)))
    torch.testing.assert_close(E.rank_accuracy(at, st, xt), theirs(quantus.RelevanceRankAccuracy, a))
    torch.testing.assert_close(E.pointing_game(at, st, xt), theirs(quantus.PointingGame, a))


def test_label_randomisation_separates_what_the_model_learned_from_the_input():
    """A classifier of a planted rule retrained on shuffled labels: gradient explanations
    change (low similarity); an explanation that only reads the input does not (≈ 1)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=g)
    labels = (x[:, 0] + x[:, 1] > 0).long()

    def train(y):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(150):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model.eval()

    model = train(labels)
    probe = x[:50]
    gradient = E.label_randomisation(model, probe, "gradient", train, labels)
    assert float(gradient.mean()) < 0.4
    own = E.label_randomisation(model, probe, lambda m, xs, t: xs.abs(), train, labels)
    assert torch.allclose(own, torch.ones(50))
    with pytest.raises(InterpError, match="1-d tensor"):
        E.label_randomisation(model, probe, "gradient", train, labels[:, None])
