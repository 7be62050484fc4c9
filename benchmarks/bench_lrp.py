"""LRP cost: interp.lrp time / one forward+backward to the input, per zoo model, batch 128,
and on a torchvision-style ResNet (in-place ReLU, ``out += identity``) beside its out-of-place twin.

The baseline is what the plain gradient needs: a forward pass with autograd on and the
gradient of the target scores with respect to the input (for token models, to the
embedding's output). LRP adds the rules' modified passes (z+ and gamma layers run the
layer once more with clamped weights), the per-layer taps that make conservation
readable layer by layer, and for the LSTM the unrolled step function that replaces
the fused kernel. Targets from the LRP issue: <= 1.5 for the MLP and the CNN, <= 3
for the LSTM and the transformer, with the default composite (epsilon_plus_flat); the
transformers issue set the MLP's to <= 2.0 and added Hugging Face models (AttnLRP, <= 2.0).
The zoo's models are small, so a fixed cost per call (hooks and taps on every layer, the
check that no functional non-linearity is crossed, leaving the model as found: about
half a millisecond; the plan and the batch-norm pairs are reused between calls) weighs
on them; the larger batches, reported without a target, show the ratio the rules
themselves cost.
"""

from __future__ import annotations

import torch
from torch import nn

import interp
import zoo
from interp.capture import intervene
from interp.memory import retain_freed_memory

from .harness import Result, compare

BATCH = 128
MODELS = {"mlp-cancer": 2.0, "cnn-digits": 1.5, "cnn-shapes": 1.5, "lstm-sentiment": 3.0,
          "transformer-sentiment": 3.0}
COMPOSITE = "epsilon_plus_flat"


def _forward_backward(model: nn.Module, x: torch.Tensor, target: torch.Tensor):
    """The gradient of the target scores with respect to the input (or the token embedding)."""
    if x.is_floating_point():
        def run():
            xx = x.detach().requires_grad_(True)
            out = model(xx)
            return torch.autograd.grad(out.gather(1, target[:, None]).sum(), xx)[0]
        return run
    layer = next(n for n, m in model.named_modules() if isinstance(m, nn.Embedding))

    def run_tokens():
        leaf = []

        def take(_name, _args, output):
            leaf.append(output.detach().requires_grad_(True))
            return leaf[-1]
        with intervene(model, [layer], take):
            out = model(x)
        return torch.autograd.grad(out.gather(1, target[:, None]).sum(), leaf[0])[0]
    return run_tokens


LARGE = {"cnn-shapes": 1024, "mlp-cancer": 2048}  # context: how much of the ratio is a fixed cost per call


