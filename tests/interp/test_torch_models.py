"""Models as people write them (``tests/torch_models.py``): a VGG with batch-norm, in-place
ReLU and dropout; a ResNet of torchvision's BasicBlock and Bottleneck (``out += identity``,
a downsampling conv+BN shortcut, one ReLU shared by a block); a 2-layer LSTM run
time-major with a Linear on its output; a model of two inputs and one of a dict of inputs.

Each goes through every analysis (capture, collect and its hit, layer statistics, every
attribution method, every LRP composite, every sensitivity kind, a projection), and is
left as found after every call, also after calls that raised. The numbers are checked
against what cannot be argued with: out-of-place twins, conservation, manual forwards,
and Zennit's own relevance on identical weights (a fixture made outside the project:
``tests/fixtures/zennit/make_reference.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import interp
from interp.errors import InputError, InterpError, ModelError, TargetError
from tests import torch_models as T
from tests.conftest import assert_untouched, snapshot

torch.set_num_threads(min(2, torch.get_num_threads()))


def _images(n=4, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _tokens(n=4, steps=7, seed=0):
    return torch.randint(0, 20, (n, steps), generator=torch.Generator().manual_seed(seed))


def _pair(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randn(n, 5, generator=g)


def _lstm():
    torch.manual_seed(0)
    return T.TimeMajorLSTM().eval()


def _two():
    torch.manual_seed(0)
    return T.randomize_batch_norms(T.TwoInput()).eval()


def _dict():
    torch.manual_seed(0)
    return T.DictInput().eval()


# name -> (model, inputs); fresh each time (tests may not share a model another test changes)
MODELS = {
    "vgg": lambda: (T.vgg(), _images()),
    "resnet": lambda: (T.resnet(), _images()),
    "lstm": lambda: (_lstm(), _tokens()),
    "two_inputs": lambda: (_two(), _pair()),
    "dict_inputs": lambda: (_dict(), dict(zip(("image", "table"), _pair()))),
}
TARGET = 1


def _tensors(x):
    return list(x.values()) if isinstance(x, dict) else list(x) if isinstance(x, tuple) else [x]


def _same_structure(values, x) -> None:
    """``values`` holds one tensor per input of ``x``, shaped like it, in the same structure."""
    if isinstance(x, dict):
        assert isinstance(values, dict) and list(values) == list(x)
    elif isinstance(x, tuple):
        assert isinstance(values, tuple) and len(values) == len(x)
    for v, t in zip(_tensors(values), _tensors(x)):
        assert v is not None and v.shape == t.shape and bool(torch.isfinite(v).all())


# ---------------------------------------------------------------------------- every analysis, every model

@pytest.mark.parametrize("name", MODELS)
def test_capture_collect_a_hit_statistics_and_a_projection(name, tmp_path):
    model, x = MODELS[name]()
    before = snapshot(model)
    rec = interp.record(model, x)
    assert rec.activations and all(torch.isfinite(t).all() for t in rec.activations.values())
    col = interp.collect(model, x, store=tmp_path, labels=torch.arange(4) % 3, progress=False, batch_size=3)
    assert not col.hit and col.n == 4
    again = interp.collect(model, x, store=tmp_path, labels=torch.arange(4) % 3, progress=False, batch_size=3)
    assert again.hit and again.path == col.path
    for out in col.outputs:  # what collect stored is what capture records, batch first
        recorded = rec.activations[out].movedim(rec.batch_axis[out.split(":")[0]], 0)
        np.testing.assert_allclose(col[out], recorded.numpy(), rtol=1e-5, atol=1e-6)
    stats = interp.layer_stats(col, k=2)
    assert set(stats) == set(col.outputs) and all(s.n_samples == 4 for s in stats.values())
    deepest = [o for o in col.outputs if col[o][0].size > 1][-1]
    m = interp.layer_projection.project_layer(model, x, deepest, "pca", store=tmp_path, labels=torch.arange(4) % 3)
    assert m.coordinates.shape == (4, 2)
    for out in [o for o in col.outputs if ":" in o][:2]:  # one call of a module called twice (a shared ReLU)
        m = interp.layer_projection.project_layer(model, x, out, "pca", store=tmp_path)
        assert m.layer == out and m.coordinates.shape == (4, 2)
    assert_untouched(model, before)


@pytest.mark.parametrize("method", list(interp.methods()))
@pytest.mark.parametrize("name", MODELS)
def test_every_attribution_method(name, method):
    model, x = MODELS[name]()
    before = snapshot(model)
    if name == "lstm" and method in ("grad_cam", "guided_backprop"):  # no spatial layer, no ReLU: said, not faked
        with pytest.raises(InterpError, match="grad_cam needs a spatial layer|no(ne)? .*ReLU|has none"):
            interp.explain(model, x, TARGET, method)
        assert_untouched(model, before)
        return
    a = interp.explain(model, x, TARGET, method)
    if method == "grad_cam" and name in ("two_inputs", "dict_inputs"):  # the conv branch's map, on the image
        image, table = _tensors(a.values)
        assert image.shape == _tensors(x)[0].shape and table is None
    else:
        _same_structure(a.values, x)
    assert_untouched(model, before)


@pytest.mark.parametrize("composite", list(interp.lrp.composites.names()))
@pytest.mark.parametrize("name", MODELS)
def test_every_lrp_composite(name, composite):
    model, x = MODELS[name]()
    before = snapshot(model)
    r = interp.lrp(model, x, TARGET, composite=composite)
    if name == "lstm":
        assert r.relevance.shape == x.shape  # one value per token
    else:
        _same_structure(r.relevance, x)
    assert r.layers and torch.isfinite(r.score).all()
    assert_untouched(model, before)


SENSITIVITY = {
    "noise": {"scales": (0.0, 0.1), "draws": 2},
    "occlusion": {},
    "layer": {"draws": 2},
    "explanation": {"draws": 2, "methods": ("gradient", "integrated_gradients")},
}


@pytest.mark.parametrize("kind", SENSITIVITY)
@pytest.mark.parametrize("name", MODELS)
def test_every_sensitivity_kind(name, kind):
    model, x = MODELS[name]()
    before = snapshot(model)
    options = dict(SENSITIVITY[kind])
    if kind == "occlusion" and name in ("two_inputs", "dict_inputs"):
        options["window"] = {"image": 2, "table": 1} if name == "dict_inputs" else {"input 0": 2, "input 1": 1}
    s = interp.sensitivity(model, x, TARGET, kind=kind, **options)
    if kind == "noise":
        assert torch.equal(s.score_change[0], torch.zeros(4)) and bool((s.score_change[1] > 0).all())
    elif kind == "occlusion":
        if name == "lstm":
            assert s.maps.shape == x.shape
        else:
            _same_structure(s.maps, x)
    elif kind == "layer":
        assert len(s.layers) >= 3 and torch.isfinite(s.change).all()
    else:
        assert s.sensitivity_max.shape[1] == 4 and torch.isfinite(s.infidelity).all()
    assert_untouched(model, before)


@pytest.mark.parametrize("name", MODELS)
def test_calls_that_raise_leave_the_model_as_found(name):
    model, x = MODELS[name]()
    before = snapshot(model)
    for call in (lambda: interp.lrp(model, x, 99),
                 lambda: interp.explain(model, x, 99, "integrated_gradients"),
                 lambda: interp.explain(model, x, 99, "deeplift"),
                 lambda: interp.sensitivity(model, x, 99, kind="layer", draws=1)):
        with pytest.raises(TargetError, match="out of range"):
            call()
        assert_untouched(model, before)
    with pytest.raises(InterpError):
        interp.lrp(model, x, 0, composite={nn.Linear: interp.lrp.rules.Flat(), "nope.*": interp.lrp.rules.Zero()})
    assert_untouched(model, before)


# ---------------------------------------------------------------------------- the numbers

@pytest.mark.parametrize("composite", list(interp.lrp.composites.names()))
@pytest.mark.parametrize("make", [T.vgg, T.resnet], ids=["vgg", "resnet"])
def test_in_place_models_give_the_relevance_of_their_out_of_place_twins(make, composite):
    model = make()
    twin = T.twin(model, make)
    x = _images()
    a = interp.lrp(model, x, "predicted", composite=composite)
    b = interp.lrp(twin, x, "predicted", composite=composite)
    torch.testing.assert_close(a.relevance, b.relevance, rtol=0, atol=1e-6 * float(b.relevance.abs().max()))
    assert list(a.layers) == list(b.layers)
    for layer in b.layers:
        torch.testing.assert_close(a.layers[layer].total, b.layers[layer].total, rtol=1e-6, atol=1e-9)


def test_the_two_input_twin_too_and_per_input_lrp0_is_gradient_times_input():
    model = _two()
    twin = T.twin(model, T.TwoInput)
    x = _pair()
    a = interp.lrp(model, x, TARGET, composite="lrp0").relevance
    b = interp.lrp(twin, x, TARGET, composite="lrp0").relevance
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=0, atol=1e-7)
    g = interp.explain(model, x, TARGET, "input_x_gradient").values  # LRP-0 = gradient x input on ReLU nets
    for u, v in zip(a, g):
        torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("make", [T.vgg, T.resnet], ids=["vgg", "resnet"])
def test_bias_free_variants_conserve_relevance(make):
    """LRP-0 on a model without biases (nor batch-norm shifts) conserves relevance end to end
    and layer by layer; epsilon loses only what epsilon absorbs, at the weighted layers, and
    every share lost is accounted for."""
    model = make(bias=False)
    assert not any(getattr(m, "bias", None) is not None for m in model.modules())
    x = _images()
    r = interp.lrp(model, x, "predicted", composite="lrp0")
    assert float(((r.total - r.score).abs() / r.score.abs()).max()) <= 1e-4
    for layer in r.layers.values():  # what each layer received, it passed on
        assert float((layer.absorbed.abs() / r.score.abs()).max()) <= 1e-4, layer.name
    e = interp.lrp(model, x, "predicted", composite="epsilon")
    assert float((e.outside_layers.abs() / e.score.abs()).max()) <= 1e-4  # nothing lost unaccounted
    for layer in e.layers.values():
        lost = float((layer.absorbed / e.score.abs()).max())
        if isinstance(dict(model.named_modules())[layer.name], (nn.Linear, nn.Conv2d)):
            assert float((layer.absorbed / e.score.abs()).min()) >= -1e-4  # epsilon only ever absorbs
        else:
            assert abs(lost) <= 1e-4, layer.name  # activations, pools, adds, merged batch-norms conserve


def _zennit_reference():
    from safetensors.torch import load_file

    return load_file(str(Path(__file__).resolve().parents[1] / "fixtures" / "zennit" / "reference.safetensors"))


@pytest.mark.parametrize("composite", ["epsilon_plus_flat", "epsilon_gamma_box", "alpha2_beta1"])
@pytest.mark.parametrize("name,make", [("vgg", T.VGG), ("resnet", T.ResNet)])
def test_relevance_agrees_with_zennit_on_identical_weights(name, make, composite):
    """Zennit's composites of the same names, with its VGG / ResNet canonizers (its batch-norm
    merging; ``Sum`` with the norm rule at the residual adds), on torchvision's own blocks."""
    ref = _zennit_reference()
    model = make().eval()
    model.load_state_dict({k[len(name) + 1:]: v for k, v in ref.items()
                           if k.startswith(f"{name}/") and "/zennit/" not in k and not k.endswith("/target")})
    x, target = ref["x"], ref[f"{name}/target"]
    params = {"low": 0.0, "high": 1.0} if composite == "epsilon_gamma_box" else {}
    ours = interp.lrp(model, x, target, composite=composite, **params).relevance
    zennit = ref[f"{name}/zennit/{composite}"]
    for a, b in zip(ours, zennit):
        corr = float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])
        assert corr >= 0.99, corr
    assert float((ours - zennit).abs().max() / zennit.abs().max()) < 1e-2  # the same numbers, not only alike


