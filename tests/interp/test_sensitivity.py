"""interp.sensitivity (the noise and layer kinds so far) against references that can fail:
zero at zero noise, the analytic noise response of a linear score, ablation of a layer
the output ignores, seeds, and the model and global random state left as they were."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import interp.sensitivity as S
from interp.errors import InputError, UnknownNameError

from ..conftest import assert_untouched, snapshot


def linear(n_in=6, n_out=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(n_in, n_out)).eval()


def test_no_noise_no_change():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(10, 4)
    noise = S.sensitivity(model, x, "predicted", "noise", scales=(0.0,), draws=3)
    assert torch.equal(noise.score_change, torch.zeros(1, 10))
    assert torch.equal(noise.probability_change, torch.zeros(1, 10))
    assert float(noise.agreement[0]) == 1.0
    layer = S.sensitivity(model, x, "predicted", "layer", noise=0.0, draws=2)
    assert torch.equal(layer.change, torch.zeros(len(layer.layers)))


def test_noise_on_a_linear_score_is_the_weights_norm_times_sigma():
    """score = w . x + b, noise N(0, (sigma std)^2) per input: the change has standard
    deviation ||w|| sigma std, which the root-mean-square change estimates."""
    model = linear()
    x = torch.randn(50, 6)
    result = S.sensitivity(model, x, 1, "noise", scales=(0.1, 0.5), draws=400, std=2.0, seed=3)
    w = model[0].weight[1].detach()
    for i, sigma in enumerate((0.1, 0.5)):
        expected = float(w.norm()) * sigma * 2.0
        measured = float(result.score_change[i].pow(2).mean().sqrt())  # over 50 x 400 draws
        assert measured == pytest.approx(expected, rel=0.03)
    assert result.std == 2.0 and result.draws == 400


def test_the_same_seed_gives_the_same_result_and_the_model_and_rng_are_untouched():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(10, 4)
    before = snapshot(model)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = S.sensitivity(model, x, "predicted", "noise", draws=5, seed=7)
    b = S.sensitivity(model, x, "predicted", "noise", draws=5, seed=7)
    c = S.sensitivity(model, x, "predicted", "noise", draws=5, seed=8)
    layers = S.sensitivity(model, x, "predicted", "layer", draws=2, seed=7)
    assert torch.equal(a.score_change, b.score_change) and not torch.equal(a.score_change, c.score_change)
    assert torch.equal(torch.get_rng_state(), state)
    assert_untouched(model, before)
    assert layers.layers == ("0", "1", "2")


def test_ablating_a_layer_the_output_ignores_changes_nothing():
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.ignored, self.head = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 3)

        def forward(self, x):
            self.ignored(x)  # computed, never used
            return self.head(torch.relu(self.used(x)))

    torch.manual_seed(0)
    model = Branch().eval()
    x = torch.randn(40, 4)
    labels = model(x).argmax(1)  # the model is right on all of them
    result = S.sensitivity(model, x, "predicted", "layer", labels=labels, draws=2)
    assert result.baseline == 1.0
    ablation = dict(zip(result.layers, result.ablation.tolist()))
    assert ablation["ignored"] == result.baseline
    assert ablation["head"] < result.baseline  # every sample then gets the mean prediction


def test_ablation_by_noise_is_graded_and_nothing_at_zero():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.randn(60, 4)
    labels = model(x).argmax(1)
    none = S.sensitivity(model, x, "predicted", "layer", labels=labels, draws=1, ablate=0.0)
    assert none.ablation.tolist() == [1.0] * 3 and none.ablated_by.startswith("noise 0")
    some = S.sensitivity(model, x, "predicted", "layer", labels=labels, draws=1, ablate=0.5, layers=["1"])
    much = S.sensitivity(model, x, "predicted", "layer", labels=labels, draws=1, ablate=5.0, layers=["1"])
    assert 1.0 >= float(some.ablation[0]) >= float(much.ablation[0]) and float(much.ablation[0]) < 1.0
    with pytest.raises(InputError, match="ablate must be"):
        S.sensitivity(model, x, "predicted", "layer", ablate="median")


def test_accuracy_curve_falls_with_noise_on_the_zoo_cnn():
    import zoo

    entry = zoo.load("cnn-digits")
    x, y = entry.test
    result = S.sensitivity(entry.model, x[:100], "predicted", "noise", labels=y[:100], scales=(0.0, 0.5, 2.0),
                           draws=4)
    assert float(result.accuracy[0]) > 0.9 and float(result.accuracy[2]) < float(result.accuracy[0])
    assert (result.score_change[1:].mean(1) > 0).all()


def test_token_models_are_perturbed_in_their_embedding_space():
    import zoo

    entry = zoo.load("lstm-sentiment")
    x = entry.test[0][:16]
    result = S.sensitivity(entry.model, x, "predicted", "noise", scales=(0.0, 0.5), draws=3)
    assert result.embedding == "embedding" and result.score_change.shape == (2, 16)
    assert torch.equal(result.score_change[0], torch.zeros(16)) and (result.score_change[1] > 0).all()
    layers = S.sensitivity(entry.model, x, "predicted", "layer", draws=2)
    assert "lstm.out" in layers.layers and "embedding" not in layers.layers


@pytest.mark.parametrize("kwargs, error", [
    ({"kind": "nope"}, "unknown sensitivity kind 'nope'"),
    ({"kind": "noise", "scales": (-0.1,)}, "finite numbers >= 0"),
    ({"kind": "noise", "scales": (float("nan"),)}, "finite numbers >= 0"),
    ({"kind": "noise", "draws": 0}, "draws must be an integer >= 1"),
    ({"kind": "noise", "stepz": 3}, "unknown option of sensitivity kind 'noise' 'stepz'"),
    ({"kind": "noise", "labels": [0, 1]}, "one class index per sample"),
    ({"kind": "layer", "noise": -1.0}, "finite number >= 0"),
    ({"kind": "noise", "std": 0.0}, "std must be a finite number > 0"),
])
def test_bad_input_is_refused(kwargs, error):
    with pytest.raises((InputError, UnknownNameError), match=error):
        S.sensitivity(linear(), torch.randn(5, 6), "predicted", **kwargs)


def test_occlusion_with_the_mean_as_baseline_on_a_linear_image_model_is_hand_computed():
    """score = sum w * x: occluding one pixel with the batch mean drops the score by
    w * (x - mean) there."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 1, bias=False)).eval()
    x = torch.rand(5, 1, 4, 4)
    result = S.sensitivity(model, x, 0, "occlusion", window=1, stride=1, baseline="mean")
    w = model[1].weight.detach().view(1, 1, 4, 4)
    torch.testing.assert_close(result.maps, w * (x - x.mean(0)))
    assert result.baseline == "mean"
    blurred = S.sensitivity(model, torch.full((2, 1, 4, 4), 0.3), 0, "occlusion", window=1, baseline="blur")
    assert torch.allclose(blurred.maps, torch.zeros(2, 1, 4, 4), atol=1e-6)  # a flat image blurs to itself


