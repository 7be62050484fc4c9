"""interp.lrp against references that can fail: numpy implementations of the rules written
here from the formulas, identities from the literature (LRP-0 = gradient x input on ReLU
nets, conservation on bias-free models), the original modules the canonizers replace,
and a faithfulness check (pixel flipping) on the zoo CNN."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import interp
from interp.errors import InputError, InterpError, TargetError, UnknownNameError
from interp.lrp import canonizers, composites, rules
from interp.lrp.composites import Composite

from ..conftest import assert_untouched, hooks_left, snapshot

# ---------------------------------------------------------------------------- models written here

def _zero_biases(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.rpartition(".")[2].startswith("bias"):
                p.zero_()
    return model


class ResidualBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class ResidualCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.bn, self.relu = nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU()
        self.block = ResidualBlock(6)
        self.pool, self.flat, self.fc = nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 4)

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.block(self.relu(self.bn(self.stem(x)))))))


def residual_cnn(shifts: bool) -> ResidualCNN:
    """Batch-norms with random scales; with ``shifts`` also random means and betas (biases)."""
    torch.manual_seed(1)
    m = ResidualCNN()
    with torch.no_grad():
        for bn in (m.bn, m.block.bn1, m.block.bn2):
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            if shifts:
                bn.running_mean.uniform_(-0.3, 0.3)
                bn.bias.uniform_(-0.2, 0.2)
    return m.eval()


class LSTMClassifier(nn.Module):
    def __init__(self, layers=1, bidirectional=False):
        super().__init__()
        self.embedding = nn.Embedding(20, 6)
        self.lstm = nn.LSTM(6, 5, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(5 * (2 if bidirectional else 1), 3)

    def forward(self, tokens):
        out, _ = self.lstm(self.embedding(tokens))
        return self.head(out[:, -1])


class EncoderClassifier(nn.Module):
    def __init__(self, activation="relu"):
        super().__init__()
        self.embedding = nn.Embedding(20, 8)
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, activation=activation)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(8, 3)

    def forward(self, tokens):
        return self.head(self.encoder(self.embedding(tokens)).mean(1))


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3)).eval()


def cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 5, 3),
                         nn.ReLU(), nn.Flatten(), nn.Linear(5 * 2 * 2, 3)).eval()


def tokens(n=4, t=7):
    return torch.randint(0, 20, (n, t), generator=torch.Generator().manual_seed(3))


BIAS_FREE = {
    "mlp": (lambda: _zero_biases(mlp()), lambda: torch.randn(6, 5)),
    "cnn": (lambda: _zero_biases(cnn()), lambda: torch.rand(6, 2, 8, 8)),
    "residual_cnn": (lambda: _zero_biases(residual_cnn(shifts=False)), lambda: torch.rand(6, 2, 6, 6)),
    "lstm": (lambda: _zero_biases(LSTMClassifier().eval()), tokens),
    "transformer": (lambda: _zero_biases(EncoderClassifier().eval()), tokens),
    "transformer_gelu": (lambda: _zero_biases(EncoderClassifier("gelu").eval()), tokens),
}


# ---------------------------------------------------------------------------- identities

@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("make, shape", [(mlp, (6, 5)), (cnn, (6, 2, 8, 8))])
def test_lrp0_equals_gradient_times_input_on_relu_nets(make, shape, bias):
    model = make() if bias else _zero_biases(make())
    x = torch.randn(*shape)
    result = interp.lrp(model, x, "predicted", composite="lrp0")
    expected = interp.attribute(model, x, result.target, "input_x_gradient")
    torch.testing.assert_close(result.relevance, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(BIAS_FREE))
@pytest.mark.parametrize("composite, params", [("lrp0", {}), ("epsilon", {"epsilon": 1e-9})])
def test_relevance_is_conserved_on_bias_free_models(name, composite, params):
    make, data = BIAS_FREE[name]
    torch.manual_seed(0)
    model, x = make(), data()
    before = snapshot(model)
    result = interp.lrp(model, x, "predicted", composite=composite, **params)
    assert result.relevance.shape == (x.shape if x.is_floating_point() else x.shape)
    torch.testing.assert_close(result.total, result.score, rtol=1e-4, atol=1e-7)
    assert_untouched(model, before)


@pytest.mark.parametrize("name", list(BIAS_FREE))
def test_default_composite_is_conserved_on_bias_free_models(name):
    """epsilon_plus_flat: flat and z+ keep the total too (up to their 1e-6 stabilisers)."""
    make, data = BIAS_FREE[name]
    torch.manual_seed(0)
    model, x = make(), data()
    result = interp.lrp(model, x, "predicted", epsilon=1e-9)
    torch.testing.assert_close(result.total, result.score, rtol=1e-4, atol=1e-5)


def test_merged_batch_norm_equals_lrp_on_the_folded_model():
    """Merging is a rewrite: LRP of the model equals LRP of a copy whose convolutions carry
    the batch-norm in their weights."""
    model = residual_cnn(shifts=True)
    x = torch.rand(3, 2, 6, 6)
    folded = residual_cnn(shifts=True)
    with torch.no_grad():
        for conv, bn in ((folded.stem, folded.bn), (folded.block.conv1, folded.block.bn1),
                         (folded.block.conv2, folded.block.bn2)):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
            conv.weight.mul_(scale[:, None, None, None])
            conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
            bn.running_mean.zero_(), bn.running_var.fill_(1 - bn.eps), bn.weight.fill_(1), bn.bias.zero_()
    for composite in ("epsilon_plus_flat", "alpha2_beta1", "lrp0"):
        a = interp.lrp(model, x, 0, composite=composite)
        b = interp.lrp(folded, x, 0, composite=composite)
        torch.testing.assert_close(a.relevance, b.relevance, rtol=1e-4, atol=1e-6)
    assert "merge_batchnorm" in dict(a.plan.canonizers)


# ---------------------------------------------------------------------------- the rules, against numpy

def _stab(z, eps=1e-6):
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def _np_rule(name, x, w, b, r, wp=None, wn=None, **p):
    """Relevance at the input of y = w x + b from relevance r at its output, one sample,
    written from the formulas (Zennit's generalised forms for inputs of both signs).
    ``wp``/``wn``: the matrices of the layer's positive and negative weights, when they
    are not the clamped matrix (a convolution whose padding repeats pixels)."""
    xp, xn = np.maximum(x, 0), np.minimum(x, 0)
    wp = np.maximum(w, 0) if wp is None else wp
    wn = np.minimum(w, 0) if wn is None else wn
    bp, bn = np.maximum(b, 0), np.minimum(b, 0)
    z = w @ x + b
    if name == "epsilon":
        return x * (w.T @ (r / _stab(z, p["epsilon"])))
    if name == "gamma":
        g = p["gamma"]
        up = (w + g * wp) @ xp + (b + g * bp) + (w + g * wn) @ xn
        down = (w + g * wn) @ xp + (b + g * bn) + (w + g * wp) @ xn
        vu, vd = (z > 0) * r / _stab(up), (z < 0) * r / _stab(down)
        return (xp * ((w + g * wp).T @ vu) + xn * ((w + g * wn).T @ vu)
                + xp * ((w + g * wn).T @ vd) + xn * ((w + g * wp).T @ vd))
    if name == "alpha_beta":
        a, bb = p["alpha"], p["beta"]
        pos, neg = wp @ xp + bp + wn @ xn, wn @ xp + bn + wp @ xn
        return (a * (xp * (wp.T @ (r / _stab(pos))) + xn * (wn.T @ (r / _stab(pos))))
                - bb * (xp * (wn.T @ (r / _stab(neg))) + xn * (wp.T @ (r / _stab(neg)))))
    if name == "flat":
        return np.ones_like(x) * (np.ones_like(w).T @ (r / _stab(np.ones_like(w) @ np.ones_like(x))))
    if name == "wsquare":
        return (w ** 2).T @ (r / _stab((w ** 2) @ np.ones_like(x) + b ** 2))
    if name == "zbox":
        lo, hi = np.full_like(x, p["low"]), np.full_like(x, p["high"])
        v = r / _stab(z - (wp @ lo + bp) - (wn @ hi + bn))
        return x * (w.T @ v) - lo * (wp.T @ v) - hi * (wn.T @ v)
    raise KeyError(name)


RULES = [
    ("epsilon", rules.Epsilon(0.3), {"epsilon": 0.3}),
    ("epsilon", rules.Epsilon(1e-6), {"epsilon": 1e-6}),
    ("gamma", rules.Gamma(0.25), {"gamma": 0.25}),
    ("gamma", rules.Gamma(1.0), {"gamma": 1.0}),
    ("alpha_beta", rules.AlphaBeta(2, 1), {"alpha": 2.0, "beta": 1.0}),
    ("alpha_beta", rules.ZPlus(), {"alpha": 1.0, "beta": 0.0}),
    ("alpha_beta", rules.AlphaBeta(1, 0), {"alpha": 1.0, "beta": 0.0}),
]
FIRST_RULES = [("flat", rules.Flat(), {}), ("wsquare", rules.WSquare(), {}),
               ("zbox", rules.ZBox(-2.0, 2.0), {"low": -2.0, "high": 2.0})] + RULES


@pytest.mark.parametrize("first_name, first, first_p", FIRST_RULES, ids=lambda v: str(v)[:20])
@pytest.mark.parametrize("upper_name, upper, upper_p", RULES, ids=lambda v: str(v)[:20])
def test_rules_on_a_two_layer_mlp_equal_numpy(first_name, first, first_p, upper_name, upper, upper_p):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)).double().eval()
    x = torch.randn(6, 5, dtype=torch.float64)  # inputs of both signs, biases present
    result = interp.lrp(model, x, 1, composite=Composite({"0": first, "2": upper}))
    w1, b1 = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    w2, b2 = model[2].weight.detach().numpy(), model[2].bias.detach().numpy()
    for i, xi in enumerate(x.numpy()):
        a1 = np.maximum(w1 @ xi + b1, 0)
        z2 = w2 @ a1 + b2
        r2 = np.zeros(3)
        r2[1] = z2[1]
        r1 = _np_rule(upper_name, a1, w2, b2, r2, **upper_p)   # at the ReLU's output = its input
        r0 = _np_rule(first_name, xi, w1, b1, r1, **first_p)
        np.testing.assert_allclose(result.relevance[i].numpy(), r0, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(result.layers["0"].received[i].item(), r1.sum(), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("layer, shape", [
    (lambda: nn.Conv2d(2, 3, 3, padding=1), (1, 2, 4, 4)),
    (lambda: nn.Conv1d(2, 3, 3, stride=2), (1, 2, 7)),
    (lambda: nn.Conv2d(4, 4, 3, padding=1, groups=2, padding_mode="reflect"), (1, 4, 3, 3)),
    (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2), (1, 2, 3, 3)),
], ids=["conv2d", "conv1d", "grouped-reflect", "transposed"])
def test_rules_on_convolutions_equal_the_same_rules_on_the_unfolded_matrix(layer, shape):
    """A convolution is a linear map: each rule on it equals the rule on its matrix (flat
    and w^2 included, as the all-ones input's matrix is the same map)."""
    torch.manual_seed(0)
    conv = layer().double().eval()
    x = torch.randn(*shape, dtype=torch.float64)
    n_out = conv(x).numel()
    jac = torch.autograd.functional.jacobian(lambda t: conv(t).flatten(), x).reshape(n_out, x.numel())
    w = jac.numpy()
    b = (conv(x).flatten() - jac @ x.flatten()).detach().numpy()
    model = nn.Sequential(conv, nn.Flatten()).eval()
    z = (w @ x.flatten().numpy() + b)
    for name, rule, p in FIRST_RULES:
        out = interp.lrp(model, x, 5, composite=Composite({"0": rule}))
        r = np.zeros_like(z)
        r[5] = z[5]
        if name in ("flat", "wsquare"):  # the layer with all-ones (squared) weights, as a matrix
            m = _matrix(conv, x, torch.ones_like(conv.weight) if name == "flat" else conv.weight ** 2)
            bias = 0.0 if name == "flat" else _conv_bias(conv, n_out) ** 2
            expected = m.T @ (r / _stab(m @ np.ones(x.numel()) + bias))
        else:  # rules clamp parameters, not matrix entries (they differ where padding repeats a pixel)
            wp, wn = (_matrix(conv, x, conv.weight.clamp(min=0)), _matrix(conv, x, conv.weight.clamp(max=0)))
            expected = _np_rule(name, x.flatten().numpy(), w, b, r, wp=wp, wn=wn, **p)
        np.testing.assert_allclose(out.relevance.flatten().numpy(), expected, rtol=1e-7, atol=1e-12, err_msg=name)


def _matrix(conv, x, weight):
    """The matrix of ``conv`` with other weights and no bias (padding and groups kept)."""
    other = copy.deepcopy(conv)
    with torch.no_grad():
        other.weight.copy_(weight)
        other.bias.zero_()
    return torch.autograd.functional.jacobian(lambda t: other(t).flatten(), x).reshape(-1, x.numel()).numpy()


def _conv_bias(conv, n_out):
    """The bias of every output position (each channel's bias repeated)."""
    channels = conv.out_channels
    return conv.bias.detach().numpy().repeat(n_out // channels)


def test_flat_rule_on_a_convolution_spreads_relevance_over_the_receptive_field():
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False).double().eval()
    model = nn.Sequential(conv, nn.Flatten())
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    out = interp.lrp(model, x, 0, composite=Composite({}, first=rules.Flat()))
    # output 0 is channel 0 at (0, 0): its 3x3 window clipped to the image covers 2x2 pixels
    expected = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    expected[0, 0, :2, :2] = conv(x).flatten()[0] / 4
    torch.testing.assert_close(out.relevance, expected)


# ---------------------------------------------------------------------------- canonizers

@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("layers, bidirectional, batch_first", [(1, False, True), (2, True, False), (2, False, True)])
def test_unrolled_recurrent_layers_equal_the_originals(kind, layers, bidirectional, batch_first):
    torch.manual_seed(0)
    m = kind(6, 5, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first).eval()
    x = torch.randn(3, 7, 6) if batch_first else torch.randn(7, 3, 6)
    d = 2 if bidirectional else 1
    h0 = torch.randn(layers * d, 3, 5)
    hx = (h0, torch.randn(layers * d, 3, 5)) if kind is nn.LSTM else h0
    expected = m(x, hx)
    modules = {"model": m}
    undo = []
    try:
        paths = canonizers.UnrollRecurrent().find(modules, {})
        canonizers.UnrollRecurrent().apply(modules, paths, {}, undo)
        got = m(x, hx)
    finally:
        for u in reversed(undo):
            u()
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-6)
    for a, b in zip(torch.utils._pytree.tree_leaves(got[1]), torch.utils._pytree.tree_leaves(expected[1])):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert "forward" not in m.__dict__ and not list(m.children())


@pytest.mark.parametrize("batch_first", [True, False])
def test_canonized_attention_equals_multihead_attention(batch_first):
    torch.manual_seed(0)
    m = nn.MultiheadAttention(8, 2, batch_first=batch_first).eval()
    x = torch.randn(3, 5, 8) if batch_first else torch.randn(5, 3, 8)
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2, [False] * 4 + [True]])
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
    for kwargs in ({}, {"key_padding_mask": pad}, {"attn_mask": causal}, {"need_weights": True,
                                                                          "average_attn_weights": False}):
        expected = m(x, x, x, **kwargs)
        undo = []
        try:
            canonizers.Attention().apply({"a": m}, ["a"], {}, undo)
            got = m(x, x, x, **kwargs)
        finally:
            for u in reversed(undo):
                u()
        torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-6)
        if kwargs.get("need_weights"):
            torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-6)