@pytest.mark.parametrize("steps", [7, 4])  # time longer than the batch, and time == batch (4 samples)
def test_time_major_outputs_are_found_and_stored_batch_first(steps, tmp_path):
    model, tokens = _lstm(), _tokens(steps=steps)
    with torch.no_grad():
        e = model.embedding(tokens.t())
        out, (h, c) = model.lstm(e)
        fc = model.fc(out)
    rec = interp.record(model, tokens)
    assert {k: rec.batch_axis[k] for k in ("embedding", "lstm.out", "lstm.h", "fc")} == \
        {"embedding": 1, "lstm.out": 1, "lstm.h": 1, "fc": 1}
    col = interp.collect(model, tokens, store=tmp_path, progress=False, batch_size=3)
    np.testing.assert_allclose(col["fc"], fc.transpose(0, 1).numpy(), atol=1e-6)
    np.testing.assert_allclose(col["lstm.out"], out.transpose(0, 1).numpy(), atol=1e-6)
    np.testing.assert_allclose(col["embedding"], e.transpose(0, 1).numpy(), atol=1e-6)
    assert col.batch_axis("fc") == 1 and col.batch_axis("lstm.h") == 1 and col.layout("fc") == "last"
    with interp.capture(model, ["fc"], reduce="mean") as mean:  # per sample, over time: not over the batch
        model(tokens)
    torch.testing.assert_close(mean.activations["fc"], fc.mean(0))
    s = interp.sensitivity(model, tokens, 0, kind="layer", draws=1)  # noise is added at the embedding's output
    assert {"fc", "lstm.out", "lstm.h", "lstm.c"} <= set(s.layers) and "embedding" not in s.layers


