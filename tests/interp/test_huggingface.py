"""LRP and attribution on the transformers people use: Hugging Face BERT, GPT-2, Llama
(RMSNorm, SwiGLU, rotary, grouped-query attention) and ViT, built from small configs.

References that can fail: the conservation identity (input relevance + what every layer
and every added constant absorbed = the target logit), exact conservation of a bias-free
Llama under CP-LRP, lxt's own AttnLRP and CP-LRP numbers on the same weights (a fixture
made in an environment of its own, ``tests/fixtures/lxt``), and a deletion test on a
classifier trained on the zoo's sentiment task.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

import interp
from interp.errors import InputError, InterpError
from tests import hf_models as H

transformers = pytest.importorskip("transformers")

LXT = Path(__file__).resolve().parents[1] / "fixtures" / "lxt"
MODELS = ("bert", "gpt2", "llama", "vit")


def _model_and_input(name: str):
    model = getattr(H, name)()
    return model, (H.images() if name == "vit" else H.tokens())


def _absorbed(result) -> torch.Tensor:
    return sum((layer.absorbed for layer in result.layers.values()), torch.zeros_like(result.score))


def _untouched(model, before: dict) -> None:
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks, type(m).__name__
    assert "forward" not in model.__dict__
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training
    assert torch._C._len_torch_function_stack() == 0  # no function mode left on the thread


# ---------------------------------------------------------------------------- conservation

@pytest.mark.parametrize("composite", ["attnlrp", "cp_lrp", "lrp0", "epsilon"])
@pytest.mark.parametrize("name", MODELS)
def test_every_share_of_the_logit_is_accounted_for(name, composite):
    """input relevance + what each layer (modules, softmax and layer norms computed as
    functions, embeddings and parameters added in) absorbed = the target logit."""
    model, x = _model_and_input(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = interp.lrp(model, x, composite=composite)
    with torch.no_grad():
        logits = model(x).logits
    torch.testing.assert_close(r.score, logits.gather(1, r.target[:, None])[:, 0], rtol=1e-5, atol=1e-6)
    gap = (r.total + _absorbed(r) - r.score).abs() / r.score.abs()
    assert float(gap.max()) <= 1e-4, (name, composite, gap)
    assert r.relevance.shape == x.shape[:2] if name != "vit" else r.relevance.shape == x.shape
    assert bool(torch.isfinite(r.relevance).all())
    _untouched(model, before)


def test_a_bias_free_llama_conserves_directly_under_cp_lrp():
    model, x = _model_and_input("llama")
    assert not any("bias" in n for n, _ in model.named_parameters())
    r = interp.lrp(model, x, composite="cp_lrp")
    torch.testing.assert_close(r.total, r.score, rtol=1e-4, atol=1e-5)
    for layer in r.layers.values():
        assert float((layer.absorbed.abs() / r.score.abs()).max()) <= 1e-4, layer.name


def test_attnlrp_absorbs_in_the_softmax_and_cp_lrp_does_not_pass_through_it():
    """Scaled dot-product attention runs fused, and is tapped as one layer per call: under
    AttnLRP what it absorbs is the softmax's (its products conserve); under CP-LRP the
    values take all of it and queries and keys none."""
    model, x = _model_and_input("llama")
    attn = interp.lrp(model, x, composite="attnlrp")
    calls = {name: layer for name, layer in attn.layers.items() if name.endswith(":attention")}
    assert sorted(calls) == [f"model.layers.{i}.self_attn:attention" for i in range(H.LAYERS)]
    assert all("AttnLRP softmax" in layer.rule for layer in calls.values())
    assert float(sum(layer.absorbed.abs().sum() for layer in calls.values())) > 1e-3
    cp = interp.lrp(model, x, composite="cp_lrp")
    for name, layer in cp.layers.items():
        if name.endswith(":attention"):
            assert float((layer.absorbed.abs() / cp.score.abs()).max()) <= 1e-5
        if name.endswith(("q_proj", "k_proj")):  # nothing reaches queries and keys
            assert float(layer.received.abs().max()) == 0.0


# ---------------------------------------------------------------------------- agreement with lxt

def _lxt(name: str):
    d = json.loads((LXT / f"{name}.json").read_text())
    from safetensors.torch import load_file
    config = getattr(transformers, d["model_class"].replace("ForCausalLM", "Config").replace("LMHeadModel", "Config"))
    model = getattr(transformers, d["model_class"])(config(**d["config"])).eval()
    model.load_state_dict(load_file(str(LXT / f"{name}.safetensors")))
    return model, d


@pytest.mark.parametrize("composite", ["attnlrp", "cp_lrp"])
@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_token_relevance_agrees_with_lxt(name, composite):
    """lxt (AttnLRP's authors) on the same weights, computed once beside torch 2.14 and
    transformers 5.9 (``make_lxt_fixture.py``): correlation >= 0.99 per sample, and in
    fact equal to float precision."""
    model, d = _lxt(name)
    ids = torch.tensor(d["input_ids"])
    lm = interp.huggingface.Scores(model)
    with torch.no_grad():
        torch.testing.assert_close(lm(ids), torch.tensor(d["logits_last"]), atol=1e-4, rtol=1e-4)
    r = interp.lrp(lm, ids, torch.tensor(d["targets"]), composite=composite)
    ours, theirs = r.relevance, torch.tensor(d["relevance"][composite])
    for a, b in zip(ours, theirs):
        assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) >= 0.99
    assert float((ours - theirs).abs().max()) <= 1e-4 * float(theirs.abs().max())
    control = torch.tensor(d["relevance"]["input_x_gradient"])  # the fixture tells the methods apart
    assert float((control - theirs).abs().max()) > 1e-2 * float(theirs.abs().max())


# ---------------------------------------------------------------------------- inputs, masks, plans

@pytest.mark.parametrize("name", ["bert", "gpt2", "llama"])
def test_the_attention_mask_is_honoured_in_every_method(name):
    model = getattr(H, name)()
    ids = H.tokens()
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    ids[0, 6:] = 0  # the pad token: GPT-2 and Llama classify at the last token that is not one
    x = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        expected = model(**x).logits
    for method in ("integrated_gradients", "input_x_gradient", "occlusion", "saliency"):
        a = interp.explain(model, x, method=method)
        assert a.values["attention_mask"] is None  # a constant, handed on as given
        assert float(a.values["input_ids"][0, 6:].abs().max()) == 0.0, method
        assert float(a.values["input_ids"][0, :6].abs().max()) > 0, method
        torch.testing.assert_close(a.score, expected.gather(1, a.target[:, None])[:, 0], rtol=1e-5, atol=1e-6)
    for composite in ("attnlrp", "cp_lrp", "epsilon"):
        r = interp.lrp(model, x, composite=composite)
        assert float(r.relevance["input_ids"][0, 6:].abs().max()) == 0.0, composite
        gap = (r.total + _absorbed(r) - r.score).abs() / r.score.abs()
        assert float(gap.max()) <= 1e-4
    # padding changes what the model computes: the masked sample's relevance is not the unmasked one's
    full = interp.lrp(model, ids, composite="attnlrp").relevance
    assert not torch.allclose(full[0], r.relevance["input_ids"][0])


def test_gpt2_token_ids_are_found_through_its_view():
    """GPT-2 reshapes input_ids with .view before wte: the ids are recognised there."""
    model = H.gpt2()
    ids = H.tokens()
    a = interp.explain(model, ids, method="integrated_gradients")
    assert a.values.shape == ids.shape and a.embedding == "transformer.wte"
    assert float(a.delta.abs().max()) <= 0.05 * float(a.score.abs().max())  # IG completeness (with 50 steps)
    assert interp.lrp(model, ids, composite="attnlrp").embedding == "transformer.wte"


def test_a_language_model_explains_one_position_through_the_documented_wrapper():
    model, d = _lxt("llama")
    ids = torch.tensor(d["input_ids"])
    with pytest.raises(InputError, match=r"interp\.huggingface\.Scores"):
        interp.lrp(model, ids)
    lm = interp.huggingface.Scores(model)
    mask = torch.ones_like(ids)
    mask[:, -3:] = 0  # right padding: the last kept token is explained
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(lm(ids, attention_mask=mask), logits[:, -4])
    torch.testing.assert_close(interp.huggingface.Scores(model, position=2)(ids), model(ids).logits[:, 2].detach())
    with pytest.raises(InputError, match="position"):
        interp.huggingface.Scores(model, position="first")


def test_the_plan_names_every_rule_before_anything_runs():
    model, x = _model_and_input("llama")
    plan = interp.lrp.plan(model, "attnlrp", x=x)
    kinds = {r.kind: r.rule for r in plan.rows}
    assert kinds["LlamaRMSNorm"] == "scale held constant" and kinds["SiLUActivation"] == "pass"
    assert kinds["LlamaRotaryEmbedding"] == "position constants"
    functions = {r.name.rpartition(":")[2]: r for r in plan.rows if r.role == "function"}
    assert set(functions) >= {"attention", "product"}  # sdpa as its parts; the SwiGLU gate
    assert not plan.unsupported
    text = str(plan)
    assert "model.layers.0.self_attn:attention" in text and "model.layers.0.mlp:product" in text
    gpt = interp.lrp.plan(H.gpt2(), "epsilon", x=H.tokens())
    assert {r.rule for r in gpt.rows if r.kind == "Conv1D"} == {"canonized (conv1d_as_linear)"}
    assert any(r.name.endswith("c_attn.linear") and r.kind == "Linear" for r in gpt.rows)


def test_an_operation_without_a_rule_is_still_refused_and_named():
    model = H.llama()
    del model.model.layers[0].mlp.act_fn
    model.model.layers[0].mlp.act_fn = torch.exp  # a function no rule covers, where SiLU was
    x = H.tokens()
    plan = interp.lrp.plan(model, "attnlrp", x=x)
    assert [r.kind for r in plan.unsupported] == ["ExpBackward0"]
    with pytest.raises(InterpError, match="ExpBackward0"):
        interp.lrp(model, x, composite="attnlrp")
    assert torch._C._len_torch_function_stack() == 0


def test_function_rules_apply_to_the_calling_thread_only():
    """While one thread explains, another runs the same model: it gets the plain forward
    (no rules, no taps), and the explanation is what it is alone."""
    model, x = _model_and_input("bert")
    alone = interp.lrp(model, x, composite="attnlrp").relevance
    stop, seen = threading.Event(), []

    def other():
        with torch.no_grad():
            while not stop.is_set():
                seen.append(model(x).logits)

    t = threading.Thread(target=other)
    t.start()
    try:
        together = interp.lrp(model, x, composite="attnlrp").relevance
    finally:
        stop.set()
        t.join()
    torch.testing.assert_close(together, alone)
    with torch.no_grad():
        expected = model(x).logits
    assert seen and all(torch.allclose(s, expected, atol=1e-6) for s in seen)


# ---------------------------------------------------------------------------- faithfulness

@pytest.fixture(scope="module")
def sentiment_llama():
    """A Llama classifier trained on the zoo's sentiment task (negation included)."""
    from zoo import data
    ds = data.sentiment()
    (xtr, ytr), (xte, yte) = ds.train, ds.test
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(data.VOCAB), hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                                      max_position_embeddings=16, num_labels=2, pad_token_id=0)
    model = transformers.LlamaForSequenceClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(6):
        order = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 32):
            idx = order[i:i + 32]
            loss = model(input_ids=xtr[idx], labels=ytr[idx]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(input_ids=xte).logits.argmax(1) == yte).float().mean())
    return model, xte[:100], accuracy


