"""interp.attribute / interp.explain against references that can fail: autograd, Captum's
own classes, hand-computed values on tiny models, and the completeness of integrated
gradients on every zoo classifier."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import interp
import zoo
from interp.attribution import as_found, default_cam_layer, spatial_layers
from interp.capture import intervene
from interp.errors import InputError, InterpError, TargetError, UnknownNameError
from interp.objectives import OutputPart, ReconstructionError
from tests.conftest import assert_untouched, hooks_left, snapshot

CLASSIFIERS = ["mlp-cancer", "cnn-digits", "cnn-shapes", "lstm-sentiment", "transformer-sentiment"]


def _tiny_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(3 * 2 * 2, 3))


class TinyTokens(nn.Module):
    """Embedding, then a mean over positions into a linear head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(7, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, tokens):
        return self.head(torch.tanh(self.embedding(tokens)).mean(1))


def _gradient_of(model, x, target):
    xx = x.clone().requires_grad_(True)
    out = model(xx)
    return torch.autograd.grad(out[torch.arange(len(x)), target].sum(), xx)[0]


def test_methods_are_listed_with_descriptions():
    found = interp.methods()
    assert list(found) == ["saliency", "gradient", "input_x_gradient", "smoothgrad", "integrated_gradients",
                           "guided_backprop", "deeplift", "occlusion", "grad_cam"]
    assert all(isinstance(d, str) and len(d) > 20 for d in found.values())


# ---------------------------------------------------------------- the plain gradient family

@pytest.mark.parametrize("target", [1, "predicted", torch.tensor([0, 1, 1, 0, 2])])
def test_gradient_is_autograd_of_the_target_logit(target):
    model = _tiny_cnn().eval()
    x = torch.rand(5, 1, 4, 4)
    a = interp.explain(model, x, target, "gradient")
    with torch.no_grad():
        logits = model(x)
    t = logits.argmax(1) if target == "predicted" else torch.as_tensor(target).expand(5)
    assert torch.equal(a.target, t)
    assert torch.allclose(a.score, logits[torch.arange(5), t])
    assert torch.allclose(a.values, _gradient_of(model, x, t), atol=1e-6)
    assert torch.allclose(interp.attribute(model, x, target, "saliency"), a.values.abs())
    assert torch.allclose(interp.attribute(model, x, target, "input_x_gradient"), a.values * x, atol=1e-7)


def test_gradient_family_agrees_with_captum(tiny_mlp):
    from captum.attr import InputXGradient, Saliency

    x = torch.randn(6, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_sal = Saliency(tiny_mlp).attribute(x, target=1)
        ref_ixg = InputXGradient(tiny_mlp).attribute(x, target=1)
    assert torch.allclose(interp.attribute(tiny_mlp, x, 1, "saliency"), ref_sal, atol=1e-6)
    assert torch.allclose(interp.attribute(tiny_mlp, x, 1, "input_x_gradient"), ref_ixg, atol=1e-6)


def test_single_output_models_take_target_zero():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))  # (batch,) scores
    x = torch.randn(4, 3)
    a = interp.explain(model, x, 0, "gradient")
    assert torch.allclose(a.values, model[0].weight.expand(4, 3))
    with pytest.raises(TargetError, match=r"\[0, 0\]"):
        interp.attribute(model, x, 1, "gradient")


# ---------------------------------------------------------------- integrated gradients

def test_integrated_gradients_of_a_linear_model_is_weight_times_difference():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    x, base = torch.randn(4, 5), torch.randn(5)
    a = interp.explain(model, x, 2, "integrated_gradients", steps=4, baseline=base)
    assert torch.allclose(a.values, model.weight[2] * (x - base), atol=1e-6)
    assert a.delta.abs().max() < 1e-5