def test_a_module_used_twice_is_handled_per_call():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared, self.relu, self.head = nn.Linear(4, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False)

        def forward(self, x):
            return self.head(self.relu(self.shared(self.relu(self.shared(x)))))

    torch.manual_seed(0)
    model = Twice().eval()
    x = torch.randn(5, 4)
    result = interp.lrp(model, x, 0, composite="lrp0")
    torch.testing.assert_close(result.relevance, interp.attribute(model, x, 0, "input_x_gradient"))
    torch.testing.assert_close(result.total, result.score)
    assert result.layers["shared"].calls == 2


def test_canonized_models_are_left_as_they_were():
    for model, x in ((LSTMClassifier(2, True).eval(), tokens()), (EncoderClassifier().eval(), tokens()),
                     (residual_cnn(True), torch.rand(2, 2, 6, 6))):
        before = snapshot(model)
        children = [n for n, _ in model.named_modules()]
        interp.lrp(model, x)
        with pytest.raises(TargetError):
            interp.lrp(model, x, target=99)
        assert_untouched(model, before)
        assert [n for n, _ in model.named_modules()] == children
        assert not any("forward" in m.__dict__ for m in model.modules())
        assert all(p.requires_grad for p in model.parameters())


# ---------------------------------------------------------------------------- layers and flow

