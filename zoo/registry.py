"""The zoo's entries: which model, on which data, trained how.

One :class:`Spec` per entry. Adding a model to the zoo is one entry here (plus its
class in ``models.py`` if new), then ``interp zoo train NAME``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from torch import nn

from . import data as zdata
from . import models as m

KINDS = ("mlp", "cnn", "rnn", "autoencoder", "vae", "gan", "transformer")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(d.pop("extra"))
        d["optimizer"] = "Adam"
        return d


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str  # one of KINDS
    task: str  # "classification" | "reconstruction" | "generation"
    dataset: str
    description: str
    build: Callable[[zdata.Dataset], nn.Module]
    train: TrainConfig
    # which module users analyse, and named sub-models
    model_of: Callable[[nn.Module], nn.Module] = lambda full: full
    parts_of: Callable[[nn.Module], dict] = lambda full: {}


SPECS: dict[str, Spec] = {}


def _add(spec: Spec) -> None:
    assert spec.kind in KINDS and spec.name not in SPECS
    SPECS[spec.name] = spec


_add(Spec(
    name="mlp-cancer", kind="mlp", task="classification", dataset="breast_cancer",
    description="MLP (30-64-32-2) classifying breast tumours as malignant or benign",
    build=lambda d: m.MLP(len(d.feature_names), len(d.classes)),
    train=TrainConfig(epochs=40, batch_size=32, lr=1e-3, weight_decay=1e-4),
))
_add(Spec(
    name="cnn-digits", kind="cnn", task="classification", dataset="digits",
    description="two conv layers, max pooling and a dense head classifying 8x8 digits",
    build=lambda d: m.CNN(1, 8, len(d.classes), channels=(16, 32)),
    train=TrainConfig(epochs=30, batch_size=32, lr=2e-3),
))
_add(Spec(
    name="cnn-shapes", kind="cnn", task="classification", dataset="shapes",
    description="two conv blocks (convolution, batch-norm, in-place ReLU, max pooling; written the torchvision "
    "way) and a dense head classifying shapes on clutter; ground-truth shape masks ship with the data",
    build=lambda d: m.CNN(1, 16, len(d.classes), channels=(16, 32), pool_every=True, batch_norm=True,
                          inplace=True),
    train=TrainConfig(epochs=20, batch_size=64, lr=2e-3),
))
_add(Spec(
    name="lstm-sentiment", kind="rnn", task="classification", dataset="sentiment",
    description="embedding, one LSTM layer and a linear head on the last hidden state; "
    "sentiment with negation, deciding token positions known",
    build=lambda d: m.LSTMClassifier(len(d.vocab), len(d.classes)),
    train=TrainConfig(epochs=15, batch_size=64, lr=3e-3),
))
_add(Spec(
    name="transformer-sentiment", kind="transformer", task="classification", dataset="sentiment",
    description="2-layer, 2-head pre-LN transformer encoder with mean pooling; "
    "sentiment with negation, deciding token positions known",
    build=lambda d: m.TransformerClassifier(len(d.vocab), len(d.classes), max_len=d.input_shape[0]),
    train=TrainConfig(epochs=25, batch_size=64, lr=2e-3),
))
_add(Spec(
    name="autoencoder-digits", kind="autoencoder", task="reconstruction", dataset="digits",
    description="dense autoencoder 64-64-8-64-64 on 8x8 digits",
    build=lambda d: m.Autoencoder(d.input_shape, latent=8),
    train=TrainConfig(epochs=150, batch_size=32, lr=2e-3),
    parts_of=lambda full: {"encoder": full.encoder, "decoder": full.decoder},
))
_add(Spec(
    name="vae-digits", kind="vae", task="reconstruction", dataset="digits",
    description="variational autoencoder 64-128-(8 mu, 8 logvar)-128-64 on 8x8 digits; "
    "eval-mode forward decodes the mean",
    build=lambda d: m.VAE(d.input_shape, latent=8),
    train=TrainConfig(epochs=200, batch_size=32, lr=2e-3),
    parts_of=lambda full: {"encoder": full.encoder, "decoder": full.decoder},
))
_add(Spec(
    name="gan-digits", kind="gan", task="generation", dataset="digits",
    description="MLP GAN on 8x8 digits (32-d latent); the analysed model is the discriminator",
    build=lambda d: m.GAN(d.input_shape, latent=32, hidden=256),
    train=TrainConfig(epochs=300, batch_size=64, lr=5e-4,
                      extra={"betas": [0.5, 0.999], "real_label": 0.9}),
    model_of=lambda full: full.discriminator,
    parts_of=lambda full: {"generator": full.generator, "discriminator": full.discriminator},
))