def test_integrated_gradients_on_a_smooth_model_is_complete_per_sample():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    x = torch.randn(16, 6)
    a = interp.explain(model, x, "predicted", "integrated_gradients", steps=64)
    with torch.no_grad():
        gap = (model(x) - model(torch.zeros(1, 6)))[torch.arange(16), a.target]
    assert torch.allclose(a.values.sum(1), gap, rtol=1e-4, atol=1e-5)
    assert torch.allclose(a.values.sum(1) - gap, a.delta, atol=1e-5)  # delta is what it says


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_integrated_gradients_completeness_on_every_zoo_classifier(name):
    """Σ attribution = f(x) - f(baseline) within 1% (of Σ|f(x) - f(baseline)| over the test set,
    64 steps). Checked against forward passes, not against Captum's own delta."""
    entry = zoo.load(name)
    x = entry.test[0]
    a = interp.explain(entry.model, x, "predicted", "integrated_gradients", steps=64)
    model = entry.model
    with torch.no_grad():
        fx = model(x)[torch.arange(len(x)), a.target]
        if x.is_floating_point():
            fb = model(torch.zeros_like(x))[torch.arange(len(x)), a.target]
        else:  # token ids: the baseline is a zero embedding
            with intervene(model, [a.embedding], lambda _n, _a, out: torch.zeros_like(out)):
                fb = model(x)[torch.arange(len(x)), a.target]
    gap = fx - fb
    err = (a.values.flatten(1).sum(1) - gap).abs()
    assert err.sum() <= 0.01 * gap.abs().sum(), float(err.sum() / gap.abs().sum())
    assert err.median() <= 0.01 * gap.abs().median()
    assert torch.allclose(err, a.delta.abs(), atol=1e-3)


# ---------------------------------------------------------------- guided backprop, DeepLIFT

def _one_hidden_layer():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))


def test_guided_backprop_matches_the_hand_computed_rule():
    model = _one_hidden_layer()
    x = torch.randn(3, 4)
    w1, b1, w2 = model[0].weight, model[0].bias, model[2].weight
    active = (x @ w1.T + b1 > 0).float()
    expected = (F.relu(active * w2[1]) @ w1).detach()  # negative gradients stopped at the ReLU
    assert torch.allclose(interp.attribute(model, x, 1, "guided_backprop"), expected, atol=1e-6)


def test_guided_backprop_refuses_models_without_relu():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    with pytest.raises(InterpError, match="nn.ReLU"):
        interp.attribute(model, torch.randn(2, 3), 0, "guided_backprop")


def test_deeplift_matches_the_rescale_rule_by_hand():
    model = _one_hidden_layer()
    x, base = torch.randn(3, 4), torch.randn(4)
    w1, b1, w2 = model[0].weight, model[0].bias, model[2].weight
    z, z0 = x @ w1.T + b1, base @ w1.T + b1
    m = torch.where((z - z0).abs() > 1e-6, (F.relu(z) - F.relu(z0)) / (z - z0), (z > 0).float())
    expected = ((m * w2[0]) @ w1 * (x - base)).detach()
    a = interp.explain(model, x, 0, "deeplift", baseline=base)
    assert torch.allclose(a.values, expected, atol=1e-5)
    assert a.delta.abs().max() < 1e-4  # exact on ReLU nets


# ---------------------------------------------------------------- SmoothGrad

def test_smoothgrad_without_noise_is_the_gradient_and_is_seeded(tiny_mlp):
    x = torch.randn(4, 4)
    assert torch.allclose(interp.attribute(tiny_mlp, x, 0, "smoothgrad", noise=0.0, samples=3),
                          interp.attribute(tiny_mlp, x, 0, "gradient"), atol=1e-6)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    one = interp.attribute(model, x, 0, "smoothgrad", seed=3)
    assert torch.equal(one, interp.attribute(model, x, 0, "smoothgrad", seed=3))
    assert not torch.equal(one, interp.attribute(model, x, 0, "smoothgrad", seed=4))
    state = torch.random.get_rng_state()
    interp.attribute(model, x, 0, "smoothgrad")
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's random stream is untouched


# ---------------------------------------------------------------- occlusion