def test_per_layer_relevance_adds_up_along_a_chain():
    model = mlp()
    x = torch.randn(4, 5)
    result = interp.lrp(model, x, "predicted", composite="epsilon", epsilon=0.1)
    names = list(result.layers)
    assert names == ["4", "3", "2", "1", "0"]  # output to input
    torch.testing.assert_close(result.layers["4"].received, result.score)
    for upper, lower in zip(names, names[1:]):  # a chain: what one layer passes on, the next receives
        torch.testing.assert_close(result.layers[upper].total, result.layers[lower].received)
    for layer in result.layers.values():
        flat = layer.relevance.flatten(1)
        torch.testing.assert_close(layer.total, flat.sum(1))
        torch.testing.assert_close(layer.positive, flat.clamp(min=0).sum(1))
        torch.testing.assert_close(layer.negative, flat.clamp(max=0).sum(1))
    torch.testing.assert_close(result.layers["0"].relevance, result.relevance)
    # epsilon absorbs: every dense layer passes on less than it received (in magnitude, summed)
    assert float(result.layers["4"].absorbed.abs().sum()) > 0


def test_every_share_of_relevance_lost_is_accounted_for():
    """score - total = what the layers absorbed + what constants outside layers took:
    nothing else, on models with biases, batch-norm shifts and recurrent biases."""
    for model, x in ((mlp(), torch.randn(4, 5)), (residual_cnn(shifts=True), torch.rand(3, 2, 6, 6)),
                     (LSTMClassifier(2, True).eval(), tokens()), (EncoderClassifier().eval(), tokens())):
        result = interp.lrp(model, x, "predicted", composite="epsilon", epsilon=0.05)
        torch.testing.assert_close(result.outside_layers, torch.zeros(len(x)), atol=1e-5, rtol=0)

    class AddsConstant(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(3, 2, bias=False)
            self.register_buffer("shift", torch.tensor([1.0, -2.0, 0.5]))

        def forward(self, x):
            return self.head(x + self.shift)

    model = AddsConstant().eval()
    result = interp.lrp(model, torch.randn(4, 3), 1, composite="lrp0")
    expected = (model.head.weight @ model.shift)[1].expand(4)
    torch.testing.assert_close(result.outside_layers, expected)


def test_an_input_layer_rules_relevance_is_seen_through_a_flatten():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    x = torch.randn(3, 2, 4)
    result = interp.lrp(model, x, 0, composite="epsilon_plus_flat")
    flatten = result.layers["0"]
    torch.testing.assert_close(flatten.relevance, result.relevance)
    torch.testing.assert_close(flatten.received, result.layers["1"].total)
    torch.testing.assert_close(flatten.total, result.total)


def test_token_models_give_one_value_per_token():
    model = _zero_biases(LSTMClassifier().eval())
    x = tokens()
    result = interp.lrp(model, x, 2, epsilon=1e-9)
    assert result.relevance.shape == x.shape and result.embedding == "embedding"
    torch.testing.assert_close(result.total, result.score, rtol=1e-4, atol=1e-5)
    assert result.plan.first_layers == ("lstm.input_l0",)


# ---------------------------------------------------------------------------- the plan

def test_plan_lists_every_module_without_running_the_model():
    model = cnn()
    calls = []
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    try:
        p = interp.lrp.plan(model, "epsilon_gamma_box")
    finally:
        handle.remove()
    assert not calls
    assert [r.name for r in p.rows] == ["model", "0", "1", "2", "3", "4", "5", "6"]
    rule = {r.name: r.rule for r in p.rows}
    assert rule["0"].startswith("z^B") and rule["3"] == "gamma (0.25)" and rule["6"] == "epsilon (1e-06)"
    assert rule["2"] == "winner-take-all" and rule["1"] == "pass"
    assert "0" in str(p) and not p.unsupported


def test_plan_names_canonizers_and_what_they_rewrite():
    p = interp.lrp.plan(EncoderClassifier().eval(), x=tokens())
    assert dict(p.canonizers)["attention"] == ("encoder.layers.0.self_attn", "encoder.layers.1.self_attn")
    assert p.first_layers == ("encoder.layers.0.self_attn.value",)
    assert p.rule_of("encoder.layers.0.norm1") == "scale held constant"


def test_an_uncovered_layer_is_refused_before_the_run_naming_it():
    class Square(nn.Module):
        def forward(self, x):
            return x * x

    model = nn.Sequential(nn.Linear(3, 3), Square(), nn.Linear(3, 2)).eval()
    assert [r.name for r in interp.lrp.plan(model).unsupported] == ["1"]
    before = snapshot(model)
    with pytest.raises(InterpError, match=r"'1' \(Square.*with_rules"):
        interp.lrp(model, torch.randn(2, 3))
    assert_untouched(model, before)
    # registered by type, it runs
    result = interp.lrp(model, torch.randn(2, 3), composite=composites.get("lrp0").with_rules({Square: rules.Pass()}))
    assert result.relevance.shape == (2, 3)


def test_functional_non_linearities_without_a_rule_are_refused_not_crossed_silently():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 2)

        def forward(self, x):
            return self.b(torch.exp(self.a(x)))

    with pytest.raises(InterpError, match="ExpBackward"):
        interp.lrp(Functional().eval(), torch.randn(2, 3))
    plan = interp.lrp.plan(Functional().eval(), x=torch.randn(2, 3))  # the plan names it, before any run
    assert [r.kind for r in plan.unsupported] == ["ExpBackward0"] and "UNSUPPORTED" in str(plan)


