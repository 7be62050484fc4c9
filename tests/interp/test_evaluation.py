"""interp.evaluation against references that can fail: the papers' formulas written out,
hand-computed curves on a linear model, and the sanity checks' known outcomes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import interp
from interp import evaluation as E
from interp.errors import InterpError, ModelError

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


class ImageAndFeatures(nn.Module):
    """A linear score of two inputs: an image (batch, 2, 2, 2) and features (batch, 3)."""

    def __init__(self):
        super().__init__()
        self.image, self.features = nn.Linear(8, 2), nn.Linear(3, 2)

    def forward(self, image, features):
        return self.image(image.flatten(1)) + self.features(features)


def test_two_inputs_are_ranked_together_and_removed_each_in_its_own_way():
    """On a linear score, removing a unit removes its contribution w·x: a pixel both its
    channels, a feature itself; the curve follows the joint order of all units."""
    torch.manual_seed(0)
    model = ImageAndFeatures().eval()
    image, features = torch.randn(5, 2, 2, 2), torch.randn(5, 3)
    w_image, w_features = model.image.weight[0].view(2, 2, 2).detach(), model.features.weight[0].detach()
    bias = float((model.image.bias[0] + model.features.bias[0]).detach())
    attribution = (w_image * image, w_features * features)  # the exact contributions, per element
    per_unit = torch.cat([attribution[0].sum(1).flatten(1), attribution[1]], 1)  # 4 pixels, then 3 features
    curve = E.perturbation_curve(model, (image, features), attribution, 0, steps=7, measure="score")
    expected = torch.empty(5, 8)
    for i in range(5):
        order = per_unit[i].argsort(descending=True)
        for k in range(8):
            kept = torch.ones(7)
            kept[order[:k]] = 0
            expected[i, k] = bias + (per_unit[i] * kept).sum()
    torch.testing.assert_close(curve.values, expected)
    mixed = [set(per_unit[i].argsort(descending=True)[:4].tolist()) for i in range(5)]
    assert any(m != {0, 1, 2, 3} and m & {0, 1, 2, 3} for m in mixed)  # the joint order interleaves the inputs

    # features not explained: they pass unchanged, the pixels alone are removed
    only = E.perturbation_curve(model, (image, features), (attribution[0], None), 0, steps=4, measure="score")
    fixed = attribution[1].sum(1)
    for i in range(5):
        order = per_unit[i, :4].argsort(descending=True)
        for k in range(5):
            kept = torch.ones(4)
            kept[order[:k]] = 0
            assert float(only.values[i, k]) == pytest.approx(float(bias + fixed[i] + (per_unit[i, :4] * kept).sum()),
                                                             abs=1e-5)

    ev = interp.evaluate(model, (image, features), methods=["input_x_gradient", "saliency"], steps=4,
                         metrics=["deletion", "insertion", "aopc", "randomisation"])
    assert all(v.shape == (5,) and bool(v.isfinite().all()) for v in ev.per_sample.values())
    assert ev.agreement.shape == (2, 2) and ev.randomisations["saliency"].examples.shape == (3, 7)


def test_ground_truth_of_two_inputs_is_read_over_their_units_together():
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(6, 3, generator=g), torch.randn(6, 4, generator=g))
    r = (torch.randn(6, 3, generator=g), torch.randn(6, 4, generator=g))
    m = (torch.rand(6, 3, generator=g) > 0.5, torch.rand(6, 4, generator=g) > 0.5)
    for metric in (E.mass_accuracy, E.rank_accuracy, E.pointing_game):
        torch.testing.assert_close(metric(r, m, x), metric(torch.cat(r, 1), torch.cat(m, 1)))
        torch.testing.assert_close(metric((r[0], None), (m[0], None), x), metric(r[0], m[0]))


class MaskedBag(nn.Module):
    """Token embeddings averaged over the tokens the attention mask keeps (none kept: zero)."""

    def __init__(self):
        super().__init__()
        self.emb, self.fc = nn.Embedding(12, 4), nn.Linear(4, 3)

    def forward(self, input_ids, attention_mask):
        keep = attention_mask[..., None].float()
        return self.fc((self.emb(input_ids) * keep).sum(1) / keep.sum(1).clamp(min=1))


def test_token_deletion_by_masking_sets_the_attention_mask_of_the_most_relevant_tokens_to_zero():
    torch.manual_seed(0)
    model = MaskedBag().eval()
    ids = torch.randint(1, 12, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[0, 4:] = 0  # padding, already masked
    relevance = torch.randn(3, 6)
    c = E.perturbation_curve(model, {"input_ids": ids, "attention_mask": mask}, {"input_ids": relevance}, 1,
                             baseline="mask", steps=3, measure="score")
    assert c.baseline == "mask"
    order = relevance.argsort(1, descending=True)
    with torch.no_grad():
        for k in range(4):  # step k: the 2k most relevant tokens masked, the ids as they were
            masked = mask.clone()
            for i in range(3):
                masked[i, order[i, :2 * k]] = 0
            torch.testing.assert_close(c.values[:, k], model(ids, masked)[:, 1])
        torch.testing.assert_close(c.values[:, -1], model(ids, torch.zeros_like(mask))[:, 1])  # all masked: fc(0)
        torch.testing.assert_close(c.values[:, -1], model.fc.bias[1].expand(3))


def test_several_inputs_that_do_not_fit_are_named_in_one_line():
    model = MaskedBag().eval()
    ids, mask = torch.randint(1, 12, (3, 6)), torch.ones(3, 6, dtype=torch.long)
    x, r = {"input_ids": ids, "attention_mask": mask}, torch.randn(3, 6)
    cases = [
        (lambda: E.perturbation_curve(model, x, r), "must come like the inputs .*a dict by input name"),
        (lambda: E.perturbation_curve(model, x, {"ids": r}), "must come like the inputs"),
        (lambda: E.perturbation_curve(model, x, {"input_ids": None, "attention_mask": None}), "explains none"),
        (lambda: E.perturbation_curve(model, x, {"input_ids": r[:, :4]}), "gives 4 units; input_ids"),
        (lambda: E.perturbation_curve(model, {"input_ids": ids, "attention_mask": mask[:, :5]},
                                      {"input_ids": r}, baseline="mask"),
         r"one entry per unit of input_ids \(3, 6\): shaped \(3, 6\)"),
        (lambda: E.perturbation_curve(ImageAndFeatures().eval(), (torch.randn(3, 2, 2, 2), torch.randn(3, 3)),
                                      (None, torch.randn(3, 3)), baseline="mask"), "no attention_mask"),
        (lambda: E.perturbation_curve(ImageAndFeatures().eval(), (torch.randn(3, 2, 2, 2), torch.randn(3, 3)),
                                      [torch.randn(3, 2, 2, 2)]), "a tuple of 2"),
    ]
    for call, error in cases:
        with pytest.raises(InterpError, match=error) as info:
            call()
        assert "\n" not in str(info.value)


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
    told = []
    a = interp.evaluate(entry.model, x, **kwargs, progress=lambda done, total: told.append((done, total)))
    b = interp.evaluate(entry.model, x, **kwargs)
    assert told == [(i, 9) for i in range(1, 10)]  # per method: the explanation, deletion, insertion
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
    (lambda m, x: interp.evaluate(m, x, metrics=["mass_accuracy"]), "mass_accuracy needs ground truth"),
    (lambda m, x: interp.evaluate(m, x, methods=[]), "no methods given"),
    (lambda m, x: interp.evaluate(m, x, metrics=()), "no metrics given"),
    (lambda m, x: interp.evaluate(m, x, seed="a"), "seed must be an int"),
    (lambda m, x: interp.evaluate(m, x, metrics=["faithfulness"]), "unknown metric"),
    (lambda m, x: interp.evaluate(m, x, methods=["shap"]), "unknown explanation method"),
    (lambda m, x: interp.evaluate(m, x, methods=["lrp:nope"]), "unknown composite"),
    (lambda m, x: interp.evaluate(m, x, steps=1), "at least 2 steps"),
    (lambda m, x: E.perturbation_curve(m, x, x, baseline=torch.zeros(3)), "does not fit"),
    (lambda m, x: E.perturbation_curve(m, x, x, baseline="sharpen"), "unknown baseline.*mask"),
    (lambda m, x: E.perturbation_curve(m, x, x, baseline="mask"), "no attention_mask; expected a dict of inputs"),
    (lambda m, x: interp.evaluate(m, x, metrics=["mass_accuracy"], truth=torch.ones(2, 3, dtype=torch.bool)),
     "do not fit"),
])
def test_bad_input_is_named(call, error):
    model = nn.Sequential(nn.Linear(5, 3)).eval()
    with pytest.raises(InterpError, match=error):
        call(model, torch.randn(4, 5))


def test_one_name_is_a_list_of_one_and_scores_are_followed_as_asked():
    torch.manual_seed(0)
    model, x = nn.Sequential(nn.Linear(5, 3)).eval(), torch.randn(4, 5)
    one = interp.evaluate(model, x, methods="input_x_gradient", metrics="deletion", steps=4)
    assert one.methods == ("input_x_gradient", "random") and one.metrics == ("deletion",)
    score = interp.evaluate(model, x, methods="input_x_gradient", metrics="deletion", steps=4, measure="score")
    with torch.no_grad():
        out = model(x)
    t = out.argmax(1)
    clean = score.curves[("input_x_gradient", "deletion")].values[:, 0]
    torch.testing.assert_close(clean, out.gather(1, t[:, None])[:, 0])  # the raw output, not a softmax
    probability = one.curves[("input_x_gradient", "deletion")].values[:, 0]
    torch.testing.assert_close(probability, out.softmax(1).gather(1, t[:, None])[:, 0])


@pytest.mark.parametrize("run", [
    lambda m, x: interp.evaluate(m, x, methods=["saliency"], steps=3),
    lambda m, x: E.perturbation_curve(m, x, torch.ones_like(x), steps=3),
    lambda m, x: E.randomisation(m, x, 0, "saliency"),
])
def test_a_model_normalising_by_its_batch_is_refused_before_it_runs(run):
    """A batch-norm in train mode would update its running statistics on the first forward:
    refused before any, so the model is left as it was."""
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3))  # train mode
    before = snapshot(model)
    with pytest.raises(ModelError, match="train mode"):
        run(model, torch.randn(6, 5))
    assert_untouched(model, before)


def test_evaluate_masks_the_tokens_of_a_hugging_face_bert():
    from tests import hf_models as H  # skips without transformers

    model, ids = H.bert(), H.tokens(4)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    x = {"input_ids": ids, "attention_mask": mask}
    before = snapshot(model)
    ev = interp.evaluate(model, x, methods=["saliency", "lrp:attnlrp"], metrics=["deletion", "insertion", "aopc"],
                         steps=4, baseline="mask")
    assert ev.methods == ("saliency", "lrp:attnlrp", "random")
    assert all(v.shape == (4,) and bool(v.isfinite().all()) for v in ev.per_sample.values())
    with torch.no_grad():
        clean = model(**x).logits.softmax(1)
        none = model(input_ids=ids, attention_mask=torch.zeros_like(mask)).logits.softmax(1)
    for (_, mode), c in ev.curves.items():
        t = c.target[:, None]
        start, end = (clean, none) if mode == "deletion" else (none, clean)
        torch.testing.assert_close(c.values[:, 0], start.gather(1, t)[:, 0])
        torch.testing.assert_close(c.values[:, -1], end.gather(1, t)[:, 0])
    assert_untouched(model, before)  # the same parameters, no hooks left on any module


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