def test_occlusion_on_a_hand_built_model_equals_the_drop():
    model = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 3.0, 0.5]]))
    model = nn.Sequential(model, nn.ReLU())
    x = torch.tensor([[1.0, 1.0, 1.0, 2.0]])  # f = relu(1 - 2 + 3 + 1) = 3
    # occluding feature i (to 0): f drops to relu(3 - w_i x_i)
    expected = torch.tensor([[3 - 2.0, 3 - 5.0, 3 - 0.0, 3 - 2.0]])
    assert torch.allclose(interp.attribute(model, x, 0, "occlusion"), expected)
    # a window of 2 with stride 2: each feature gets its window's drop
    expected2 = torch.tensor([[3 - 4.0, 3 - 4.0, 3 - 0.0, 3 - 0.0]])
    assert torch.allclose(interp.attribute(model, x, 0, "occlusion", window=2, stride=2), expected2)
    # overlapping windows: each feature gets the mean drop of the windows covering it
    drops = [3 - 4.0, 3 - 2.0, 3 - 0.0]  # windows (0,1), (1,2), (2,3)
    expected3 = torch.tensor([[drops[0], (drops[0] + drops[1]) / 2, (drops[1] + drops[2]) / 2, drops[2]]])
    assert torch.allclose(interp.attribute(model, x, 0, "occlusion", window=2, stride=1), expected3)


def test_occlusion_on_images_covers_every_channel():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 1, bias=False))
    with torch.no_grad():
        model[1].weight.fill_(1.0)
    x = torch.rand(1, 2, 4, 4)
    a = interp.attribute(model, x, 0, "occlusion", window=2, stride=2)
    for i in range(2):
        for j in range(2):
            block = x[0, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].sum()
            assert torch.allclose(a[0, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2], block.expand(2, 2, 2))


def test_occlusion_window_larger_than_the_input_is_refused(tiny_mlp):
    with pytest.raises(InputError, match="larger than the input"):
        interp.attribute(tiny_mlp, torch.randn(2, 4), 0, "occlusion", window=5)
    with pytest.raises(InputError, match="positional dimensions"):
        interp.attribute(_tiny_cnn(), torch.rand(2, 1, 4, 4), 0, "occlusion", window=(1, 2, 2, 2))


# ---------------------------------------------------------------- Grad-CAM

def test_grad_cam_matches_the_definition_and_is_upsampled():
    model = _tiny_cnn().eval()
    x = torch.rand(2, 1, 4, 4)
    assert spatial_layers(model, x) == ["0", "1", "2"]
    assert default_cam_layer(model, x) == "1"  # the rectified maps after the last convolution
    a = interp.explain(model, x, 2, "grad_cam")
    assert a.options["layer"] == "1" and a.values.shape == x.shape
    store = {}
    with intervene(model, ["1"], lambda _n, _a, out: store.setdefault("a", out)):
        out = model(x)
    maps = store["a"]
    grads = torch.autograd.grad(out[:, 2].sum(), maps)[0]
    cam = F.relu((grads.mean((2, 3), keepdim=True) * maps).sum(1, keepdim=True))
    assert torch.allclose(a.values, F.interpolate(cam, size=(4, 4), mode="bilinear").detach(), atol=1e-6)


def test_grad_cam_refuses_layers_that_are_not_spatial():
    model = _tiny_cnn()
    with pytest.raises(InterpError, match=r"spatial layer.*'4' gives \(batch, 3\)"):
        interp.attribute(model, torch.rand(2, 1, 4, 4), 0, "grad_cam", layer="4")
    with pytest.raises(InterpError, match="the model has none"):
        interp.attribute(nn.Linear(3, 2), torch.rand(2, 3), 0, "grad_cam")
    with pytest.raises(UnknownNameError, match="did you mean '1'|valid"):
        interp.attribute(model, torch.rand(2, 1, 4, 4), 0, "grad_cam", layer="conv9")


# ---------------------------------------------------------------- token models

def test_token_attributions_are_one_value_per_token_through_the_embedding():
    model = TinyTokens()
    tokens = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 1]])
    a = interp.explain(model, tokens, 1, "gradient")
    assert a.values.shape == tokens.shape and a.embedding == "embedding"
    e = model.embedding(tokens).detach().requires_grad_(True)
    out = model.head(torch.tanh(e).mean(1))
    g = torch.autograd.grad(out[:, 1].sum(), e)[0]
    assert torch.allclose(a.values, g.sum(-1), atol=1e-6)
    ixg = interp.attribute(model, tokens, 1, "input_x_gradient")
    assert torch.allclose(ixg, (g * e).sum(-1), atol=1e-6)
    ig = interp.explain(model, tokens, 1, "integrated_gradients", steps=64)
    with torch.no_grad():
        gap = out[:, 1] - model.head(torch.zeros(2, 4))[:, 1]  # zero embedding baseline
    assert torch.allclose(ig.values.sum(1), gap, atol=1e-4)


