"""Hugging Face transformers as people use them, built from small configs (no download):
BERT, GPT-2, Llama (RMSNorm, SwiGLU, rotary, grouped-query attention) and ViT, each as a
classifier, plus their bias-free variants. ``transformers`` is an optional extra; tests
that use this file skip without it.

Weights are seeded and scaled so that logits are of order one (a fresh init gives
near-zero logits, where every explanation is noise).
"""

from __future__ import annotations

import torch

transformers = __import__("pytest").importorskip("transformers")

VOCAB, HIDDEN, HEADS, LAYERS, LENGTH = 60, 32, 4, 2, 10


def _finish(model, seed: int):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.normal_(0, 0.6 / p.shape[-1] ** 0.5 * 2)
            elif "bias" in name:
                p.normal_(0, 0.05)
            elif "weight" in name:  # norms
                p.uniform_(0.8, 1.2)
    return model.eval()


def bert(seed: int = 0, labels: int = 3, bias: bool = True, **extra):
    from transformers import BertConfig, BertForSequenceClassification
    config = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                        intermediate_size=2 * HIDDEN, max_position_embeddings=32, num_labels=labels,
                        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, **extra)
    return _finish(BertForSequenceClassification(config), seed)


def gpt2(seed: int = 0, labels: int = 3, **extra):
    from transformers import GPT2Config, GPT2ForSequenceClassification
    config = GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=32,
                        num_labels=labels, pad_token_id=0, **extra)
    return _finish(GPT2ForSequenceClassification(config), seed)


def llama(seed: int = 0, labels: int = 3, bias: bool = False, **extra):
    from transformers import LlamaConfig, LlamaForSequenceClassification
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
                         num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=2,
                         max_position_embeddings=32, num_labels=labels, pad_token_id=0, attention_bias=bias,
                         mlp_bias=bias, **extra)
    return _finish(LlamaForSequenceClassification(config), seed)


def vit(seed: int = 0, labels: int = 3, **extra):
    from transformers import ViTConfig, ViTForImageClassification
    config = ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                       num_attention_heads=HEADS, intermediate_size=2 * HIDDEN, num_labels=labels, **extra)
    return _finish(ViTForImageClassification(config), seed)


def tokens(batch: int = 4, length: int = LENGTH, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (batch, length), generator=g)


def images(batch: int = 3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 16, 16, generator=g)