def test_a_float_time_series_model_run_time_major(tmp_path):
    torch.manual_seed(0)
    model = T.TimeMajorSequenceLSTM().eval()
    x = torch.randn(5, 5, 4)  # time == batch
    col = interp.collect(model, x, store=tmp_path, progress=False)
    with torch.no_grad():
        out, _ = model.lstm(x.permute(1, 0, 2))
    np.testing.assert_allclose(col["fc"], model.fc(out).transpose(0, 1).detach().numpy(), atol=1e-6)
    r = interp.lrp(model, x, 0)
    assert r.relevance.shape == x.shape
    ig = interp.explain(model, x, 0, "integrated_gradients", steps=64)
    assert float(ig.delta.abs().max()) < 1e-3  # complete, summed over the inputs


def test_collected_values_equal_a_manual_forward_of_a_resnet(tmp_path):
    model, x = T.resnet(), _images()
    col = interp.collect(model, x, store=tmp_path, progress=False)
    with torch.no_grad():
        stem = model.bn1(model.conv1(x))
        block = model.layer1[0]
        inner = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(model.maxpool(torch.relu(stem)))))))
        first = torch.relu(block.bn1(block.conv1(model.maxpool(torch.relu(stem)))))
    np.testing.assert_allclose(col["bn1"], stem.numpy(), atol=1e-5)  # before the in-place ReLU wrote into it
    np.testing.assert_allclose(col["layer1.0.bn2"], inner.numpy(), atol=1e-5)  # before out += identity
    np.testing.assert_allclose(col["layer1.0.relu:0"], first.numpy(), atol=1e-5)  # the shared ReLU's first call
    assert col.layer_of("layer1.0.relu:1") == "layer1.0.relu"


# ---------------------------------------------------------------------------- several inputs

def test_two_inputs_are_attributed_per_input_and_complete():
    model, x = _two(), _pair()
    grads = interp.explain(model, x, TARGET, "gradient").values
    leaves = [t.clone().requires_grad_(True) for t in x]
    out = model(*leaves)[:, TARGET].sum()
    manual = torch.autograd.grad(out, leaves)
    for g, m in zip(grads, manual):
        torch.testing.assert_close(g, m)
    with torch.no_grad():
        gap = model(*x)[:, TARGET] - model(*[torch.zeros_like(t) for t in x])[:, TARGET]
    errors = []
    for steps in (8, 256):  # completeness over both inputs, better with more steps
        ig = interp.explain(model, x, TARGET, "integrated_gradients", steps=steps)
        errors.append(float((sum(v.flatten(1).sum(1) for v in ig.values) - gap).abs().max()))
    assert errors[1] < errors[0] and errors[1] < 0.01 * float(gap.abs().max())


def test_a_dict_of_inputs_keeps_its_keys_and_baselines_can_be_given_per_input():
    model = _dict()
    image, table = _pair()
    x = {"image": image, "table": table}
    a = interp.explain(model, x, TARGET, "integrated_gradients", baseline={"table": 1.0}, steps=256)
    assert list(a.values) == ["image", "table"]
    with torch.no_grad():
        baseline = {"image": torch.zeros_like(image), "table": torch.ones_like(table)}
        gap = model(x)[:, TARGET] - model(baseline)[:, TARGET]
    total = sum(v.flatten(1).sum(1) for v in a.values.values())
    assert float((total - gap).abs().max()) < 0.01 * float(gap.abs().max())  # from the baseline given per input


