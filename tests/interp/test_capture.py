"""interp.capture: what is recorded, under which names, and that the model is left as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import interp
from interp.capture import leaf_names, select_layers
from interp.errors import CaptureError, InputError, InterpError, UnknownNameError
from tests.conftest import assert_untouched, hooks_left, snapshot


class Shared(nn.Module):
    """Calls the same ReLU module three times and the same Linear twice."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.act = nn.ReLU()
        self.out = nn.Linear(3, 1)

    def forward(self, x):
        h = self.act(self.fc(x))
        h = self.act(self.fc(h))
        return self.out(self.act(h))


class Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 2)
        self.drop = nn.Dropout(0.5)
        self.b = nn.Linear(2, 2)

    def forward(self, x):
        self.drop(self.a(x))
        raise RuntimeError("boom in the middle of forward")


class ResidualBN(nn.Module):
    """A small residual CNN with BatchNorm, as users write them."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.relu(self.bn1(self.stem(x)))
        h = self.relu(h + self.bn2(self.conv(h)))
        return self.fc(self.pool(h).flatten(1))


def test_every_leaf_recorded_with_hand_computed_values(tiny_mlp):
    x = torch.randn(5, 4)
    with interp.capture(tiny_mlp) as rec:
        y = tiny_mlp(x)
    acts = rec.activations
    assert list(acts) == ["0", "1", "2"]
    lin0, lin2 = tiny_mlp[0], tiny_mlp[2]
    h = x @ lin0.weight.T + lin0.bias
    torch.testing.assert_close(acts["0"], h)
    torch.testing.assert_close(acts["1"], h.clamp(min=0))
    torch.testing.assert_close(acts["2"], h.clamp(min=0) @ lin2.weight.T + lin2.bias)
    torch.testing.assert_close(acts["2"], y)
    assert hooks_left(tiny_mlp) == 0


def test_shapes_of_every_leaf_in_a_cnn():
    from zoo.models import CNN

    model = CNN(1, 8, 10, channels=(16, 32))
    with interp.capture(model) as rec:
        model(torch.randn(2, 1, 8, 8))
    shapes = {k: tuple(v.shape) for k, v in rec.activations.items()}
    assert shapes == {
        "features.0": (2, 16, 8, 8), "features.1": (2, 16, 8, 8),
        "features.2": (2, 32, 8, 8), "features.3": (2, 32, 8, 8), "features.4": (2, 32, 4, 4),
        "classifier.0": (2, 512), "classifier.1": (2, 64), "classifier.2": (2, 64),
        "classifier.3": (2, 10),
    }


def test_module_called_k_times_records_k_tensors():
    torch.manual_seed(0)
    model = Shared()
    x = torch.randn(4, 3)
    with interp.capture(model) as rec:
        model(x)
    assert rec.count("act") == 3 and rec.count("fc") == 2 and rec.count("out") == 1
    acts = rec.activations
    assert {"act:0", "act:1", "act:2", "fc:0", "fc:1", "out"} == set(acts)
    # call order is kept: act:1 is relu(fc(act:0))
    torch.testing.assert_close(acts["act:1"], model.fc(acts["act:0"]).clamp(min=0))
    torch.testing.assert_close(acts["fc:0"], model.fc(x))


@pytest.mark.parametrize("train_mode", [True, False])
def test_model_raising_mid_forward_is_left_untouched(train_mode):
    model = Exploding().train(train_mode)
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        with interp.capture(model) as rec:
            model(torch.randn(3, 2))
    assert rec.count("a") == 1  # what ran before the error was recorded
    assert_untouched(model, before)


def test_body_raising_removes_hooks(tiny_mlp):
    before = snapshot(tiny_mlp)
    with pytest.raises(KeyError):
        with interp.capture(tiny_mlp, ["0", "2"]):
            tiny_mlp(torch.randn(1, 4))
            raise KeyError("user code failed")
    assert_untouched(tiny_mlp, before)


def test_selection_by_name_glob_and_type():
    from zoo.models import CNN

    model = CNN(1, 8, 10)
    assert select_layers(model, "features.0") == ["features.0"]
    assert select_layers(model, "features.*") == [f"features.{i}" for i in range(5)]
    assert select_layers(model, nn.Conv2d) == ["features.0", "features.2"]
    assert select_layers(model, ["classifier.3", nn.ReLU]) == [
        "features.1", "features.3", "classifier.2", "classifier.3"]
    assert select_layers(model, "features") == ["features"]  # a container, by name
    with interp.capture(model, "features") as rec:
        model(torch.randn(1, 1, 8, 8))
    assert list(rec.activations) == ["features"]
    assert rec.activations["features"].shape == (1, 32, 4, 4)


def test_unknown_layer_lists_close_matches():
    from zoo.models import CNN

    model = CNN(1, 8, 10)
    with pytest.raises(UnknownNameError) as err:
        with interp.capture(model, "feature.0"):
            pass
    msg = str(err.value)
    assert "'feature.0'" in msg and "did you mean" in msg and "'features.0'" in msg
    assert isinstance(err.value, InterpError) and isinstance(err.value, ValueError)
    with pytest.raises(UnknownNameError, match="pattern"):
        select_layers(model, "decoder.*")
    with pytest.raises(UnknownNameError, match="LSTM"):
        select_layers(model, nn.LSTM)
    with pytest.raises(InputError):
        select_layers(model, [3])
    with pytest.raises(InputError, match="layers must be"):
        select_layers(model, 5)
    with pytest.raises(InputError):
        with interp.capture("not a model"):
            pass
    assert hooks_left(model) == 0


def test_lstm_tuple_output_gets_readable_names():
    lstm = nn.LSTM(3, 5, batch_first=True)
    model = nn.Sequential()
    model.add_module("lstm", lstm)
    with interp.capture(model, "lstm") as rec:
        out, (h, c) = lstm(torch.randn(2, 7, 3))
    acts = rec.activations
    assert set(acts) == {"lstm.out", "lstm.h", "lstm.c"}
    torch.testing.assert_close(acts["lstm.out"], out)
    torch.testing.assert_close(acts["lstm.h"], h)
    torch.testing.assert_close(acts["lstm.c"], c)
    torch.testing.assert_close(acts["lstm.out"][:, -1], acts["lstm.h"][0])


def test_transformer_encoder_attention_weights():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True, dropout=0.0)
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    x = torch.randn(3, 5, 8)
    before = snapshot(encoder)
    with torch.no_grad():
        plain = encoder(x)  # eval + no_grad: PyTorch's fused fast path
    with interp.capture(encoder) as rec:
        out = encoder(x)
    torch.testing.assert_close(out, plain, atol=1e-5, rtol=1e-5)  # same output with hooks on
    acts = rec.activations
    assert acts["layers.1.norm2"].shape == (3, 5, 8)
    assert not any("out_proj" in k for k in acts)  # attention is atomic, not out_proj
    weights = acts["layers.0.self_attn.weights"]  # asked for, although the layer passes need_weights=False
    assert weights.shape == (3, 2, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 5))
    # the weights are the softmax of scaled q.k for head 0, written out by hand
    attn = encoder.layers[0].self_attn
    q, k, _ = (x @ attn.in_proj_weight.T + attn.in_proj_bias).split(8, dim=-1)
    q0, k0 = q[..., :4], k[..., :4]
    torch.testing.assert_close(weights[:, 0], (q0 @ k0.transpose(1, 2) / 2.0).softmax(-1),
                               atol=1e-5, rtol=1e-5)
    # the attention output recorded is what out_proj of the weighted values gives
    assert acts["layers.0.self_attn.out"].shape == (3, 5, 8)
    assert_untouched(encoder, before)


def test_multihead_attention_weights_recorded_per_head_and_caller_gets_what_it_asked():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    holder = nn.ModuleDict({"attn": mha})
    x = torch.randn(3, 5, 8)
    with torch.no_grad():
        plain_out, plain_avg = mha(x, x, x)                        # averaged over heads (default)
        _, plain_heads = mha(x, x, x, average_attn_weights=False)
        _, plain_none = mha(x, x, x, need_weights=False)
    before = snapshot(holder)
    with interp.capture(holder) as rec:
        out, avg = mha(x, x, x)
        _, none = mha(x, x, x, None, False)                        # need_weights=False, positionally
        _, heads = mha(x, x, x, average_attn_weights=False)
    # the caller's results are what they are without capture
    torch.testing.assert_close(out, plain_out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(avg, plain_avg, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(heads, plain_heads, atol=1e-6, rtol=1e-5)
    assert none is None and plain_none is None
    # every call's per-head weights are recorded
    assert rec.count("attn.weights") == 3
    for i in range(3):
        torch.testing.assert_close(rec.activations[f"attn.weights:{i}"], plain_heads, atol=1e-6, rtol=1e-5)
    assert_untouched(holder, before)
    assert "_interp_wanted" not in mha.__dict__
    with interp.capture(holder, attention_weights=False) as rec:
        mha(x, x, x, need_weights=False)
    assert set(rec.activations) == {"attn.out"}


def test_residual_bn_with_inplace_relu_records_pre_relu_values():
    torch.manual_seed(0)
    model = ResidualBN().eval()
    x = torch.randn(2, 1, 6, 6)
    before = snapshot(model)
    with interp.capture(model) as rec:
        model(x)
    bn1 = model.bn1(model.stem(x))
    assert (bn1 < 0).any()
    torch.testing.assert_close(rec.activations["bn1"], bn1)  # not overwritten by ReLU(inplace)
    assert rec.count("relu") == 2
    assert_untouched(model, before)


def test_in_place_change_without_clone_is_reported():
    model = ResidualBN().eval()
    with pytest.raises(CaptureError, match="modified in place"):
        with interp.capture(model, clone=False):
            model(torch.randn(1, 1, 6, 6))
    assert hooks_left(model) == 0


def test_no_grad_by_default_and_grad_on_request(tiny_mlp):
    x = torch.randn(2, 4)
    with interp.capture(tiny_mlp) as rec:
        y = tiny_mlp(x)
    assert not y.requires_grad and not rec.activations["2"].requires_grad
    with interp.capture(tiny_mlp, enable_grad=True) as rec:
        y = tiny_mlp(x)
    y.sum().backward()
    assert tiny_mlp[0].weight.grad is not None
    assert not rec.activations["0"].requires_grad  # recorded tensors are detached


def test_record_shortcut_and_zoo_models_all_kinds():
    import zoo

    for name in zoo.names():
        entry = zoo.load(name)
        before = snapshot(entry.model)
        rec = interp.record(entry.model, entry.test[0][:2])
        assert set(rec.layer_of.values()) == set(leaf_names(entry.model)), name
        assert_untouched(entry.model, before)


def test_forwards_of_other_threads_are_not_recorded(tiny_mlp):
    """A model shared with another thread (a web server's) must not leak into a capture."""
    import threading

    started, release = threading.Event(), threading.Event()

    def other():
        started.wait(5)
        with torch.no_grad():
            tiny_mlp(torch.randn(7, 4))  # runs while the main thread's hooks are installed
        release.set()

    worker = threading.Thread(target=other)
    worker.start()
    with interp.capture(tiny_mlp) as rec:
        started.set()
        assert release.wait(5)
        tiny_mlp(torch.randn(2, 4))
    worker.join()
    assert {k: v.shape[0] for k, v in rec.activations.items()} == {"0": 2, "1": 2, "2": 2}
    assert hooks_left(tiny_mlp) == 0


def test_reduce_mean_and_max_over_spatial_and_time_axes():
    from zoo.models import CNN, LSTMClassifier, TransformerClassifier

    torch.manual_seed(0)
    cnn = CNN(1, 8, 10)
    x = torch.randn(4, 1, 8, 8)
    full = interp.record(cnn, x).activations
    mean = interp.record(cnn, x, reduce="mean").activations
    top = interp.record(cnn, x, reduce="max").activations
    torch.testing.assert_close(mean["features.0"], full["features.0"].mean((2, 3)))
    torch.testing.assert_close(top["features.4"], full["features.4"].amax((2, 3)))
    torch.testing.assert_close(mean["classifier.1"], full["classifier.1"])  # (N, D) stays

    lstm = LSTMClassifier(20, 2)
    tokens = torch.randint(0, 20, (3, 7))
    full = interp.record(lstm, tokens).activations
    mean = interp.record(lstm, tokens, reduce="mean").activations
    torch.testing.assert_close(mean["lstm.out"], full["lstm.out"].mean(1))  # over time
    # (layers, N, H): batch moved first, the layer axis kept (layers are not time)
    torch.testing.assert_close(mean["lstm.h"], full["lstm.h"].transpose(0, 1))
    torch.testing.assert_close(mean["embedding"], full["embedding"].mean(1))

    tr = TransformerClassifier(20, 2, max_len=7)
    full = interp.record(tr, tokens).activations
    mean = interp.record(tr, tokens, reduce="mean").activations
    # attention: mean over queries, per head and key = the attention each key receives
    torch.testing.assert_close(mean["blocks.0.attn.softmax"], full["blocks.0.attn.softmax"].mean(2))
    torch.testing.assert_close(mean["blocks.0.attn.softmax"].sum(-1), torch.ones(3, 2))


def test_reduce_follows_the_layout_through_element_wise_modules():
    """ReLU after Conv1d is (N, C, L) channels-first, although a 3-D ReLU output alone is ambiguous."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    x = torch.randn(5, 2, 8)
    full = interp.record(net, x).activations
    for layers in (None, "1"):  # with the producing conv recorded, and with the ReLU alone
        with interp.capture(net, layers, reduce="mean") as rec:
            net(x)
        torch.testing.assert_close(rec.activations["1"], full["1"].mean(2))  # (N, 4): channels
        assert rec.layout["1"] == "channels"
    assert hooks_left(net) == 0
    seq = nn.Sequential(nn.Linear(6, 4), nn.ReLU())  # (N, T, F) after a linear: features last
    z = torch.randn(2, 3, 6)
    rec = interp.record(seq, z, "1", reduce="mean")
    torch.testing.assert_close(rec.activations["1"], seq(z).mean(1))
    assert rec.layout["1"] == "last"


def test_two_layer_lstm_state_keeps_its_layers():
    lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True)
    holder = nn.ModuleDict({"lstm": lstm})
    x = torch.randn(5, 6, 3)
    with interp.capture(holder, reduce="mean") as rec:
        out, (h, c) = lstm(x)
    torch.testing.assert_close(rec.activations["lstm.h"], h.transpose(0, 1))  # (N, 2 layers, 4)
    torch.testing.assert_close(rec.activations["lstm.out"], out.mean(1))
    assert rec.layout == {"lstm.out": "last", "lstm.h": "stack", "lstm.c": "stack"}


def test_reduce_callable_and_its_failures(tiny_mlp):
    x = torch.randn(5, 4)
    rec = interp.record(tiny_mlp, x, reduce=lambda t: t[:, :1] * 2)
    torch.testing.assert_close(rec.activations["0"], tiny_mlp[0](x)[:, :1] * 2)
    before = snapshot(tiny_mlp)
    with pytest.raises(InputError, match=r"reduce failed on output '0' of shape \(5, 3\).*AttributeError"):
        interp.record(tiny_mlp, x, reduce=lambda t: t.no_such_method())
    assert_untouched(tiny_mlp, before)
    with pytest.raises(InputError, match="batch axis"):
        interp.record(tiny_mlp, x, reduce=lambda t: t.sum())
    with pytest.raises(InputError, match="reduce must be"):
        interp.record(tiny_mlp, x, reduce="median")
    assert_untouched(tiny_mlp, before)


def test_grads_equal_autograd_of_the_activation(tiny_mlp):
    x = torch.randn(6, 4)
    with interp.capture(tiny_mlp, ["1", "2"], grads=True) as rec:
        out = tiny_mlp(x)
        out[:, 1].sum().backward()
    # the same, by hand: gradient of the class-1 logit sum w.r.t. the ReLU output is W2[1]
    expected = tiny_mlp[2].weight[1].detach().expand(6, 3)
    torch.testing.assert_close(rec.gradients["1"], expected)
    torch.testing.assert_close(rec.gradients["2"], torch.tensor([[0.0, 1.0]]).expand(6, 2))
    assert hooks_left(tiny_mlp) == 0


def test_grads_with_reduce_give_grad_cam_weights():
    from zoo.models import CNN

    torch.manual_seed(1)
    cnn = CNN(1, 8, 10)
    x = torch.randn(3, 1, 8, 8)
    with interp.capture(cnn, "features.2", grads=True) as full:
        cnn(x)[:, 4].sum().backward()
    with interp.capture(cnn, "features.2", grads=True, reduce="mean") as pooled:
        cnn(x)[:, 4].sum().backward()
    g = full.gradients["features.2"]
    assert g.shape == (3, 32, 8, 8)
    torch.testing.assert_close(pooled.gradients["features.2"], g.mean((2, 3)))


def test_grads_need_something_that_requires_grad(tiny_mlp):
    for p in tiny_mlp.parameters():
        p.requires_grad_(False)
    with pytest.raises(InputError, match="requires grad"):
        with interp.capture(tiny_mlp, grads=True):
            tiny_mlp(torch.randn(2, 4))
    assert hooks_left(tiny_mlp) == 0


def test_unrolled_lstm_cell_records_every_step_in_order():
    torch.manual_seed(0)

    class Unrolled(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = nn.LSTMCell(3, 4)

        def forward(self, x):  # (batch, time, features)
            h = c = torch.zeros(x.shape[0], 4)
            for t in range(x.shape[1]):
                h, c = self.cell(x[:, t], (h, c))
            return h

    model = Unrolled()
    x = torch.randn(2, 5, 3)
    with interp.capture(model) as rec:
        model(x)
    assert rec.count("cell.h") == 5 and rec.count("cell.c") == 5  # (h, c) per step
    h = c = torch.zeros(2, 4)
    for t in range(5):  # the recurrence by hand
        h, c = model.cell(x[:, t], (h, c))
        torch.testing.assert_close(rec.activations[f"cell.h:{t}"], h)
        torch.testing.assert_close(rec.activations[f"cell.c:{t}"], c)


def test_dict_namedtuple_and_dataclass_outputs_get_field_names():
    import collections
    import dataclasses

    Pair = collections.namedtuple("Pair", "logits features")

    @dataclasses.dataclass
    class Out:
        score: torch.Tensor
        extra: dict

    class Heads(nn.Module):
        def forward(self, x):
            return Out(score=x.sum(1), extra={"double": 2 * x, "note": "not a tensor"})

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = nn.Identity()
            self.heads = Heads()

        def forward(self, x):
            p = Pair(x + 1, x - 1)
            self.pair(p)  # nn.Identity passes the named tuple through
            return self.heads(x)

    x = torch.randn(3, 2)
    model = Net()
    with interp.capture(model) as rec:
        model(x)
    acts = rec.activations
    assert set(acts) == {"pair.logits", "pair.features", "heads.score", "heads.extra.double"}
    torch.testing.assert_close(acts["pair.features"], x - 1)
    torch.testing.assert_close(acts["heads.extra.double"], 2 * x)


def test_the_root_keeps_its_own_name_when_a_child_is_called_model():
    from interp.capture import module_names

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = nn.Sequential(nn.Linear(2, 2))

    names = module_names(Wrapper())
    assert list(names) == ["(model)", "model", "model.0"]
    assert list(module_names(nn.Sequential(nn.Linear(2, 2)))) == ["model", "0"]
