"""interp.attribute / interp.explain against references that can fail: autograd, Captum's
own classes, hand-computed values on tiny models, and the completeness of integrated
gradients on every zoo classifier."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import interp
import zoo
from interp.attribution import as_found, default_cam_layer, spatial_layers
from interp.capture import intervene
from interp.errors import InputError, InterpError, ModelError, TargetError, UnknownNameError
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
    """Σ attribution = f(x) - f(baseline) within 1% at 64 steps, measured over the test set
    (Σ|error| against Σ|f(x) - f(baseline)|, and the median sample); checked against forward
    passes, not against the method's own delta. Single samples whose path is steep (the
    transformer's, or any with f(x) close to f(baseline)) need more steps: the worst five
    are checked to converge at 2048."""
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
    # per sample the error is the quadrature's: the worst samples converge with more steps
    worst = err.argsort(descending=True)[:5]
    fine = interp.explain(model, x[worst], a.target[worst], "integrated_gradients", steps=2048)
    assert ((fine.values.flatten(1).sum(1) - gap[worst]).abs() <= 0.01 * gap[worst].abs() + 1e-3).all()


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


class FailsInsideCaptum(nn.Module):
    """Raises in the forward passes Captum runs (after its hooks are in place); the library's
    own passes succeed."""

    def __init__(self):
        super().__init__()
        self.net = _tiny_cnn()

    def forward(self, x):
        if any("captum" in frame.filename for frame in inspect.stack()):
            raise RuntimeError("boom")
        return self.net(x)


@pytest.mark.parametrize("method", ["guided_backprop", "deeplift", "integrated_gradients", "occlusion", "grad_cam"])
def test_the_model_is_left_as_found_after_an_error(method):
    model = FailsInsideCaptum()
    before = snapshot(model)
    with pytest.raises(ModelError, match="runs on an input.*fails under.*boom") as raised:
        interp.attribute(model, torch.rand(2, 1, 4, 4), 0, method)
    assert isinstance(raised.value.__cause__, RuntimeError)  # the model's own exception, kept as the cause
    assert_untouched(model, before)
    assert not any(a in m.__dict__ for m in model.modules() for a in ("input", "output", "input_ref"))


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


# ---------------------------------------------------------------- found in review: state, threads, reuse

class CountsCalls(nn.Module):
    """A model whose forward changes a buffer, like BatchNorm's running statistics."""

    def __init__(self):
        super().__init__()
        self.net = _one_hidden_layer()
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.net(x)


@pytest.mark.parametrize("method", ["gradient", "integrated_gradients", "deeplift", "smoothgrad"])
def test_buffers_are_restored(method):
    model = CountsCalls()
    interp.attribute(model, torch.randn(3, 4), 0, method)
    assert float(model.calls) == 0


def test_batch_norm_in_train_mode_is_refused():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).train()
    before = snapshot(model)
    with pytest.raises(InterpError, match=r"'1' \(BatchNorm1d\) is in train mode.*model.eval\(\)"):
        interp.attribute(model, torch.randn(5, 4), 0, "integrated_gradients")
    assert_untouched(model, before)
    model.eval()
    interp.attribute(model, torch.randn(5, 4), 0, "integrated_gradients")
    assert_untouched(model, snapshot(model.eval()))
    for k, v in before["params"].items():  # running statistics unchanged
        assert torch.equal(model.state_dict()[k], v), k