def test_keyword_inputs_and_a_mask_that_is_explained_by_nothing():
    class Masked(nn.Module):  # Hugging Face style: model(input_ids=..., attention_mask=...)
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(20, 6)
            self.head = nn.Linear(6, 3)

        def forward(self, input_ids, attention_mask):
            e = self.embedding(input_ids) * attention_mask[..., None]
            return self.head(e.sum(1) / attention_mask.sum(1, keepdim=True))

    torch.manual_seed(0)
    model = Masked().eval()
    x = {"input_ids": _tokens(), "attention_mask": torch.ones(4, 7)}
    x["attention_mask"][:, 5:] = 0
    a = interp.explain(model, x, 0, "input_x_gradient")
    assert a.values["input_ids"].shape == (4, 7) and a.embedding == {"input_ids": "embedding"}
    assert a.values["attention_mask"] is not None  # a float mask is an input like any other
    x["attention_mask"] = x["attention_mask"].long()
    a = interp.explain(model, x, 0, "input_x_gradient")
    assert a.values["attention_mask"] is None  # integers no embedding reads: constants, explained by nothing
    assert torch.equal(a.values["input_ids"][:, 5:], torch.zeros(4, 2))  # masked tokens get nothing


def test_labels_are_named_never_taken_from_their_position(tmp_path):
    model, (image, table) = _two(), _pair()
    y = torch.tensor([0, 1, 2, 0])
    col = interp.collect(model, (image, table), store=tmp_path, labels=y, progress=False)
    assert np.array_equal(col.labels, y.numpy()) and col.meta["inputs"]["names"] == ["input 0", "input 1"]
    loader = [((image[:2], table[:2]), y[:2]), ((image[2:], table[2:]), y[2:])]
    batches = interp.collect(model, [(i, t, label) for (i, t), label in loader], store=tmp_path, dataset="pairs",
                             labels=2, progress=False)
    np.testing.assert_allclose(batches["head"], col["head"], atol=1e-6)  # batches of 2 vs one of 4
    np.testing.assert_array_equal(batches.labels, y.numpy())
    with pytest.raises(InputError, match="takes 2 inputs.*labels=y"):
        interp.collect(model, (image, table, y), store=tmp_path, progress=False)


# ---------------------------------------------------------------------------- train mode, errors

def test_train_mode_is_refused_by_every_analysis_that_would_change_the_model(tmp_path):
    model, x = T.vgg(), _images()
    model.train()
    before = snapshot(model)
    message = "normalises with the statistics of the batch"
    for call in (lambda: interp.attribute(model, x, 0, "gradient"),
                 lambda: interp.lrp(model, x, 0),
                 lambda: interp.sensitivity(model, x, 0, kind="noise", draws=1),
                 lambda: interp.sensitivity(model, x, 0, kind="layer", draws=1),
                 lambda: interp.sensitivity(model, x, 0, kind="explanation", draws=1),
                 lambda: interp.collect(model, x, store=tmp_path, progress=False),
                 lambda: interp.layer_projection.project_layer(model, x, "classifier.6", store=tmp_path)):
        with pytest.raises(ModelError, match=message):
            call()
        assert_untouched(model, before)  # no running statistic moved


def test_failures_inside_the_model_say_whose_fault_they_are(tmp_path):
    model = T.vgg()
    before = snapshot(model)
    unbatched = _images()[0]  # (3, 32, 32): a batch-norm refuses it with a bare ValueError
    for call in (lambda: interp.attribute(model, unbatched, 0, "gradient"),
                 lambda: interp.lrp(model, unbatched, 0),
                 lambda: interp.sensitivity(model, unbatched, 0, kind="noise", draws=1),
                 lambda: interp.collect(model, unbatched, store=tmp_path, progress=False),
                 lambda: interp.record(model, unbatched)):
        with pytest.raises(InputError, match=r"shape \(3, 32, 32\)") as raised:
            call()
        assert not isinstance(raised.value, ModelError)
        assert_untouched(model, before)

    class Centred(nn.Module):
        def __init__(self, in_place=True):
            super().__init__()
            self.lin, self.in_place = nn.Linear(4, 2), in_place

        def forward(self, x):
            if self.in_place:
                x -= x.mean(1, keepdim=True)  # into its input: it gets a copy on the graph, the caller's stays
            else:
                x = x - x.mean(1, keepdim=True)
            return self.lin(x)

    torch.manual_seed(0)
    centred, twin = Centred(), Centred(in_place=False)
    twin.load_state_dict(centred.state_dict())
    x = torch.randn(3, 4)
    kept = x.clone()
    for method in ("gradient", "integrated_gradients"):
        torch.testing.assert_close(interp.attribute(centred, x, 0, method), interp.attribute(twin, x, 0, method))
    torch.testing.assert_close(interp.lrp(centred, x, 0, composite="lrp0").relevance,
                               interp.lrp(twin, x, 0, composite="lrp0").relevance)
    assert torch.equal(x, kept)

    class Numpy(nn.Module):  # runs as it is; cuts the graph, so it fails only where autograd runs
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, x):
            return self.lin(torch.as_tensor(x.numpy()))

    with pytest.raises(ModelError, match="runs on an input.*fails under.*numpy") as raised:
        interp.attribute(Numpy(), torch.randn(3, 4), 0, "gradient")
    assert isinstance(raised.value.__cause__, RuntimeError)  # torch's exception, kept

    with torch.device("meta"):
        ghost = T.VGG()
    with pytest.raises(ModelError, match="meta device"):
        interp.explain(ghost.eval(), _images(), 0, "gradient")
    with pytest.raises(ModelError, match="meta device"):
        interp.lrp(ghost.eval(), _images(), 0)