def _deletion_area(model, x, target, order) -> float:
    """Mean probability of the target as tokens are removed (masked out) in ``order``."""
    scores = []
    with torch.no_grad():
        for k in range(x.shape[1] + 1):
            mask = torch.ones_like(x)
            mask.scatter_(1, order[:, :k], 0)
            p = model(input_ids=x, attention_mask=mask).logits.softmax(1)
            scores.append(p.gather(1, target[:, None]).mean())
    return float(torch.stack(scores).mean())


@pytest.mark.slow
def test_deleting_the_most_relevant_tokens_first_drops_the_score_fastest(sentiment_llama, capsys):
    model, x, accuracy = sentiment_llama
    assert accuracy >= 0.9
    target = model(input_ids=x).logits.argmax(1)
    lrp = interp.lrp(model, x, target, composite="attnlrp").relevance
    ixg = interp.attribute(model, x, target, method="input_x_gradient")
    g = torch.Generator().manual_seed(0)
    shuffled = torch.stack([torch.randperm(x.shape[1], generator=g) for _ in range(len(x))])
    areas = {"attnlrp": _deletion_area(model, x, target, lrp.argsort(1, descending=True)),
             "input_x_gradient": _deletion_area(model, x, target, ixg.argsort(1, descending=True)),
             "random": _deletion_area(model, x, target, shuffled)}
    with capsys.disabled():
        print(f"\ndeletion areas (lower is more faithful), accuracy {accuracy:.3f}: "
              + ", ".join(f"{k} {v:.3f}" for k, v in areas.items()))
    assert areas["attnlrp"] < areas["random"] - 0.05
    assert areas["attnlrp"] < areas["input_x_gradient"] - 0.05


# ---------------------------------------------------------------------------- the faces

@pytest.mark.slow
def test_a_hugging_face_classifier_is_a_subject_with_every_report_section(tmp_path):
    """Passed as it is: its .logits are the scores (said in the card), and the report has
    every section, the LRP one included; the user's model is not touched."""
    import reports
    from tests.test_own_models import SECTIONS, _sections_of

    model = H.bert(labels=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = H.tokens(batch=24)
    subject = interp.Subject(model, ids, torch.arange(24) % 2, name="tiny-bert",
                             vocab=[f"w{i}" for i in range(H.VOCAB)])
    assert "Hugging Face" in dict(subject.describe())["output"]
    reports.build([subject], tmp_path, progress=False)
    page = (tmp_path / "tiny-bert.html").read_text()
    assert _sections_of(page) == list(SECTIONS)
    assert "bert.encoder.layer.0.attention.self" in page
    _untouched(model, before)