def test_ice_curves_of_an_ignored_feature_are_flat_and_average_to_partial_dependence():
    model = linear(4, 2)
    with torch.no_grad():
        model[0].weight[:, 2] = 0.0
    x = torch.randn(8, 4)
    ignored = S.sensitivity(model, x, 1, "occlusion", feature=2, grid=7)
    assert ignored.curves.shape == (8, 7)
    torch.testing.assert_close(ignored.curves, ignored.curves[:, :1].expand(8, 7))
    used = S.sensitivity(model, x, 1, "occlusion", feature=0, grid=(0.0, 1.0))
    slope = used.curves[:, 1] - used.curves[:, 0]
    torch.testing.assert_close(slope, model[0].weight[1, 0].detach().expand(8))
    torch.testing.assert_close(used.mean, used.curves.mean(0))


def test_explanation_sensitivity_of_a_constant_explanation_is_zero():
    """The gradient of a linear model does not depend on the input: sensitivity_max is 0,
    and so is every method's at zero radius."""
    model = linear()
    x = torch.randn(6, 6)
    result = S.sensitivity(model, x, 1, "explanation", methods=("gradient", "input_x_gradient"), composites=(),
                           draws=4)
    assert result.methods == ("gradient", "input_x_gradient")
    assert torch.equal(result.sensitivity_max[0], torch.zeros(6))
    assert (result.sensitivity_max[1] > 0).all()
    still = S.sensitivity(model, x, 1, "explanation", radius=0.0, draws=2)
    assert torch.equal(still.sensitivity_max, torch.zeros_like(still.sensitivity_max))
    assert "lrp:epsilon_plus_flat" in still.methods