def test_parameters_and_buffers_of_any_shape_and_dtype_are_hashed(tmp_path):
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)
            self.register_buffer("count", torch.tensor(7))                  # 0-d long, like num_batches_tracked
            self.register_buffer("flag", torch.tensor([True, False]))        # bool
            self.register_buffer("halves", torch.ones(2, dtype=torch.bfloat16))
            self.register_buffer("phase", torch.ones(2, dtype=torch.complex64))

        def forward(self, x):
            return self.lin(x)

    from interp.store import model_identity

    model = Odd()
    first = model_identity(model)
    model.count += 1
    second = model_identity(model)
    assert second.weights != first.weights
    model.flag[1] = True
    third = model_identity(model)
    model.phase[0] = 2j
    assert len({first.weights, second.weights, third.weights, model_identity(model).weights}) == 4
    assert interp.collect(model, torch.randn(5, 3), store=tmp_path, progress=False).n == 5


# ---------------------------------------------------------------------------- memory

def test_the_library_retains_freed_memory_by_itself_unless_told_not_to():
    assert callable(interp.memory.retain_freed_memory)  # the README's call, after a plain import interp
    script = textwrap.dedent("""
        import torch, interp
        before = interp.memory.retaining()
        interp.record(torch.nn.Linear(3, 2), torch.randn(2, 3))
        print(before, interp.memory.retaining())
    """)
    env = {**os.environ}
    env.pop(interp.memory.OPT_OUT, None)
    on = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    env[interp.memory.OPT_OUT] = "1"
    off = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    glibc = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None
    assert on.stdout.strip() == f"None {glibc}", on.stderr
    assert off.stdout.strip() == "None False", off.stderr


# ---------------------------------------------------------------------------- what an independent review tried

def test_time_major_outputs_of_sums_and_stacks_are_probed_when_time_equals_batch(tmp_path):
    """A time-major tensor made by a residual sum or a stack, as long in time as the batch:
    the forward alone cannot tell the axes apart, so record and collect probe them."""
    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)  # batch_first=False: (time, batch, d)
            self.fc = nn.Linear(8, 2)

        def forward(self, x):  # (batch, time, d)
            return self.fc(self.enc(x.transpose(0, 1)))[-1]

    torch.manual_seed(0)
    model = Encoder().eval()
    x = torch.randn(5, 5, 8)  # time == batch
    with torch.no_grad():
        truth = model.fc(model.enc(x.transpose(0, 1))).transpose(0, 1)  # (batch, time, 2)
    rec = interp.record(model, x)
    assert rec.batch_axis["fc"] == 1 and rec.batch_axis["enc.norm2"] == 1
    col = interp.collect(model, x, store=tmp_path, progress=False)
    np.testing.assert_allclose(col["fc"], truth.numpy(), atol=1e-5)
    assert col.batch_axis("fc") == 1
    with pytest.warns(UserWarning, match="could not be told apart"):  # capture alone says it guessed
        with interp.capture(model, ["fc"], reduce="mean") as rec:
            model(x)
    with interp.capture(model, ["fc"], reduce="mean", batch_axes={"fc": 1}) as rec:
        model(x)
    torch.testing.assert_close(rec.activations["fc"], truth.mean(1))


def test_grad_cam_gives_its_map_to_the_input_its_layer_reads():
    class TwoImages(nn.Module):
        def __init__(self):
            super().__init__()
            self.rgb = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.depth = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Linear(8, 2)

        def forward(self, rgb, depth):
            return self.head(torch.cat([self.rgb(rgb), self.depth(depth)], 1))

    torch.manual_seed(0)
    model = TwoImages().eval()
    x = (torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8))
    a = interp.explain(model, x, 0, "grad_cam")  # default: the last convolution's maps, the depth branch's
    assert a.options["layer"].startswith("depth") and a.values[0] is None and a.values[1].shape == x[1].shape
    b = interp.explain(model, x, 0, "grad_cam", layer="rgb.1")
    assert b.values[0].shape == x[0].shape and b.values[1] is None


def test_token_ids_copied_time_major_are_still_the_tokens():
    class Contiguous(T.TimeMajorLSTM):  # the PyTorch tutorials' idiom: tokens.t().contiguous()
        def forward(self, tokens):
            out, _ = self.lstm(self.embedding(tokens.t().contiguous()))
            return self.fc(out)[-1]

    for steps in (7, 4):  # time longer than the batch, and as long
        twin, model = _lstm(), Contiguous().eval()
        model.load_state_dict(twin.state_dict())
        tokens = _tokens(steps=steps)
        for method in ("input_x_gradient", "integrated_gradients"):
            torch.testing.assert_close(interp.attribute(model, tokens, 0, method),
                                       interp.attribute(twin, tokens, 0, method))
        torch.testing.assert_close(interp.lrp(model, tokens, 0).relevance, interp.lrp(twin, tokens, 0).relevance)


def test_an_in_place_first_layer_never_writes_into_the_callers_input(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.LeakyReLU(0.1, inplace=True), nn.Linear(4, 2)).eval()
    twin = nn.Sequential(nn.LeakyReLU(0.1), nn.Linear(4, 2)).eval()
    twin.load_state_dict(model.state_dict())
    x = torch.randn(6, 4)
    kept = x.clone()
    for method in ("gradient", "integrated_gradients", "deeplift", "smoothgrad"):
        torch.testing.assert_close(interp.attribute(model, x, 0, method), interp.attribute(twin, x, 0, method))
    torch.testing.assert_close(interp.lrp(model, x, 0).relevance, interp.lrp(twin, x, 0).relevance)
    a = interp.sensitivity(model, x, 0, kind="noise", draws=2)
    b = interp.sensitivity(twin, x, 0, kind="noise", draws=2)
    torch.testing.assert_close(a.score_change, b.score_change)
    torch.testing.assert_close(interp.record(model, x).activations["1"], interp.record(twin, x).activations["1"])
    interp.collect(model, x, store=tmp_path, progress=False)
    assert torch.equal(x, kept)