def test_a_function_call_activation_gets_the_identity_rule_as_its_module_twin():
    """torch.tanh called as a function: AttnLRP's identity rule, as nn.Tanh gets it."""
    class Functional(nn.Module):
        def __init__(self, module: bool):
            super().__init__()
            self.a, self.b, self.act = nn.Linear(3, 3), nn.Linear(3, 2), nn.Tanh() if module else torch.tanh

        def forward(self, x):
            return self.b(self.act(self.a(x)))

    torch.manual_seed(0)
    f = Functional(False).eval()
    m = Functional(True).eval()
    m.load_state_dict(f.state_dict())
    x = torch.randn(4, 3)
    for _ in range(2):  # the first call finds it needs the function rules, the second starts with them
        a = interp.lrp(f, x, composite="epsilon")
        torch.testing.assert_close(a.relevance, interp.lrp(m, x, composite="epsilon").relevance)
    assert not f._forward_hooks and not f._forward_pre_hooks


def test_overrides_change_one_layer():
    model = mlp()
    comp = composites.get("epsilon_plus_flat").with_rules({"2": rules.Gamma(0.5)})
    p = interp.lrp.plan(model, comp)
    assert p.rule_of("2") == "gamma (0.5)" and p.rule_of("4") == "epsilon (1e-06)" and p.rule_of("0") == "flat"
    x = torch.randn(3, 5)
    a = interp.lrp(model, x, 0, composite=comp).relevance
    b = interp.lrp(model, x, 0).relevance
    assert not torch.allclose(a, b)


def test_an_input_layer_rule_deeper_in_the_model_is_refused():
    model = mlp()
    with pytest.raises(InterpError, match="input-layer rule"):
        interp.lrp(model, torch.randn(3, 5), 0, composite=Composite({"2": rules.Flat(), nn.Linear: rules.Epsilon()}))


# ---------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("make, error", [
    (lambda: rules.Epsilon(-1), "epsilon=-1"),
    (lambda: rules.Gamma(-0.1), "gamma=-0.1"),
    (lambda: rules.AlphaBeta(2, 2), "alpha - beta must be 1"),
    (lambda: rules.AlphaBeta(float("nan"), 1), "alpha=nan"),
    (lambda: rules.ZBox(1.0, 0.0), "low=1.0 is above high=0.0"),
    (lambda: composites.get("epsilon", epsilon=-0.5), "epsilon=-0.5"),
    (lambda: composites.get("epsilon", gamma=1), "unexpected keyword"),
    (lambda: Composite({"0": "epsilon"}), "expected a rule"),
])
def test_bad_rule_parameters_are_refused(make, error):
    with pytest.raises(InterpError, match=error):
        make()


def test_bad_inputs_are_refused_with_clear_errors():
    model = mlp()
    with pytest.raises(UnknownNameError, match="unknown composite 'epsilon_plsu_flat'.*epsilon_plus_flat"):
        interp.lrp(model, torch.randn(2, 5), composite="epsilon_plsu_flat")
    with pytest.raises(TargetError, match="out of range"):
        interp.lrp(model, torch.randn(2, 5), target=3)
    with pytest.raises(InputError, match="NaN"):
        interp.lrp(model, torch.full((2, 5), float("nan")))
    with pytest.raises(InputError, match="last dimension is 5"):
        interp.lrp(model, torch.randn(2, 4))
    with pytest.raises(InputError, match="batch"):
        interp.lrp(model, torch.randn(5))
    with pytest.raises(UnknownNameError, match="LRP rule"):
        rules.named("epsilonn")
    assert hooks_left(model) == 0


