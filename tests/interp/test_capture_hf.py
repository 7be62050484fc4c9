"""interp.capture on Hugging Face transformers: readable module paths, and the per-head
attention weights of their attention modules, which the default ``sdpa`` implementation
does not compute (capture runs them "eager" for the block and puts the config back)."""

from __future__ import annotations

import pytest
import torch

import interp
from tests import hf_models as H
from tests.conftest import assert_untouched, hooks_left, snapshot

# model, its input, the attention modules' paths, whether attention is causal
MODELS = {
    "bert": (H.bert, H.tokens, "bert.encoder.layer.{}.attention.self", False),
    "gpt2": (H.gpt2, H.tokens, "transformer.h.{}.attn", True),
    "llama": (H.llama, H.tokens, "model.layers.{}.self_attn", True),
    "vit": (H.vit, H.images, "vit.layers.{}.attention", False),
}


def _logits(model, **inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def _inputs(kind: str, x: torch.Tensor) -> dict:
    return {"pixel_values": x} if kind == "vit" else {"input_ids": x}


@pytest.mark.parametrize("kind", MODELS)
def test_attention_weights_recorded_per_head_and_the_model_left_as_it_was(kind):
    make, data, path, causal = MODELS[kind]
    model, x = make(), data()
    inputs = _inputs(kind, x)
    before, plain = snapshot(model), _logits(model, **inputs)
    assert model.config._attn_implementation == "sdpa"
    paths = [path.format(i) for i in range(H.LAYERS)]
    with interp.capture(model, paths) as rec:
        assert model.config._attn_implementation == "eager"
        logits = model(**inputs).logits
    torch.testing.assert_close(logits, plain, atol=1e-5, rtol=1e-5)  # eager gives what sdpa gave
    assert model.config._attn_implementation == "sdpa"
    assert_untouched(model, before)
    positions = x.shape[1] if kind != "vit" else (16 // 4) ** 2 + 1  # tokens, or patches and the class token
    for p in paths:
        weights = rec.activations[f"{p}.weights"]
        assert weights.shape == (len(x), H.HEADS, positions, positions)
        assert rec.layout[f"{p}.weights"] == "attention" and rec.batch_axis[f"{p}.weights"] == 0
        assert rec.activations[f"{p}.out"].shape == (len(x), positions, H.HIDDEN)
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
        if causal:
            above = torch.ones(positions, positions, dtype=torch.bool).triu(1)
            assert (weights[..., above] == 0).all()
        else:
            assert (weights[..., positions // 2:] > 0).all()  # every key seen, also the later ones
    assert rec.outputs_of(paths[0]) == [f"{paths[0]}.out", f"{paths[0]}.weights"]


def test_bert_weights_are_softmax_of_its_own_queries_and_keys_and_masked_keys_get_none():
    model, ids = H.bert(), H.tokens()
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    mask[2, 3:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    plain = _logits(model, **inputs)
    with interp.capture(model, ["bert.embeddings", "bert.encoder.layer.0.output",
                                "bert.encoder.layer.*.attention.self"]) as rec:
        logits = model(**inputs).logits
    torch.testing.assert_close(logits, plain, atol=1e-5, rtol=1e-5)
    given = {0: rec.activations["bert.embeddings"], 1: rec.activations["bert.encoder.layer.0.output"]}
    d = H.HIDDEN // H.HEADS
    for layer, h in given.items():
        attention = model.bert.encoder.layer[layer].attention.self

        def heads(t):
            return t.view(len(ids), -1, H.HEADS, d).transpose(1, 2)
        with torch.no_grad():
            q, k = heads(attention.query(h)), heads(attention.key(h))
        scores = (q @ k.transpose(-1, -2) / d ** 0.5).masked_fill(mask[:, None, None, :] == 0, float("-inf"))
        weights = rec.activations[f"bert.encoder.layer.{layer}.attention.self.weights"]
        torch.testing.assert_close(weights, scores.softmax(-1), atol=1e-6, rtol=1e-5)
        assert (weights[0, ..., 6:] == 0).all() and (weights[2, ..., 3:] == 0).all()
        assert (weights[1] > 0).all()


def test_gpt2_weights_are_causal_softmax_of_its_own_queries_and_keys():
    model, ids = H.gpt2(), H.tokens()
    with interp.capture(model, ["transformer.h.0.ln_1", "transformer.h.0.attn"]) as rec:
        model(input_ids=ids)
    d = H.HIDDEN // H.HEADS
    with torch.no_grad():
        q, k, _ = model.transformer.h[0].attn.c_attn(rec.activations["transformer.h.0.ln_1"]).split(H.HIDDEN, -1)
    q, k = (t.view(len(ids), -1, H.HEADS, d).transpose(1, 2) for t in (q, k))
    above = torch.ones(ids.shape[1], ids.shape[1], dtype=torch.bool).triu(1)
    expected = (q @ k.transpose(-1, -2) / d ** 0.5).masked_fill(above, float("-inf")).softmax(-1)
    torch.testing.assert_close(rec.activations["transformer.h.0.attn.weights"], expected, atol=1e-6, rtol=1e-5)


def test_record_takes_a_dict_of_inputs_and_a_wrapping_attention_module_is_named_alike():
    model, ids = H.bert(), H.tokens()
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    rec = interp.record(model, {"input_ids": ids, "attention_mask": mask},
                        layers=["bert.encoder.layer.0.attention", "bert.encoder.layer.0.attention.self"])
    # BertAttention hands on the weights of the BertSelfAttention it wraps
    wrapped = rec.activations["bert.encoder.layer.0.attention.weights"]
    torch.testing.assert_close(wrapped, rec.activations["bert.encoder.layer.0.attention.self.weights"])
    assert (wrapped[1, ..., 4:] == 0).all()
    assert rec.activations["bert.encoder.layer.0.attention.out"].shape == (len(ids), ids.shape[1], H.HIDDEN)
    assert model.config._attn_implementation == "sdpa" and hooks_left(model) == 0


def test_config_put_back_on_error_nested_and_untouched_without_attention_weights():
    model, ids = H.llama(), H.tokens()
    with pytest.raises(RuntimeError, match="body"), interp.capture(model, "model.layers.*.self_attn"):
        model(input_ids=ids)
        raise RuntimeError("the body raised")
    assert model.config._attn_implementation == "sdpa" and hooks_left(model) == 0
    with interp.capture(model, "model.layers.0.self_attn") as outer:
        with interp.capture(model, "model.layers.1.self_attn") as inner:
            model(input_ids=ids)
        assert model.config._attn_implementation == "eager"  # the outer block still records weights
        model(input_ids=ids)
    assert model.config._attn_implementation == "sdpa"
    assert "model.layers.1.self_attn.weights" in inner.activations
    assert outer.count("model.layers.0.self_attn.weights") == 2
    with interp.capture(model, "model.layers.*.self_attn", attention_weights=False) as rec:
        assert model.config._attn_implementation == "sdpa"
        model(input_ids=ids)
    assert sorted(rec.activations) == ["model.layers.0.self_attn.out", "model.layers.1.self_attn.out"]


def test_a_user_choice_of_eager_is_kept():
    model, ids = H.gpt2(attn_implementation="eager"), H.tokens()
    with interp.capture(model, "transformer.h.0.attn") as rec:
        model(input_ids=ids)
    assert model.config._attn_implementation == "eager"
    assert rec.activations["transformer.h.0.attn.weights"].shape == (len(ids), H.HEADS, ids.shape[1], ids.shape[1])


@pytest.mark.parametrize("kind, pattern, sample", [
    ("bert", "*.intermediate*", "bert.encoder.layer.1.intermediate.dense"),
    ("gpt2", "*.mlp*", "transformer.h.0.mlp.c_fc"),
    ("llama", "*.mlp*", "model.layers.1.mlp.down_proj"),
    ("vit", "*.mlp*", "vit.layers.0.mlp.fc2"),
])
def test_module_outputs_get_their_readable_paths(kind, pattern, sample):
    make, data, _, _ = MODELS[kind]
    model, x = make(), data()
    before = snapshot(model)
    with interp.capture(model, pattern) as rec:
        model(**_inputs(kind, x))
    assert_untouched(model, before)
    assert model.config._attn_implementation == "sdpa"
    assert sample in rec.activations and rec.activations[sample].shape[0] == len(x)
    expected = [n for n, _ in model.named_modules() if n.endswith((".mlp", ".intermediate")) or
                ".mlp." in n or ".intermediate." in n]
    assert sorted(rec.layers) == sorted(expected)
    assert all(n in rec.activations for n in expected)