@pytest.mark.parametrize("name", ["lstm-sentiment", "transformer-sentiment"])
def test_every_method_gives_one_value_per_token_on_zoo_sequence_models(name):
    entry = zoo.load(name)
    x = entry.test[0][:3]
    before = snapshot(entry.model)
    for method in interp.methods():
        if method == "grad_cam" or (method == "guided_backprop" and name == "lstm-sentiment"):
            continue
        values = interp.attribute(entry.model, x, "predicted", method)
        assert values.shape == x.shape, method
        assert torch.isfinite(values).all(), method
    assert_untouched(entry.model, before)


def test_token_baseline_is_a_token_id():
    model = TinyTokens()
    tokens = torch.tensor([[1, 2, 3]])
    a = interp.explain(model, tokens, 0, "integrated_gradients", baseline=0, steps=64)
    with torch.no_grad():
        gap = model(tokens)[:, 0] - model(torch.zeros_like(tokens))[:, 0]
    assert torch.allclose(a.values.sum(1), gap, atol=1e-4)
    with pytest.raises(InputError, match="token id"):
        interp.attribute(model, tokens, 0, "integrated_gradients", baseline=0.5)
    with pytest.raises(InputError, match="out of range"):
        interp.attribute(model, tokens, 0, "integrated_gradients", baseline=99)


def test_token_inputs_without_an_embedding_are_refused(tiny_mlp):
    with pytest.raises(InputError, match="nn.Embedding"):
        interp.attribute(tiny_mlp, torch.ones(2, 4, dtype=torch.long), 0, "gradient")
    with pytest.raises(InputError, match="token-id inputs"):
        interp.attribute(tiny_mlp, torch.ones(2, 4), 0, "gradient", embedding="0")


# ---------------------------------------------------------------- generative models

def test_autoencoder_objectives():
    entry = zoo.load("autoencoder-digits")
    x = entry.test[0][:4]
    error = ReconstructionError(entry.model)
    a = interp.explain(error, x, 0, "integrated_gradients", steps=256)
    with torch.no_grad():
        gap = ((entry.model(x) - x) ** 2).flatten(1).mean(1) - ((entry.model(0 * x)) ** 2).flatten(1).mean(1)
    assert torch.allclose(a.values.flatten(1).sum(1), gap, rtol=0.01, atol=1e-5)
    unit = interp.explain(entry.parts["encoder"], x, 3, "gradient")
    assert unit.values.shape == x.shape and torch.equal(unit.target, torch.full((4,), 3))


def test_vae_latent_unit_and_gan_real_score():
    vae = zoo.load("vae-digits")
    x = vae.test[0][:2]
    mean = OutputPart(vae.parts["encoder"], 0)
    g = interp.attribute(mean, x, 5, "gradient")
    xx = x.clone().requires_grad_(True)
    ref = torch.autograd.grad(vae.parts["encoder"](xx)[0][:, 5].sum(), xx)[0]
    assert torch.allclose(g, ref, atol=1e-6)
    with pytest.raises(InputError, match="no part 'sigma'"):
        interp.attribute(OutputPart(vae.parts["encoder"], "sigma"), x, 0, "gradient")
    gan = zoo.load("gan-digits")
    fake = gan.parts["generator"](torch.randn(2, 32, generator=torch.Generator().manual_seed(0))).detach()
    both = torch.cat([gan.test[0][:2], fake])
    a = interp.explain(gan.model, both, 0, "integrated_gradients", steps=256)
    with torch.no_grad():
        gap = (gan.model(both) - gan.model(torch.zeros_like(both)))[:, 0]
    assert a.values.shape == (4, 1, 8, 8)
    # a LeakyReLU net's path has many kinks: within 2% of the total gap at 256 steps
    assert (a.values.flatten(1).sum(1) - gap).abs().sum() <= 0.02 * gap.abs().sum()


# ---------------------------------------------------------------- bad input and the model left as found