def test_batch_statistics_and_inference_mode_are_refused():
    model = residual_cnn(True).train()
    with pytest.raises(InterpError, match="train mode"):
        interp.lrp(model, torch.rand(2, 2, 6, 6))
    with torch.inference_mode(), pytest.raises(InterpError, match="inference_mode"):
        interp.lrp(mlp(), torch.randn(2, 5))


# ---------------------------------------------------------------------------- the zoo

@pytest.mark.parametrize("name", ["mlp-cancer", "cnn-digits", "cnn-shapes", "lstm-sentiment",
                                  "transformer-sentiment", "gan-digits"])
def test_every_zoo_model_runs_with_the_default_composite(name):
    import zoo

    entry = zoo.load(name)
    x = entry.test[0][:8]
    before = snapshot(entry.model)
    result = interp.lrp(entry.model, x)
    assert result.relevance.shape == x.shape and torch.isfinite(result.relevance).all()
    assert not result.plan.unsupported
    assert_untouched(entry.model, before)


def test_pixel_flipping_on_the_zoo_cnn_destroys_the_score_faster_than_random():
    """Samek et al. 2017: perturb the most relevant pixels first (replaced by uniform noise
    in the data's range), the target score falls faster than in a random order; the area
    over the perturbation curve (AOPC), averaged over 200 test samples, is larger."""
    import zoo

    entry = zoo.load("cnn-digits")
    x, _ = entry.test
    x = x[:200]
    model = entry.model
    result = interp.lrp(model, x, "predicted")
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(x.shape, generator=gen) * (x.max() - x.min()) + x.min()
    random_order = torch.stack([torch.randperm(x[0].numel(), generator=gen) for _ in range(len(x))])
    lrp_order = result.relevance.flatten(1).argsort(1, descending=True)

    def aopc(order, steps=16, per_step=4):
        flat, fill = x.flatten(1).clone(), noise.flatten(1)
        drops = []
        with torch.no_grad():
            start = model(x).gather(1, result.target[:, None])[:, 0]
            for k in range(1, steps + 1):
                idx = order[:, (k - 1) * per_step:k * per_step]
                flat.scatter_(1, idx, fill.gather(1, idx))
                score = model(flat.view_as(x)).gather(1, result.target[:, None])[:, 0]
                drops.append(start - score)
        return float(torch.stack(drops).mean())

    ours, random = aopc(lrp_order), aopc(random_order)
    assert ours > random, (ours, random)


# ---------------------------------------------------------------------------- review findings, pinned

def test_plan_and_run_agree_on_which_layers_read_the_input():
    class Unsqueezes(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.flat, self.fc = nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 2)

        def forward(self, x):
            return self.fc(self.flat(self.conv(x.unsqueeze(1))))

    class Slices(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.relu, self.fc2 = nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)

        def forward(self, x):
            return self.fc2(self.relu(self.fc1(x[:, :4])))

    for model, x, readers in ((Unsqueezes().eval(), torch.randn(2, 6, 6), ("conv",)),
                              (Slices().eval(), torch.randn(2, 6), ())):
        assert interp.lrp.plan(model, x=x).first_layers == readers
        assert interp.lrp(model, x).plan.first_layers == readers


def test_batch_norms_that_cannot_be_merged_stay_affine_maps():
    class PreActivation(nn.Module):  # conv0's output feeds the skip and the batch-norm
        def __init__(self):
            super().__init__()
            self.conv0, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.conv1, self.relu, self.fc = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Linear(4 * 36, 2)

        def forward(self, x):
            h = self.conv0(x)
            return self.fc((h + self.conv1(self.relu(self.bn(h)))).flatten(1))

    torch.manual_seed(0)
    for model, x in ((PreActivation().eval(), torch.rand(2, 1, 6, 6)),
                     (nn.Sequential(nn.BatchNorm1d(5), nn.Linear(5, 3)).eval(), torch.randn(4, 5))):
        bn = next(m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
        with torch.no_grad():
            bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
        result = interp.lrp(model, x, 0, composite="lrp0")
        assert not result.plan.canonizers
        # LRP-0 through an affine map is the gradient times the input
        torch.testing.assert_close(result.relevance, interp.attribute(model, x, 0, "input_x_gradient"))


def test_other_threads_see_the_model_unchanged_while_lrp_runs():
    import threading

    torch.manual_seed(0)
    model, x = EncoderClassifier("gelu").eval(), tokens()
    lstm = LSTMClassifier().eval()
    expected, expected_lstm = model(x).detach(), lstm(x).detach()
    keys = set(model.state_dict()) | {"lstm." + k for k in lstm.state_dict()}
    problems, stop = [], threading.Event()

    def train_like():
        while not stop.is_set():
            model.zero_grad()
            out = model(x)
            out.sum().backward()
            if any(p.grad is None for p in model.parameters()):
                problems.append("a parameter got no gradient")
            if not torch.allclose(out.detach(), expected, atol=1e-6) or not torch.allclose(
                    lstm(x).detach(), expected_lstm, atol=1e-6):
                problems.append("another output")
            if set(model.state_dict()) | {"lstm." + k for k in lstm.state_dict()} != keys:
                problems.append("other modules")

    worker = threading.Thread(target=train_like)
    worker.start()
    try:
        for _ in range(15):
            interp.lrp(model, x)
            interp.lrp(lstm, x)
    finally:
        stop.set()
        worker.join()
    assert not problems, sorted(set(problems))


def test_layers_of_time_first_tensors_are_summed_per_sample_when_time_equals_batch():
    class TimeFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding, self.proj = nn.Embedding(20, 6), nn.Linear(6, 6, bias=False)
            self.relu, self.head = nn.ReLU(), nn.Linear(6, 3, bias=False)

        def forward(self, t):
            return self.head(self.relu(self.proj(self.embedding(t).transpose(0, 1))).sum(0))

    torch.manual_seed(0)
    model = TimeFirst().eval()
    result = interp.lrp(model, torch.randint(0, 20, (5, 5)), composite="lrp0")  # 5 samples of 5 tokens
    torch.testing.assert_close(result.layers["proj"].total, result.score)
    torch.testing.assert_close(result.layers["relu"].received, result.score)


def test_epsilon_gamma_box_puts_z_box_on_a_first_convolution_only():
    assert interp.lrp.plan(mlp(), "epsilon_gamma_box", x=torch.randn(2, 5)).rule_of("0") == "epsilon (1e-06)"
    assert interp.lrp.plan(cnn(), "epsilon_gamma_box", x=torch.rand(2, 2, 8, 8)).rule_of("0").startswith("z^B")


def test_lrp0_through_average_pooling_is_the_gradient_times_the_input():
    torch.manual_seed(0)
    model = _zero_biases(nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                                       nn.Linear(3 * 4 * 4, 2)).eval())
    x = torch.rand(3, 1, 8, 8) * 1e-3  # small activations, where a stabiliser would show
    result = interp.lrp(model, x, 0, composite="lrp0")
    torch.testing.assert_close(result.relevance, interp.attribute(model, x, 0, "input_x_gradient"))