@pytest.mark.parametrize("x, kwargs, error", [
    (torch.randn(5, 6), {"kind": "occlusion", "feature": 9}, "feature must be an index in \\[0, 5\\]"),
    (torch.randn(5, 6), {"kind": "occlusion"}, "give feature=<index>"),
    (torch.rand(2, 1, 4, 4), {"kind": "occlusion", "baseline": "fog"}, "baseline 'fog' is not understood"),
    (torch.rand(2, 1, 4, 4), {"kind": "occlusion", "window": 9}, "window"),
    (torch.randn(5, 6), {"kind": "explanation", "methods": ("nope",)}, "unknown attribution method"),
    (torch.randn(5, 6), {"kind": "explanation", "composites": ("nope",)}, "unknown composite"),
    (torch.randn(5, 6), {"kind": "explanation", "radius": -1.0}, "radius must be"),
])
def test_bad_occlusion_and_explanation_input_is_refused(x, kwargs, error):
    model = linear() if x.ndim == 2 else nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).eval()
    with pytest.raises((InputError, UnknownNameError), match=error):
        S.sensitivity(model, x, 0, **kwargs)


# ---------------------------------------------------------------------------- progress, batch-free outputs, one output

@pytest.mark.parametrize("kind, options", [
    ("noise", {"scales": (0.0, 0.1, 0.5), "draws": 2}),
    ("layer", {"draws": 3}),
    ("occlusion", {"feature": 1, "grid": 4}),
    ("explanation", {"methods": ("gradient",), "composites": ("epsilon",), "draws": 2}),
])
def test_progress_counts_up_to_the_total(kind, options):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(6, 4)
    seen = []
    S.sensitivity(model, x, "predicted", kind, progress=lambda done, total: seen.append((done, total)), **options)
    totals = {t for _, t in seen}
    assert len(totals) == 1 and seen[0][0] == 0 and seen[-1][0] == seen[-1][1] > 0
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    expected = {"noise": 3, "layer": 3 + 3, "explanation": 2}.get(kind)  # scales; draws + layers; methods
    if expected is not None:
        assert seen[-1][1] == expected
    with pytest.raises(InputError, match="progress must be a function"):
        S.sensitivity(model, x, "predicted", kind, progress="bar", **options)


def test_layer_kind_skips_outputs_that_do_not_depend_on_the_input():
    """A position table added to every sample (its output has no batch axis) is not a layer
    response: measuring it would divide a constant by itself (and its shape has no batch)."""
    class WithPositions(nn.Module):
        def __init__(self):
            super().__init__()
            self.positions = nn.Embedding(5, 3)
            self.head = nn.Linear(15, 2)

        def forward(self, x):
            return self.head((x + self.positions(torch.arange(5))).flatten(1))

    torch.manual_seed(0)
    model = WithPositions().eval()
    for n in (5, 7):  # a batch as long as the table, and another
        r = S.sensitivity(model, torch.randn(n, 5, 3), "predicted", "layer", draws=2)
        assert r.layers == ("head",)


def test_layer_ablation_of_a_one_output_model_is_the_scores_relative_change():
    """No classes to keep: ablating the identity layer by the batch mean moves the score
    w . x to w . mean(x), so the measure is ||w . (mean - x)|| / ||w . x||, by hand."""
    class OneOutput(nn.Module):
        def __init__(self):
            super().__init__()
            self.keep, self.head = nn.Identity(), nn.Linear(4, 1, bias=False)

        def forward(self, x):
            return self.head(self.keep(x))

    torch.manual_seed(0)
    model = OneOutput().eval()
    x = torch.randn(30, 4) + 1.0
    r = S.sensitivity(model, x, 0, "layer", draws=1, noise=0.0)
    assert r.measured_against == "score" and r.baseline == 0.0
    w = model.head.weight[0].detach()
    score = x @ w
    expected = float((x.mean(0) @ w - score).norm() / score.norm())
    ablation = dict(zip(r.layers, r.ablation.tolist()))
    assert ablation["keep"] == pytest.approx(expected, rel=1e-5)
    assert ablation["head"] == pytest.approx(expected, rel=1e-5)  # the same map, ablated after the head
    none = S.sensitivity(model, x, 0, "layer", draws=1, ablate=0.0)
    assert none.ablation.tolist() == [0.0, 0.0]  # noise of size 0: nothing moves