def _batch(entry, size: int) -> torch.Tensor:
    x = entry.test[0]
    return x.repeat((size // len(x) + 1,) + (1,) * (x.ndim - 1))[:size].contiguous()


def _measure(name: str, size: int, target_ratio: float | None, rounds: int) -> Result:
    entry = zoo.load(name)
    model = entry.model
    x = _batch(entry, size) if size > len(entry.test[0]) else entry.test[0][:size].contiguous()
    n_out = model(x[:1]).shape[1]
    target = torch.arange(len(x)) % n_out
    ratio, ours, base = compare(lambda: interp.lrp(model, x, target, composite=COMPOSITE),
                                _forward_backward(model, x, target), rounds=rounds, repeat=5 if size <= 256 else 2)
    return Result(name=f"lrp {COMPOSITE} / forward+backward, {name} b{len(x)}", value=ratio, target=target_ratio,
                  baseline="one forward+backward to the input", ours_ms=ours * 1e3, baseline_ms=base * 1e3,
                  detail={"batch": len(x), "composite": COMPOSITE, "threads": torch.get_num_threads()})


RESNET_BATCH, RESNET_WIDTH = 64, 16
RESNET_TARGET, TWIN_TARGET = 1.5, 1.05


def _resnets() -> list[Result]:
    """The torchvision-style ResNet of the tests (BasicBlock and Bottleneck, batch-norms,
    ``ReLU(inplace=True)`` shared within a block, ``out += identity``) at 64 x 3 x 64 x 64:
    LRP against one forward+backward of the same model, and against LRP on its out-of-place
    twin (``ReLU()``, ``out = out + identity``; the same weights)."""
    from tests import torch_models as T

    model = T.resnet(width=RESNET_WIDTH)
    twin = T.twin(model, T.resnet, width=RESNET_WIDTH)
    x = torch.randn(RESNET_BATCH, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    target = torch.arange(RESNET_BATCH) % 5
    detail = {"batch": RESNET_BATCH, "input": [3, 64, 64], "width": RESNET_WIDTH, "composite": COMPOSITE,
              "threads": torch.get_num_threads()}
    ratio, ours, base = compare(lambda: interp.lrp(model, x, target, composite=COMPOSITE),
                                _forward_backward(model, x, target), rounds=9, repeat=2, warmup=2)
    results = [Result(name=f"lrp {COMPOSITE} / forward+backward, torchvision-style ResNet (in-place) b64x3x64x64",
                      value=ratio, target=RESNET_TARGET, baseline="one forward+backward to the input",
                      ours_ms=ours * 1e3, baseline_ms=base * 1e3, detail=detail)]
    ratio, ours, base = compare(lambda: interp.lrp(model, x, target, composite=COMPOSITE),
                                lambda: interp.lrp(twin, x, target, composite=COMPOSITE), rounds=9, repeat=2,
                                warmup=2)
    results.append(Result(name="lrp on the in-place ResNet / lrp on its out-of-place twin, b64x3x64x64",
                          value=ratio, target=TWIN_TARGET, baseline="the same LRP on the out-of-place twin",
                          ours_ms=ours * 1e3, baseline_ms=base * 1e3, detail=detail))
    return results


HF_TARGET, HF_BATCH, HF_TOKENS = 2.0, 16, 64


def _hugging_face() -> list[Result]:
    """AttnLRP on Hugging Face transformers built from small configs (4 layers, hidden 64, 4
    heads, vocabulary 96), batch 16 x 64 tokens: a BERT-shaped classifier and a Llama-shaped
    language model explained at its last position (the shape of lxt's own benchmark in
    ``tests/fixtures/lxt``, whose ratio is printed beside ours). Skipped without transformers."""
    try:
        import transformers
    except ImportError:
        return []
    from interp.huggingface import Scores

    torch.manual_seed(0)
    shape = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 128,
             "vocab_size": 96}
    models = {
        "BERT-shaped classifier": transformers.BertForSequenceClassification(transformers.BertConfig(
            max_position_embeddings=128, num_labels=3, **shape)),
        "Llama-shaped LM": transformers.LlamaForCausalLM(transformers.LlamaConfig(
            max_position_embeddings=128, num_key_value_heads=2, tie_word_embeddings=False, **shape)),
    }
    lxt = _lxt_ratio()
    x = torch.randint(1, 96, (HF_BATCH, HF_TOKENS), generator=torch.Generator().manual_seed(0))
    results = []
    for label, model in models.items():
        scores = Scores(model.eval())
        target = scores(x).argmax(1).detach()
        ratio, ours, base = compare(lambda s=scores, t=target: interp.lrp(s, x, t, composite="attnlrp"),
                                    _forward_backward(scores, x, target), rounds=9, repeat=3, warmup=2)
        detail = {"batch": HF_BATCH, "tokens": HF_TOKENS, "composite": "attnlrp", "threads": torch.get_num_threads()}
        if "Llama" in label and lxt is not None:
            detail["lxt AttnLRP / plain gradient (its own environment)"] = lxt
        results.append(Result(name=f"lrp attnlrp / forward+backward, {label} b{HF_BATCH}x{HF_TOKENS}", value=ratio,
                              target=HF_TARGET, baseline="one forward+backward to the token embeddings",
                              ours_ms=ours * 1e3, baseline_ms=base * 1e3, detail=detail))
    return results


def _lxt_ratio() -> float | None:
    import json
    from pathlib import Path
    fixture = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "lxt" / "llama.json"
    try:
        return json.loads(fixture.read_text())["bench"]["ratio_attnlrp_over_plain"]
    except (OSError, KeyError, ValueError):
        return None


def run() -> list[Result]:
    retain_freed_memory()
    results = [_measure(name, BATCH, target_ratio, rounds=15) for name, target_ratio in MODELS.items()]
    results += [_measure(name, size, None, rounds=7) for name, size in LARGE.items()]
    results += _resnets()
    results += _hugging_face()
    return results