def test_z_box_bounds_are_each_samples_own_or_given():
    torch.manual_seed(0)
    model = cnn()
    x = torch.rand(3, 2, 8, 8)
    alone = interp.lrp(model, x[:1], 0, composite="epsilon_gamma_box").relevance
    brighter = torch.cat([x[:1], x[1:] * 1.5])
    torch.testing.assert_close(interp.lrp(model, brighter, 0, composite="epsilon_gamma_box").relevance[:1], alone)
    low, high = torch.zeros(1, 2, 1, 1), torch.ones(1, 2, 1, 1)  # Zennit's shape
    a = interp.lrp(model, x, 0, composite="epsilon_gamma_box", low=low, high=high).relevance
    b = interp.lrp(model, x, 0, composite="epsilon_gamma_box", low=0.0, high=1.0).relevance
    torch.testing.assert_close(a, b)
    with pytest.raises(InterpError, match="above"):
        rules.ZBox(torch.ones(2, 1, 1), torch.zeros(2, 1, 1))


def test_silent_fallbacks_are_refused():
    model = mlp()
    with pytest.raises(UnknownNameError, match="module path in the composite 'layer.2'"):
        interp.lrp(model, torch.randn(2, 5), composite=composites.get("lrp0").with_rules({"layer.2": rules.Gamma()}))

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding, self.fc = nn.Embedding(10, 4), nn.Linear(4, 4)

        def forward(self, t):
            h = torch.relu(self.fc(self.embedding(t))).mean(1)
            return torch.nn.functional.linear(h, self.embedding.weight)

    with pytest.raises(InterpError, match="parameter outside a module"):
        interp.lrp(Tied().eval(), torch.randint(0, 10, (2, 5)))
    with pytest.raises(InterpError, match="'1' \\(Softmax\\).*logits"):
        interp.lrp(nn.Sequential(nn.Linear(3, 2), nn.Softmax(-1)).eval(), torch.randn(2, 3))
    dropout = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Linear(3, 2))  # in train mode
    with pytest.raises(InterpError, match="Dropout.*train mode.*drops units at random.*model.eval"):
        interp.lrp(dropout, torch.randn(2, 3))

    class OwnParameter(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale, self.fc = nn.Parameter(torch.ones(3)), nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x * self.scale)

    assert "uses its own parameters (scale)" in str(interp.lrp.plan(OwnParameter()))
    with pytest.raises(InterpError, match="multiplies by a parameter outside a module"):
        interp.lrp(OwnParameter().eval(), torch.randn(2, 3))

    class AddsParameter(nn.Module):  # as a class token or a position embedding: absorbs like a bias
        def __init__(self):
            super().__init__()
            self.shift, self.fc = nn.Parameter(torch.tensor([0.5, -1.0, 2.0])), nn.Linear(3, 2, bias=False)

        def forward(self, x):
            return self.fc(x + self.shift)

    model = AddsParameter().eval()
    result = interp.lrp(model, torch.randn(2, 3), 0, composite="lrp0")
    torch.testing.assert_close(result.outside_layers, (model.fc.weight @ model.shift)[0].detach().expand(2))


def test_functions_outside_modules_are_refused_whatever_module_they_feed():
    class Gate(nn.Module):
        def forward(self, a, b):
            return a * b

    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.gate, self.head = nn.Linear(3, 3), nn.Linear(3, 3), Gate(), nn.Linear(3, 2)

        def forward(self, x):  # exp computed outside any module (no rule covers it), fed to the gate
            return self.head(self.gate(self.a(x), torch.exp(self.b(x))))

    class Clamps(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 4)

        def forward(self, x):
            return self.a(x).clamp(-1, 1)  # not an operation relevance passes through as a gradient

    comp = composites.get("epsilon").with_rules({Gate: rules.Gradient()})
    with pytest.raises(InterpError, match="ExpBackward"):
        interp.lrp(Gated().eval(), torch.randn(2, 3), composite=comp)
    with pytest.raises(InterpError, match="ClampBackward"):
        interp.lrp(Clamps().eval(), torch.randn(2, 3))


def test_every_zoo_model_runs_with_every_composite():
    import zoo
    from interp.objectives import OutputPart

    for name in zoo.names():
        entry = zoo.load(name)
        if entry.kind in ("autoencoder", "vae"):
            model = entry.parts["encoder"] if entry.kind == "autoencoder" else OutputPart(entry.parts["encoder"], 0)
        else:
            model = entry.model
        for composite in composites.names():
            result = interp.lrp(model, entry.test[0][:4], 0, composite=composite)
            assert torch.isfinite(result.relevance).all(), (name, composite)


def test_the_plan_says_what_cannot_apply_or_never_runs():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.relu, self.fc2, self.spare = nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.Linear(3, 3)

        def forward(self, x):
            return self.fc2(self.relu(self.fc1(x)))

    model, x = Unused().eval(), torch.randn(2, 4)
    comp = composites.get("epsilon_plus_flat").with_rules({"fc2": rules.WSquare()})
    p = interp.lrp.plan(model, comp, x=x)
    row = {r.name: r for r in p.rows}
    assert row["fc2"].role == "unsupported" and "does not read the input" in row["fc2"].note
    assert row["spare"].note == "not called on this input"
    assert {r.name: r for r in interp.lrp(model, x).plan.rows}["spare"].note == "not called on this input"