def test_a_forward_writing_into_a_tensor_a_layer_saved_is_explained_like_its_twin():
    class Saved(nn.Module):
        def __init__(self, in_place=True):
            super().__init__()
            self.lin1, self.lin2, self.head = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)
            self.in_place = in_place

        def forward(self, x):
            a = self.lin1(x)
            b = self.lin2(a)  # lin2 keeps a for its weights' gradient
            if self.in_place:
                a += b
            else:
                a = a + b
            return self.head(a)

    torch.manual_seed(0)
    model, twin = Saved().eval(), Saved(in_place=False).eval()
    twin.load_state_dict(model.state_dict())
    x = torch.randn(3, 4)
    for method in ("gradient", "integrated_gradients", "deeplift"):
        torch.testing.assert_close(interp.attribute(model, x, 0, method), interp.attribute(twin, x, 0, method))
    assert all(p.requires_grad for p in model.parameters())  # put back


def test_writes_the_source_hides_are_found_or_caught_and_watched(tmp_path):
    """The source scan follows super().forward, helpers of other modules, operator.iadd,
    lambdas on the instance, helpers three calls deep; a write it cannot read (a torch
    method held in a dict) is caught, and the model watched from then on."""
    import operator

    from interp.inplace import may_write_in_place

    hidden = {"add_": torch.Tensor.add_}

    class Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            h = self.a(x)
            h += 1.0
            return self.b(h)

    class Sub(Base):
        def forward(self, x):
            return super().forward(x)

    class ViaOperator(Base):
        def forward(self, x):
            h = operator.iadd(self.a(x), 1.0)
            return self.b(h)

    class ViaLambda(Base):
        def __init__(self):
            super().__init__()
            self.shift = lambda h: h.add_(1.0)

        def forward(self, x):
            h = self.a(x)
            self.shift(h)
            return self.b(h)

    class Hidden(Base):
        def forward(self, x):
            h = self.a(x)
            hidden["add_"](h, 1.0)
            return self.b(h)

    class Twin(Base):
        def forward(self, x):
            return self.b(self.a(x) + 1.0)

    torch.manual_seed(0)
    twin = Twin().eval()
    x = torch.randn(3, 4)
    expected = interp.record(twin, x).activations["a"]
    relevance = interp.lrp(twin, x, 0, composite="lrp0").relevance
    for make in (Sub, ViaOperator, ViaLambda):
        model = make().eval()
        model.load_state_dict(twin.state_dict())
        assert may_write_in_place(model), make.__name__
        torch.testing.assert_close(interp.record(model, x).activations["a"], expected)
        torch.testing.assert_close(interp.lrp(model, x, 0, composite="lrp0").relevance, relevance)
    for call in ("record", "collect", "lrp"):  # each on a class not yet watched
        cls = type(f"Hidden{call}", (Hidden,), {})
        model = cls().eval()
        model.load_state_dict(twin.state_dict())
        assert not may_write_in_place(model)
        if call == "record":
            torch.testing.assert_close(interp.record(model, x).activations["a"], expected)
        elif call == "collect":
            np.testing.assert_allclose(interp.collect(model, x, store=tmp_path, progress=False)["a"], expected)
        else:
            torch.testing.assert_close(interp.lrp(model, x, 0, composite="lrp0").relevance, relevance)
        assert may_write_in_place(model)  # watched from now on


def test_the_store_key_covers_what_the_forward_runs(tmp_path):
    """torchvision's ResNet runs ``self._forward_impl``; helpers, class constants and
    non-persistent buffers change the result too: each edit is a miss."""
    class Net(nn.Module):
        SCALE = 1.0

        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)
            self.register_buffer("shift", torch.zeros(3), persistent=False)

        def forward(self, x):
            return self._forward_impl(x)

        def _forward_impl(self, x):
            return _helper(self.lin(x)) * self.SCALE + self.shift

    def _helper(t):
        return t

    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(5, 4)

    def collected():
        return interp.collect(net, x, "model", store=tmp_path, progress=False, name="net")

    first = collected()
    assert collected().hit
    edits = [lambda: setattr(Net, "_forward_impl", lambda self, x: _helper(self.lin(x)) * 2 * self.SCALE + self.shift),
             lambda: globals().__setitem__("_unused", None) or setattr(Net, "SCALE", 3.0),
             lambda: net.shift.fill_(1.0)]
    for edit in edits:
        edit()
        again = collected()
        assert not again.hit
        with torch.no_grad():
            np.testing.assert_allclose(again["model"], net(x).numpy(), rtol=1e-6)
    assert first.meta["model"]["architecture"] == again.meta["model"]["architecture"]


def test_norms_that_would_change_and_dropout_that_would_be_random_are_refused(tmp_path):
    norm = nn.Sequential(nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4, track_running_stats=True), nn.Flatten(),
                         nn.Linear(4 * 30 * 30, 2)).train()
    before = snapshot(norm)
    x = _images()
    for call in (lambda: interp.record(norm, x), lambda: interp.collect(norm, x, store=tmp_path, progress=False),
                 lambda: interp.attribute(norm, x, 0, "gradient"), lambda: interp.lrp(norm, x, 0),
                 lambda: interp.lrp.plan(norm, x=x), lambda: interp.sensitivity.spread(norm, x)):
        with pytest.raises(ModelError, match="updates its running statistics"):
            call()
        assert_untouched(norm, before)
    vgg = T.vgg()
    vgg.train()
    before = snapshot(vgg)
    for call in (lambda: interp.record(vgg, x), lambda: interp.lrp.plan(vgg, x=x),
                 lambda: interp.attribution.spatial_layers(vgg, x), lambda: interp.sensitivity.spread(vgg, x)):
        with pytest.raises(ModelError, match="normalises with the statistics of the batch"):
            call()
    interp.summarize(vgg, x[:2])  # shapes only: runs, and puts the running statistics back
    assert_untouched(vgg, before)
    dropout = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    for call in (lambda: interp.attribute(dropout, torch.randn(3, 4), 0, "gradient"),
                 lambda: interp.lrp(dropout, torch.randn(3, 4), 0),
                 lambda: interp.sensitivity(dropout, torch.randn(3, 4), 0, kind="noise")):
        with pytest.raises(ModelError, match=r"'1' \(Dropout\) is in train mode: it drops units at random"):
            call()