def test_threads_with_their_own_wrappers_do_not_disturb_each_other():
    """The dashboard wraps the same modules anew on every request (objectives), from threads."""
    import threading

    torch.manual_seed(0)
    ae = nn.Sequential(nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 6), nn.Sigmoid())
    x = torch.rand(4, 6)
    methods = ["deeplift", "guided_backprop", "integrated_gradients"]
    expected = {m: interp.attribute(ReconstructionError(ae), x, 0, m) for m in methods}
    problems = []

    def work(method):
        for _ in range(15):
            try:
                got = interp.attribute(ReconstructionError(ae), x, 0, method)
                if not torch.allclose(got, expected[method], atol=1e-6):
                    problems.append(f"{method}: different result")
            except Exception as exc:  # noqa: BLE001  (any error is the failure we look for)
                problems.append(f"{method}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(m,)) for m in methods]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []
    assert hooks_left(ae) == 0


class ClassToken(nn.Module):
    """Embeds a class token with the same layer that embeds the input tokens."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(6, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, tokens):
        cls = self.embedding(torch.zeros(len(tokens), 1, dtype=torch.long))
        return self.head(torch.tanh(torch.cat([cls, self.embedding(tokens)], 1)).mean(1))


def test_only_the_tokens_call_of_a_shared_embedding_is_attributed():
    model = ClassToken()
    tokens = torch.tensor([[1, 2, 3], [4, 5, 1]])
    a = interp.explain(model, tokens, 1, "integrated_gradients", steps=128)

    def zero_tokens(_name, args, out):
        return torch.zeros_like(out) if args[0] is tokens else None

    with torch.no_grad():
        with intervene(model, ["embedding"], zero_tokens):
            at_baseline = model(tokens)[:, 1]
        gap = model(tokens)[:, 1] - at_baseline
    assert torch.allclose(a.values.sum(1), gap, atol=1e-5)
    assert a.delta.abs().max() < 1e-5


def test_token_occlusion_is_the_drop_when_a_token_is_zeroed():
    model = TinyTokens()
    tokens = torch.tensor([[1, 2, 3, 4]])
    a = interp.attribute(model, tokens, 0, "occlusion")
    with torch.no_grad():
        full = model(tokens)[0, 0]
        for i in range(4):
            def zero_i(_name, _args, out, i=i):
                out = out.clone()
                out[:, i] = 0
                return out

            with intervene(model, ["embedding"], zero_i):
                assert torch.isclose(a[0, i], full - model(tokens)[0, 0], atol=1e-6)


def test_smoothgrad_of_a_relu_unit_matches_the_analytic_expectation():
    """For f(x) = relu(w.x) the mean gradient under N(0, s^2) noise is Phi(w.x / (s |w|)) w."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 1, bias=False), nn.ReLU())
    x = torch.tensor([[0.3, -0.2, 0.5, 0.1, -0.4], [1.0, 0.0, -1.0, 0.5, 0.2]])
    w = model[0].weight[0].detach()
    noise, k = 0.2, 4000
    got = interp.attribute(model, x, 0, "smoothgrad", noise=noise, samples=k)
    s = noise * (x.max(1).values - x.min(1).values)
    p = torch.distributions.Normal(0, 1).cdf((x @ w) / (s * w.norm()))
    expected = p[:, None] * w
    assert torch.allclose(got, expected, atol=4 * float(w.abs().max()) * (0.25 / k) ** 0.5)
    alone = interp.attribute(model, x[1:], 0, "smoothgrad", noise=noise, samples=k)
    assert torch.allclose(got[1:], alone, atol=1e-6)  # a sample's map does not depend on its batch


def test_more_bad_input_gets_clear_errors(tiny_mlp):
    x = torch.randn(3, 4)
    with pytest.raises(InputError, match="stride"):
        interp.attribute(tiny_mlp, x, 0, "occlusion", window=1, stride=3)
    with pytest.raises(InputError, match="the baseline holds 1 NaN"):
        interp.attribute(tiny_mlp, x, 0, "integrated_gradients", baseline=torch.tensor([0, float("nan"), 0, 0]))
    with pytest.raises(InputError, match="empty"):
        interp.attribute(tiny_mlp, torch.randn(0, 4), 0, "gradient")
    with pytest.raises(InputError, match="bool"):
        interp.attribute(tiny_mlp, torch.ones(2, 4, dtype=torch.bool), 0, "gradient")


def test_deeplift_follows_an_activation_module_called_several_times():
    """torchvision's ResNet blocks call one ReLU twice; DeepLIFT (Captum keeps a module's input
    and output on the module) gets a copy per call while it runs, and equals DeepLIFT on the
    same network with one ReLU per use."""
    torch.manual_seed(0)
    relu = nn.ReLU()
    shared = nn.Sequential(nn.Linear(4, 4), relu, nn.Linear(4, 4), relu, nn.Linear(4, 2))
    separate = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    separate.load_state_dict(shared.state_dict())
    x = torch.randn(5, 4)
    before = snapshot(shared)
    a = interp.explain(shared, x, 0, "deeplift")
    b = interp.explain(separate, x, 0, "deeplift")
    torch.testing.assert_close(a.values, b.values)
    assert float(a.delta.abs().max()) < 1e-5  # DeepLIFT's summation to delta holds
    assert shared[1] is relu and shared[3] is relu  # the copies are gone
    assert_untouched(shared, before)


def test_results_keep_the_input_dtype_and_own_their_memory():
    model = _tiny_cnn().double()
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    for method in ("gradient", "grad_cam", "integrated_gradients"):
        values = interp.attribute(model, x, 0, method)
        assert values.dtype == torch.float64 and values.is_contiguous()
        values += 1  # a plain tensor the caller may change


class PaddedEncoder(nn.Module):
    """A user's nn.TransformerEncoder classifier with a padding mask (id 0 is padding)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(10, 8)
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(8, 3)

    def forward(self, tokens):
        pad = tokens == 0
        h = self.encoder(self.embedding(tokens), src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1))


def test_scores_come_from_the_path_the_attributions_take():
    """nn.TransformerEncoder takes an inference fast path without autograd; the score, the
    predicted target and the completeness gap must come from the autograd path."""
    model = PaddedEncoder().eval()
    tokens = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 2]])
    # a token baseline: from a zero embedding the post-norm layers' path is too steep for 64 steps
    a = interp.explain(model, tokens, "predicted", "integrated_gradients", steps=64, baseline=1)
    with torch.enable_grad():
        out = model(tokens).detach()
        at_baseline = model(torch.where(tokens == 0, 0, 1)).detach()  # padding stays padding
    assert torch.allclose(a.score, out[torch.arange(2), a.target], atol=1e-6)
    assert torch.equal(a.target, out.argmax(1))
    assert a.values.shape == tokens.shape
    gap = (out - at_baseline)[torch.arange(2), a.target]
    assert torch.allclose(a.values.sum(1), gap, atol=0.01 * float(gap.abs().max()))


class NestedEncoder(nn.Module):
    """Like PaddedEncoder, but with PyTorch's defaults: nested tensors on, and a mean over
    every position, padding included (where the inference fast path gives zeros)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(10, 8)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 2)
        self.head = nn.Linear(8, 3)

    def forward(self, tokens):
        return self.head(self.encoder(self.embedding(tokens), src_key_padding_mask=tokens == 0).mean(1))


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_frozen_attention_models_are_explained_on_one_code_path():
    """Without trainable parameters nothing requires grad in the library's own passes, and
    Captum's occlusion runs without autograd: attention's inference fast path must be off
    for all of them, or score, occlusion and attributions describe different functions."""
    model = NestedEncoder().eval()
    with torch.no_grad():
        fast = model(torch.tensor([[3, 4, 5, 0, 0]]))
    with torch.enable_grad():
        slow = model(torch.tensor([[3, 4, 5, 0, 0]]))
    assert not torch.allclose(fast, slow, atol=1e-3)  # the two paths differ on this model
    tokens = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 9, 2]])
    with torch.enable_grad():
        reference = model(tokens).detach()  # trainable: the autograd path
    model.requires_grad_(False)
    a = interp.explain(model, tokens, "predicted", "integrated_gradients", steps=64, baseline=1)
    assert torch.allclose(a.score, reference[torch.arange(2), a.target], atol=1e-6)
    occ = interp.attribute(model, tokens, 0, "occlusion")
    zero_first = lambda _n, _a, out: torch.cat([torch.zeros_like(out[:, :1]), out[:, 1:]], 1)  # noqa: E731
    with torch.enable_grad(), intervene(model, ["embedding"], zero_first):
        model.requires_grad_(True)
        occluded = model(tokens).detach()
        model.requires_grad_(False)
    assert torch.allclose(occ[:, 0], reference[:, 0] - occluded[:, 0], atol=1e-5)
    assert torch.backends.mha.get_fastpath_enabled()  # switched back on


def test_batch_statistics_and_inference_mode_are_refused():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8, track_running_stats=False), nn.Linear(8, 2)).eval()
    with pytest.raises(InterpError, match="no running statistics"):
        interp.attribute(model, torch.randn(3, 4), 0, "gradient")
    with torch.inference_mode(), pytest.raises(InterpError, match="inference_mode"):
        interp.attribute(_one_hidden_layer(), torch.randn(3, 4), 0, "gradient")


class WidestBatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _one_hidden_layer()
        self.widest = 0

    def forward(self, x):
        self.widest = max(self.widest, len(x))
        return self.net(x)


def test_smoothgrad_memory_is_bounded_by_rows_per_pass():
    from interp.attribution import ROWS_PER_EVAL

    model = WidestBatch()
    interp.attribute(model, torch.randn(3, 4), 0, "smoothgrad", samples=1500)
    assert model.widest <= ROWS_PER_EVAL