def test_the_unrolled_lstm_is_arras_lrp_by_hand():
    """Arras et al. 2017, epsilon -> 0: the signal's pre-activation split in proportion to
    input, previous hidden state and bias; the gates hold no relevance; c = f*c' + i*g
    split in proportion to its two terms; h = o * tanh(c) passes all to c."""
    torch.manual_seed(0)
    model = LSTMClassifier().double().eval()
    x = torch.randint(0, 20, (2, 4))
    result = interp.lrp(model, x, 1, composite="lrp0")
    e = model.embedding(x).detach().numpy()
    w_ih, w_hh = model.lstm.weight_ih_l0.detach().numpy(), model.lstm.weight_hh_l0.detach().numpy()
    b = (model.lstm.bias_ih_l0 + model.lstm.bias_hh_l0).detach().numpy()
    wy, by = model.head.weight.detach().numpy(), model.head.bias.detach().numpy()
    n = 5
    for s in range(2):
        hs, cs, gates = [np.zeros(n)], [np.zeros(n)], []
        for t in range(4):
            pre = w_ih @ e[s, t] + w_hh @ hs[-1] + b
            i, f, g, o = 1 / (1 + np.exp(-pre[:n])), 1 / (1 + np.exp(-pre[n:2 * n])), np.tanh(pre[2 * n:3 * n]), \
                1 / (1 + np.exp(-pre[3 * n:]))
            cs.append(f * cs[-1] + i * g)
            hs.append(o * np.tanh(cs[-1]))
            gates.append((i, f, g, pre[2 * n:3 * n]))
        z = wy @ hs[-1] + by
        r_h = hs[-1] * wy[1] * 1 / z[1] * z[1]               # LRP-0 through the head, target 1
        r_x = np.zeros((4, e.shape[2]))
        r_c = r_h                                            # h = o * tanh(c): all to c
        for t in range(3, -1, -1):
            i, f, g, pre_g = gates[t]
            r_g = i * g / (cs[t + 1]) * r_c                  # c = f c' + i g, in proportion
            r_prev_c = f * cs[t] / cs[t + 1] * r_c
            share = r_g / pre_g                              # pre_g = W_x x + W_h h' + b
            r_x[t] = e[s, t] * (w_ih[2 * n:3 * n].T @ share)
            r_h_prev = hs[t] * (w_hh[2 * n:3 * n].T @ share)
            r_c = r_prev_c + r_h_prev                        # h' passes to c'
        np.testing.assert_allclose(result.relevance[s].numpy(), r_x.sum(1), rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------- what calls reuse

def test_what_a_call_reuses_is_never_stale():
    """The draft plan and the batch-norm pairs are kept per model between calls; a change to
    a parameter (in place or replaced), a buffer, a module, the train/eval mode, a hook or
    the composite gives what a fresh copy of the model gives."""
    from tests import torch_models as T

    def fresh(model, x, composite="epsilon_plus_flat"):
        return interp.lrp(copy.deepcopy(model), x, 0, composite=composite).relevance

    def check(model, x, composite="epsilon_plus_flat"):
        torch.testing.assert_close(interp.lrp(model, x, 0, composite=composite).relevance, fresh(model, x, composite))

    model, x = T.resnet(width=4).eval(), torch.randn(2, 3, 16, 16)
    check(model, x)
    check(model, x)  # reused
    with torch.no_grad():
        model.conv1.weight.mul_(-1.5)                  # written in place
        model.bn1.running_var.mul_(3.0)                # a buffer the merged batch-norm reads
    check(model, x)
    model.conv1.weight = nn.Parameter(torch.randn_like(model.conv1.weight))  # replaced
    check(model, x)
    model.layer1[0].bn2 = nn.Identity()                # a module replaced: the pairs change
    check(model, x)
    check(model, x, "alpha2_beta1")                    # another composite
    check(model, torch.randn(3, 3, 24, 24))            # another input shape

    m = mlp()
    y = torch.randn(4, 5)
    check(m, y)
    handle = m[0].register_forward_hook(lambda mod, args, out: out * 2)  # a hook of the user's
    try:
        check(m, y)
    finally:
        handle.remove()
    check(m, y)
    m.train()
    m[1] = nn.Dropout(0.5)                             # a ReLU replaced, and train mode
    with pytest.raises(InterpError, match="eval"):
        interp.lrp(m, y, 0)
    m.eval()
    check(m, y)


def test_token_ids_are_found_through_padding_by_value():
    """The forward pads the ids (a start and an end token) before the embedding: the ids are
    found as a window of what the embedding reads, and explained one value per token."""
    import torch.nn.functional as F

    class Padded(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.fc = nn.Embedding(20, 6), nn.Linear(6, 3)

        def forward(self, tokens):
            return self.fc(self.emb(F.pad(tokens, (1, 1), value=0)).mean(1))

    torch.manual_seed(0)
    model, x = Padded().eval(), torch.randint(1, 20, (4, 7))
    a = interp.explain(model, x, method="integrated_gradients")
    assert a.values.shape == x.shape and a.embedding == "emb"
    assert float(a.delta.abs().max()) <= 1e-4  # completeness: the padding's vectors are constants
    r = interp.lrp(model, x, composite="lrp0")
    # the padding's share is what the constants outside the explained tokens absorbed
    pads = model.emb.weight[0] * 2 / 9
    expected = (model.fc.weight @ pads).detach()[r.target]
    torch.testing.assert_close(r.outside_layers, expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(r.relevance, interp.attribute(model, x, r.target, method="input_x_gradient"))


# ---------------------------------------------------------------------------- functions in a forward: edges

class _Functional(nn.Module):
    """A small model whose middle step is ``step(h)``, computed as functions in the forward."""

    def __init__(self, step, width: int = 6):
        super().__init__()
        self.a, self.b, self.step = nn.Linear(4, width), nn.Linear(width, 3), step
        self.w = nn.Parameter(torch.randn(width))

    def forward(self, x):
        return self.b(self.step(self, self.a(x)))


def _identity_gap(result) -> float:
    absorbed = sum((layer.absorbed for layer in result.layers.values()), torch.zeros_like(result.score))
    return float(((result.total + absorbed - result.score).abs() / result.score.abs()).max())


@pytest.mark.parametrize("step, error", [
    (lambda m, h: h * (1 + m.w), "multiplies by a parameter"),       # a factor computed from parameters only
    (lambda m, h: h * (m.w / 4), "multiplies by a parameter"),
    (lambda m, h: h + torch.rsqrt(torch.relu(h) + 1), "RsqrtBackward"),   # a scale used as a signal
    (lambda m, h: torch.ones_like(h) / h, "DivBackward"),                 # 1 / h: division by a signal
])
def test_what_no_function_rule_covers_is_refused(step, error):
    torch.manual_seed(0)
    for composite in ("epsilon", "attnlrp", "cp_lrp"):
        with pytest.raises(InterpError, match=error):
            interp.lrp(_Functional(step).eval(), torch.randn(3, 4), composite=composite)
        assert torch._C._len_torch_function_stack() == 0


@pytest.mark.parametrize("step", [
    lambda m, h: h / (h.std(-1, keepdim=True) + 1e-5),                     # a norm written out
    lambda m, h: h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6),
    lambda m, h: torch.tanh(h) * h,                                         # a gate
])
def test_normalisation_and_gates_written_out_account_for_every_share(step):
    torch.manual_seed(0)
    for composite in ("epsilon", "attnlrp", "cp_lrp", "lrp0"):
        r = interp.lrp(_Functional(step).eval(), torch.randn(3, 4), composite=composite)
        assert _identity_gap(r) <= 1e-4, composite


def test_an_in_place_write_after_a_product_is_followed():
    """T5-style ``scores = q @ k.T; scores += bias``: the product's output is a tensor of its
    own, written in place as the forward says, not an error blamed on the model."""
    def step(m, h):
        scores = h[:, :, None] @ h[:, None, :]
        scores += m.w[None, :, None].detach()
        return scores.softmax(-1) @ h[:, :, None]

    model = _Functional(lambda m, h: step(m, h)[..., 0]).eval()
    for composite in ("epsilon", "attnlrp", "cp_lrp"):
        r = interp.lrp(model, torch.randn(3, 4), composite=composite)
        assert _identity_gap(r) <= 1e-4, composite


@pytest.mark.parametrize("constant", ["key", "value"])
def test_fused_attention_passes_relevance_as_its_parts_when_keys_or_values_are_constants(constant):
    torch.nn.functional.scaled_dot_product_attention  # noqa: B018  (the fused kernel is what is tested)

    class Attention(nn.Module):
        def __init__(self, fused: bool):
            super().__init__()
            self.q, self.k, self.v, self.out = (nn.Linear(4, 4) for _ in range(4))
            self.memory = torch.randn(1, 5, 4, generator=torch.Generator().manual_seed(3))
            self.fused = fused

        def forward(self, x):  # (batch, tokens, 4)
            q, k, v = self.q(x), self.k(x), self.v(x)
            if constant == "key":
                k = self.memory.expand(len(x), -1, -1)[:, : x.shape[1]]
            else:
                v = self.memory.expand(len(x), -1, -1)[:, : x.shape[1]]
            if self.fused:
                mixed = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            else:
                mixed = torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1) @ v
            return self.out(mixed).sum(1)

    torch.manual_seed(0)
    fused, parts = Attention(True).eval(), Attention(False).eval()
    parts.load_state_dict(fused.state_dict())
    x = torch.randn(2, 5, 4)
    for composite in ("attnlrp", "cp_lrp"):
        torch.testing.assert_close(interp.lrp(fused, x, 0, composite=composite).relevance,
                                   interp.lrp(parts, x, 0, composite=composite).relevance, rtol=1e-4, atol=1e-6)


def test_rules_of_ones_own_are_never_reused_from_an_earlier_call():
    class Eps(rules.Rule):  # no _params: its printed form says nothing of eps
        def __init__(self, eps):
            self.eps = eps

        def apply(self, layer, x, z):
            return rules.Epsilon(self.eps).apply(layer, x, z)

    model, x = mlp(), torch.randn(4, 5)
    small = interp.lrp(model, x, 0, composite={nn.Linear: Eps(1e-6)}).relevance
    large = interp.lrp(model, x, 0, composite={nn.Linear: Eps(10.0)}).relevance
    again = interp.lrp(copy.deepcopy(model), x, 0, composite={nn.Linear: Eps(10.0)}).relevance
    torch.testing.assert_close(large, again)
    assert not torch.allclose(small, large)


def test_batch_norm_pairs_are_found_again_when_the_forward_routes_otherwise():
    class Routed(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2, self.bn = nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3)
            self.head, self.route = nn.Linear(3, 2), 1

        def forward(self, x):
            h = self.bn(self.c1(x) if self.route == 1 else self.c2(x))
            return self.head(h.mean((2, 3)))

    model, x = Routed().eval(), torch.randn(2, 2, 6, 6)
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    interp.lrp(model, x, 0, composite="epsilon")
    model.route = 2  # a plain attribute: the structure is the same, the dataflow is not
    torch.testing.assert_close(interp.lrp(model, x, 0, composite="epsilon").relevance,
                               interp.lrp(copy.deepcopy(model), x, 0, composite="epsilon").relevance)


def test_names_do_not_give_rules_to_modules_of_ones_own():
    class SoftmaxActivation(nn.Module):  # named like Hugging Face's activations, but not element-wise
        def forward(self, x):
            return torch.softmax(x, -1)

    class Conv1D(nn.Module):  # named like GPT-2's, computing x @ W.T
        def __init__(self):
            super().__init__()
            self.nf, self.weight = 6, nn.Parameter(torch.randn(6, 4))

        def forward(self, x):
            return x @ self.weight.t()

    class ChannelsFirstLayerNorm(nn.LayerNorm):  # ConvNeXt's: normalises axis 1
        def forward(self, x):
            return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    with pytest.raises(InterpError, match="SoftmaxActivation: no rule"):
        interp.lrp(nn.Sequential(nn.Linear(4, 4), SoftmaxActivation(), nn.Linear(4, 2)).eval(), torch.randn(2, 4))
    with pytest.raises(InterpError, match="Conv1D: no rule"):
        interp.lrp(nn.Sequential(Conv1D(), nn.Linear(6, 2)).eval(), torch.randn(2, 4))
    net = nn.Sequential(nn.Conv2d(2, 4, 1), ChannelsFirstLayerNorm(4), nn.Flatten(), nn.Linear(4 * 16, 2)).eval()
    with pytest.raises(InterpError, match="computes neither a layer norm nor an RMS norm"):
        interp.lrp(net, torch.randn(2, 2, 4, 4))
    with pytest.raises(InterpError, match="changes the shape"):  # pass-through given to a non-element-wise module
        interp.lrp(nn.Sequential(nn.Linear(4, 4), nn.GLU(), nn.Linear(2, 2)).eval(), torch.randn(2, 4),
                   composite=composites.get("epsilon").with_rules({nn.GLU: rules.Pass()}))