def test_blame_names_the_module_and_keyword_inputs_are_used_only_when_the_forward_takes_them():
    broken = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(10, 2))
    with pytest.raises(InputError, match=r"inside '2' \(Linear\(in_features=10.*do not fit each other"):
        interp.attribute(broken, torch.randn(3, 4), 0, "gradient")

    class Bad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("bug in my backward")

    class CustomBackward(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, x):
            return self.lin(Bad.apply(x))

    with pytest.raises(ModelError, match="runs on an input.*bug in my backward"):
        interp.attribute(CustomBackward(), torch.randn(3, 4), 0, "gradient")

    class OneDict(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, batch, **options):
            return self.lin(batch["x"])

    a = interp.attribute(OneDict(), {"x": torch.randn(3, 4)}, 0, "gradient")
    assert a["x"].shape == (3, 4)


# ---------------------------------------------------------------------------- what a second review tried

def test_reductions_that_are_views_keep_their_values_before_an_in_place_relu(tmp_path):
    model, x = T.vgg(), _images()
    twin = T.twin(model, T.vgg)
    for reduce in ("mean", lambda t: t.flatten(1)):
        a = interp.collect(model, x, ["classifier.0"], store=tmp_path / "a", reduce=reduce, progress=False)
        b = interp.collect(twin, x, ["classifier.0"], store=tmp_path / "b", reduce=reduce, progress=False)
        np.testing.assert_allclose(a["classifier.0"], b["classifier.0"], atol=1e-6)  # not the ReLU's output


def test_the_store_key_covers_settings_instance_values_and_helpers(tmp_path):
    import types

    helpers = types.ModuleType("helpers")
    exec("SCALE = 1.0\nclass Ops:\n    @staticmethod\n    def act(t):\n        return t * SCALE\n", helpers.__dict__)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.temperature = nn.Conv2d(3, 4, 3, padding=1), 1.0

        def forward(self, x):
            return helpers.Ops.act(self.conv(x)) / self.temperature

    torch.manual_seed(0)
    net = Net().eval()
    x = _images()

    def collected():
        return interp.collect(net, x, "model", store=tmp_path, progress=False, name="net")

    collected()
    assert collected().hit
    for edit in (lambda: setattr(net.conv, "padding", (0, 0)), lambda: setattr(net, "temperature", 2.0),
                 lambda: helpers.__dict__.__setitem__("SCALE", 3.0)):
        edit()
        again = collected()
        assert not again.hit
        with torch.no_grad():
            np.testing.assert_allclose(again["model"], net(x).numpy(), rtol=1e-5)


def test_models_that_squeeze_and_models_with_a_fixed_batch_size(tmp_path):
    class Squeezed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(self.pool(torch.relu(self.bn(self.conv(x)))).squeeze())

    torch.manual_seed(0)
    model = T.randomize_batch_norms(Squeezed()).eval()
    x = _images()
    assert interp.lrp(model, x, 0).relevance.shape == x.shape  # the checks on copies of one sample keep a batch
    assert interp.attribute(model, x, 0, "grad_cam").shape == x.shape

    class FixedBatch(nn.Module):  # a tutorial LSTM with its initial state sized for a batch of 8
        def __init__(self):
            super().__init__()
            self.lstm, self.fc = nn.LSTM(3, 6, batch_first=True), nn.Linear(6, 2)

        def forward(self, x):
            h0 = torch.zeros(1, 8, 6)
            out, _ = self.lstm(x, (h0, h0))
            return self.fc(out[:, -1])

    fixed = FixedBatch().eval()
    x = torch.randn(8, 5, 3)
    assert interp.collect(fixed, x, store=tmp_path, progress=False, batch_size=8).n == 8
    with pytest.raises(ModelError, match="not on a batch of another size"):
        interp.lrp(fixed, x, 0)


def test_in_place_writes_into_what_a_layer_read_are_explained_like_the_twin():
    class ConvReads(nn.Module):
        def __init__(self, in_place=True):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
            self.head, self.in_place = nn.Linear(4 * 32 * 32, 2), in_place

        def forward(self, x):
            h = torch.relu(self.a(x))
            if self.in_place:
                h += self.b(h)  # b keeps h for its backward pass
            else:
                h = h + self.b(h)
            return self.head(h.flatten(1))

    torch.manual_seed(0)
    model, twin = ConvReads().eval(), ConvReads(in_place=False).eval()
    twin.load_state_dict(model.state_dict())
    x = _images()
    for method in ("gradient", "deeplift", "integrated_gradients"):
        torch.testing.assert_close(interp.attribute(model, x, 0, method), interp.attribute(twin, x, 0, method))
    for composite in ("epsilon_plus_flat", "lrp0"):
        torch.testing.assert_close(interp.lrp(model, x, 0, composite=composite).relevance,
                                   interp.lrp(twin, x, 0, composite=composite).relevance)