def test_bad_input_gets_clear_errors(tiny_mlp):
    x = torch.randn(3, 4)
    with pytest.raises(UnknownNameError, match="integrated_gradients"):
        interp.attribute(tiny_mlp, x, 0, "integrated_gradient")
    with pytest.raises(TargetError, match=r"target 2 is out of range.*\[0, 1\]"):
        interp.attribute(tiny_mlp, x, 2, "gradient")
    with pytest.raises(TargetError, match="out of range"):
        interp.attribute(tiny_mlp, x, torch.tensor([0, 1, -1]), "integrated_gradients")
    with pytest.raises(TargetError, match="one per sample"):
        interp.attribute(tiny_mlp, x, [0, 1], "gradient")
    with pytest.raises(TargetError, match="integer"):
        interp.attribute(tiny_mlp, x, 0.5, "gradient")
    with pytest.raises(InputError, match=r"shape \(3, 5\).*last dimension is 4"):
        interp.attribute(tiny_mlp, torch.randn(3, 5), 0, "gradient")
    with pytest.raises(InputError, match="float64.*float32"):
        interp.attribute(tiny_mlp, x.double(), 0, "integrated_gradients")
    with pytest.raises(InputError, match="NaN"):
        interp.attribute(tiny_mlp, torch.tensor([[0.0, float("nan"), 1.0, 2.0]]), 0, "occlusion")
    with pytest.raises(InputError, match="batch"):
        interp.attribute(tiny_mlp, torch.randn(4), 0, "gradient")
    with pytest.raises(UnknownNameError, match="option of integrated_gradients 'step'.*steps"):
        interp.attribute(tiny_mlp, x, 0, "integrated_gradients", step=10)
    with pytest.raises(InputError, match="steps=0"):
        interp.attribute(tiny_mlp, x, 0, "integrated_gradients", steps=0)
    with pytest.raises(InputError, match=r"does not broadcast.*\(4,\)"):
        interp.attribute(tiny_mlp, x, 0, "deeplift", baseline=torch.zeros(3))


@pytest.mark.parametrize("method", list(interp.methods()))
def test_the_model_is_left_as_found_after_every_method(method):
    model = _tiny_cnn()
    model.train()  # a mode the analysis must not change
    model[4].weight.grad = torch.ones_like(model[4].weight)
    before = snapshot(model)
    interp.attribute(model, torch.rand(3, 1, 4, 4), "predicted", method)
    assert_untouched(model, before)
    assert model.training and torch.equal(model[4].weight.grad, torch.ones_like(model[4].weight))


class FailsUnderAutograd(nn.Module):
    """Raises in Captum's forward passes (which run with autograd on), after its hooks are in
    place; the library's own first pass runs without autograd and succeeds."""

    def __init__(self):
        super().__init__()
        self.net = _tiny_cnn()

    def forward(self, x):
        out = self.net(x)
        if torch.is_grad_enabled():
            raise RuntimeError("boom")
        return out


@pytest.mark.parametrize("method", ["guided_backprop", "deeplift", "integrated_gradients", "smoothgrad", "grad_cam"])
def test_the_model_is_left_as_found_after_an_error(method):
    model = FailsUnderAutograd()
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        interp.attribute(model, torch.rand(2, 1, 4, 4), 0, method, **({"samples": 4} if method == "smoothgrad" else {}))
    assert_untouched(model, before)


def test_as_found_removes_hooks_captum_forgot_and_only_those(tiny_mlp):
    def forgotten(*_):
        return None

    forgotten.__module__ = "captum.attr._core.some_method"  # as if Captum had left it
    with as_found(tiny_mlp):
        tiny_mlp[1].register_forward_hook(forgotten)
        tiny_mlp[0].register_full_backward_hook(forgotten)
        other = tiny_mlp[2].register_forward_hook(lambda *a: None)  # e.g. another thread's capture
        tiny_mlp.train(False)
    assert hooks_left(tiny_mlp) == 1 and tiny_mlp.training
    other.remove()
    assert hooks_left(tiny_mlp) == 0


def test_analyses_of_one_model_run_one_at_a_time(tiny_mlp):
    import threading

    inside, overlaps = [], []

    def run():
        with as_found(tiny_mlp):
            overlaps.append(len(inside))
            inside.append(1)
            threading.Event().wait(0.05)
            inside.pop()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [0, 0, 0, 0]