def test_occlusion_records_the_window_it_used():
    model = nn.Sequential(nn.Flatten(), nn.Linear(100, 2)).eval()
    r = S.sensitivity(model, torch.randn(2, 1, 10, 10), "predicted", "occlusion")
    assert r.window == (2, 2) and r.stride == (1, 1)  # the defaults filled in, not None


def test_an_identity_layer_adds_nothing_and_ablating_it_is_ablating_its_input():
    """nn.Identity passes its input on: its relative change under noise is exactly that of
    the layer before it, and replacing its output (by the batch mean, or with noise of size
    0) does exactly what replacing that layer's output does (nothing, for size 0)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Identity(), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(50, 4)
    labels = model(x).argmax(1)
    r = S.sensitivity(model, x, "predicted", "layer", labels=labels, draws=3)
    change, ablation = dict(zip(r.layers, r.change.tolist())), dict(zip(r.layers, r.ablation.tolist()))
    assert change["1"] == change["0"] and ablation["1"] == ablation["0"]
    untouched = S.sensitivity(model, x, "predicted", "layer", labels=labels, draws=1, ablate=0.0, layers=["1"])
    assert untouched.ablation.tolist() == [untouched.baseline] == [1.0]


def test_layer_ablation_measured_by_score_on_request_and_checked():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(20, 4)
    r = S.sensitivity(model, x, 0, "layer", draws=1, measure="score")
    assert r.measured_against == "score" and r.baseline == 0.0 and bool((r.ablation > 0).all())
    assert S.sensitivity(model, x, 0, "layer", draws=1).measured_against == "clean predictions"
    with pytest.raises(InputError, match="measure must be"):
        S.sensitivity(model, x, 0, "layer", measure="accuracy")


@pytest.mark.parametrize("kind, options, match", [
    ("noise", {"seed": "a"}, "seed must be an integer"),
    ("layer", {"seed": None}, "seed must be an integer"),
    ("noise", {"seed": 2 ** 64}, "seed must be an integer"),
    ("occlusion", {"feature": 0, "grid": 3.5}, "grid must be"),
    ("occlusion", {"feature": 0, "grid": "a"}, "grid must be"),
    ("occlusion", {"feature": 0, "grid": [[1.0], ["x"]]}, "grid must be"),
])
def test_bad_seeds_and_grids_are_refused(kind, options, match):
    model = nn.Sequential(nn.Linear(4, 3)).eval()
    with pytest.raises(InputError, match=match):
        S.sensitivity(model, torch.randn(5, 4), "predicted", kind, **options)


def test_the_parts_of_a_recurrent_layers_output_are_ablated_one_by_one():
    """A head reading the LSTM's final h: replacing h (batch axis 1) by its batch mean gives
    every sample the same prediction; replacing out or c, which nothing reads, changes nothing."""
    class LastHidden(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = nn.LSTM(3, 6, batch_first=True), nn.Linear(6, 2)

        def forward(self, x):
            _, (h, _) = self.lstm(x)
            return self.head(h[-1])

    torch.manual_seed(0)
    model = LastHidden().eval()
    x = torch.randn(40, 5, 3)
    with torch.no_grad():  # a bias that splits the samples between the two classes
        margin = model(x) @ torch.tensor([-1.0, 1.0])
        model.head.bias[1] -= float(margin.median()) + 1e-4
    labels = model(x).argmax(1)
    assert 0 < float(labels.float().mean()) < 1  # both classes present
    r = S.sensitivity(model, x, "predicted", "layer", labels=labels, draws=1)
    ablation = dict(zip(r.layers, r.ablation.tolist()))
    assert set(ablation) == {"lstm.out", "lstm.h", "lstm.c", "head"}
    assert ablation["lstm.out"] == ablation["lstm.c"] == 1.0
    shared = float((labels == labels[0]).float().mean())  # what one prediction for all gets right, at most
    assert ablation["lstm.h"] < 1.0 and ablation["lstm.h"] in (shared, 1 - shared)


class _Masked(nn.Module):
    """Token scores linear in the embeddings, over the positions whose id is not 0: the ids
    matter beyond their embedding (the mask), so pairing perturbed embeddings with another
    sample's ids would show."""

    def __init__(self):
        super().__init__()
        self.embedding, self.score = nn.Embedding(6, 4), nn.Linear(4, 2)

    def forward(self, ids):
        return (self.score(self.embedding(ids)) * (ids != 0)[..., None]).sum(1)