def test_the_scan_follows_helpers_and_keeps_apart_instances_with_code_of_their_own():
    import functools

    from interp.inplace import may_write_in_place

    class Helper:
        def merge(self, h, x):
            h.add_(x)
            return h

    class Ops:
        @staticmethod
        def shift(h):
            h += 1.0
            return h

    def level4(h):
        h.mul_(2.0)
        return h

    def level3(h):
        return level4(h)

    def level2(h):
        return level3(h)

    class Block(nn.Module):
        def __init__(self, how):
            super().__init__()
            self.lin, self.how, self.helper = nn.Linear(4, 4), how, Helper()
            self.scaled = functools.partial(level2) if how == "partial" else (lambda h: h)

        def forward(self, x):
            h = self.lin(x)
            if self.how == "helper":
                return self.helper.merge(h, x)
            if self.how == "static":
                return Ops.shift(h)
            return self.scaled(h)

    for how in ("helper", "static", "partial"):
        assert may_write_in_place(Block(how)), how

    class Kept(nn.Module):  # the class's code writes nothing; what an instance keeps may
        def __init__(self):
            super().__init__()
            self.lin, self.scaled = nn.Linear(4, 4), (lambda h: h)

        def forward(self, x):
            return self.scaled(self.lin(x))

    plain = Kept()
    assert not may_write_in_place(plain)
    writer = Kept()
    writer.scaled = lambda h: h.add_(1.0)
    assert may_write_in_place(writer) and not may_write_in_place(plain)


def test_the_scan_tells_filling_a_python_list_from_writing_a_tensor():
    """``steps[s] = h`` into a list made by ``[None] * t`` is no write into a tensor (a
    hand-written RNN, interp's own LSTM canonizer); ``steps[0] += h`` is, and so are
    ``total += v`` on a name bound to a number and ``h[:, 0] = 0`` on a tensor."""
    from interp.inplace import may_write_in_place

    def rnn(fill):
        class RNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.cell = nn.Linear(4, 4)

            forward = fill
        return RNN()

    def slots(self, x):
        steps = [None] * x.shape[1]
        outs, by_name = [], {}
        h = x[:, 0]
        for s in range(x.shape[1]):
            h = torch.tanh(self.cell(x[:, s]) + h)
            steps[s] = h
            outs += [h]
            by_name[str(s)] = h
        return torch.stack(steps, 1)

    def added_into_a_slot(self, x):
        steps = [x[:, 0].clone()]
        for s in range(1, x.shape[1]):
            steps[0] += self.cell(x[:, s])
        return steps[0]

    def running_total(self, x):
        total = 0
        for s in range(x.shape[1]):
            total += self.cell(x[:, s])  # a number first, then the tensor it becomes: in place from step 2
        return total

    def masked(self, x):
        h = self.cell(x[:, 0]).clone()
        h[:, 0] = 0
        return h

    def shadowed(self, x):
        steps = [None] * x.shape[1]
        steps = self.cell(x)  # the same name bound to a tensor too: its slots are a tensor's
        steps[:, 0] = 0
        return steps

    assert not may_write_in_place(rnn(slots))
    for writes in (added_into_a_slot, running_total, masked, shadowed):
        assert may_write_in_place(rnn(writes)), writes.__name__


def test_models_whose_train_mode_would_change_them_or_draw_at_random_are_refused():
    from tests.conftest import hooks_left

    conv = nn.utils.spectral_norm(nn.Conv2d(3, 4, 3))
    model = nn.Sequential(conv, nn.Flatten(), nn.Linear(4 * 30 * 30, 2)).train()
    state, hooks = {k: v.clone() for k, v in model.state_dict().items()}, hooks_left(model)  # its own hook stays
    for call in (lambda: interp.lrp(model, _images(), 0), lambda: interp.record(model, _images()),
                 lambda: interp.attribute(model, _images(), 0, "gradient")):
        with pytest.raises(ModelError, match="spectral norm"):
            call()
        assert hooks_left(model) == hooks and all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())

    class FunctionalDropout(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, x):
            return self.lin(nn.functional.dropout(x, 0.5, training=self.training))

    with pytest.raises(ModelError, match="draws at random"):
        interp.attribute(FunctionalDropout().train(), torch.randn(3, 4), 0, "gradient")
    interp.attribute(FunctionalDropout().eval(), torch.randn(3, 4), 0, "gradient")  # in eval mode: fine


def test_an_input_that_holds_one_value_gets_no_noise_among_several():
    model = _dict()
    image, table = _pair()
    s = interp.sensitivity(model, {"image": image, "table": torch.ones_like(table)}, 0, kind="noise", draws=2)
    assert s.std[1] == 0.0 and bool((s.score_change[1] > 0).all())


def _live_tensors() -> int:
    import gc
    import warnings
    gc.collect()
    with warnings.catch_warnings():  # isinstance on torch.distributed's deprecated names warns
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


RUNS = {
    "lrp_flat": lambda m, x: interp.lrp(m, x, TARGET, composite="epsilon_plus_flat").layers,
    "lrp": lambda m, x: interp.lrp(m, x, TARGET).layers,
    "deeplift": lambda m, x: interp.explain(m, x, TARGET, "deeplift"),
    "integrated_gradients": lambda m, x: interp.explain(m, x, TARGET, "integrated_gradients", steps=4),
    "layer_sensitivity": lambda m, x: interp.sensitivity(m, x, TARGET, kind="layer"),
    "record": lambda m, x: interp.record(m, x),
}


@pytest.mark.parametrize("run", RUNS)
def test_nothing_of_a_run_outlives_it(run):
    """Regression: the graph of an LRP run lived on in cycles through autograd's C++ nodes
    (a first-layer rule's callback, tensors saved for backward held by the copy-on-write
    hooks), which Python's collector cannot see: 270 MB per call on a batch of 64
    ResNet images. After a run, and after a failed one, no tensor it made is left."""
    model, x = MODELS["resnet"]()
    RUNS[run](model, x)  # first-call caches (plans, scans) are not leaks
    before = _live_tensors()
    for _ in range(2):
        RUNS[run](model, x)
    assert _live_tensors() == before
    if run.startswith("lrp"):  # failing after the graph was built: the target is out of range
        with pytest.raises(TargetError):
            interp.lrp(model, x, 99, composite="epsilon_plus_flat")
        assert _live_tensors() == before