def test_token_explanations_are_rated_in_the_embedding_space_with_each_samples_own_ids():
    """Linear in the embeddings: the gradient is the same at every perturbed point, so its
    sensitivity_max is 0 and it predicts every change exactly, so its infidelity is 0, but
    only if each perturbed copy is run with its own sample's ids (masks differ)."""
    torch.manual_seed(0)
    model = _Masked().eval()
    ids = torch.tensor([[1, 2, 0, 0], [3, 0, 4, 5], [0, 0, 0, 2]])
    before = snapshot(model)
    r = S.sensitivity(model, ids, 1, "explanation", methods=("gradient", "integrated_gradients"), draws=5,
                      radius=0.5)
    assert r.methods == ("gradient", "integrated_gradients")
    torch.testing.assert_close(r.sensitivity_max[0], torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(r.infidelity[0], torch.zeros(3), atol=1e-8, rtol=0)
    assert_untouched(model, before)
    nonlinear = nn.Sequential(nn.Embedding(6, 4), nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 2)).eval()
    moved = S.sensitivity(nonlinear, ids, 1, "explanation", methods=("gradient",), draws=5, radius=0.5)
    assert bool((moved.sensitivity_max > 0).all())  # the check above can fail
    with pytest.raises(InputError, match="give composites=\\(\\)"):
        S.sensitivity(model, ids, 1, "explanation", composites=("epsilon",))


def test_a_module_called_twice_is_measured_per_call_and_not_ablated_alone():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.act, self.head = nn.Linear(4, 4), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.act(self.b(self.act(self.a(x)))))

    torch.manual_seed(0)
    model = Twice().eval()
    r = S.sensitivity(model, torch.randn(12, 4), "predicted", "layer", draws=1)
    ablation = dict(zip(r.layers, r.ablation.tolist()))
    calls = [k for k in ablation if k.startswith("act")]
    assert len(calls) == 2 and all(v != v for k, v in ablation.items() if k in calls)  # NaN: not ablated
    assert all(v == v for k, v in ablation.items() if k not in calls)
    with pytest.raises(InputError, match="measure='prediction' needs several outputs"):
        S.sensitivity(nn.Sequential(nn.Linear(4, 1)).eval(), torch.randn(6, 4), 0, "layer", measure="prediction")


def test_every_method_is_rated_on_the_same_perturbations():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    x = torch.randn(5, 4)
    alone = S.sensitivity(model, x, 0, "explanation", methods=("gradient",), composites=(), draws=4)
    second = S.sensitivity(model, x, 0, "explanation", methods=("input_x_gradient", "gradient"), composites=(),
                           draws=4)
    assert torch.equal(alone.sensitivity_max[0], second.sensitivity_max[1])
    assert torch.equal(alone.infidelity[0], second.infidelity[1])


def test_token_explanations_when_the_embedding_also_embeds_a_class_token():
    """The embedding layer reads the ids and a class token: only the call on the ids is the
    input, found by identity as in attribution (no embedding= needed)."""
    class WithClassToken(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding, self.head = nn.Embedding(6, 4), nn.Linear(4, 2)

        def forward(self, ids):
            cls = self.embedding(torch.zeros(len(ids), 1, dtype=torch.long))
            return self.head(torch.tanh(torch.cat([cls, self.embedding(ids)], 1)).sum(1))

    torch.manual_seed(0)
    ids = torch.tensor([[1, 2, 3], [4, 5, 1]])
    r = S.sensitivity(WithClassToken().eval(), ids, 0, "explanation", methods=("gradient",), draws=3)
    assert r.sensitivity_max.shape == (1, 2) and bool(torch.isfinite(r.infidelity).all())
