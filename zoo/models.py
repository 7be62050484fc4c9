"""Model classes of the zoo.

Small on purpose (the whole zoo trains on two CPU cores in minutes), and written
to be easy to explain: every operation that carries weights or changes values is a
named module (so ``interp.capture`` sees it and LRP can give it a rule), every
activation function is its own module, and attention weights come out of a
``nn.Softmax`` module so they can be recorded like any other activation.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """Tabular classifier: Linear-ReLU stacks."""

    def __init__(self, n_features: int, n_classes: int, hidden: tuple[int, ...] = (64, 32)):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    """Image classifier: conv blocks (``features``) then a dense head (``classifier``).
    ``batch_norm`` and ``inplace`` build it the way torchvision writes its models (a
    batch-norm after each convolution, which then has no bias; ``ReLU(inplace=True)``), so
    the zoo exercises both every day."""

    def __init__(self, in_channels: int, image_size: int, n_classes: int,
                 channels: tuple[int, ...] = (16, 32), pool_every: bool = False, hidden: int = 64,
                 batch_norm: bool = False, inplace: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        c, size = in_channels, image_size
        for i, out in enumerate(channels):
            layers.append(nn.Conv2d(c, out, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=inplace))
            if pool_every or i == len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            c = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c * size * size, hidden), nn.ReLU(inplace=inplace), nn.Linear(hidden, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LSTMClassifier(nn.Module):
    """Token classifier: embedding, one LSTM layer, the last hidden state into a linear head."""

    def __init__(self, vocab_size: int, n_classes: int, embed: int = 32, hidden: int = 64):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(tokens))
        return self.head(out[:, -1])


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v/out projections.

    The attention weights are the output of ``self.softmax``, a module of its own,
    so they are recorded under ``<path>.softmax`` like any other activation.
    """

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        assert d_model % n_heads == 0
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape

        def heads(z: torch.Tensor) -> torch.Tensor:
            return z.view(b, t, self.n_heads, self.d_head).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        weights = self.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d_head))  # (b, h, t, t)
        mixed = (weights @ v).transpose(1, 2).reshape(b, t, d)
        return self.out(mixed)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm encoder block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TokenEmbedding(nn.Module):
    """Token embedding plus a learned position embedding."""

    def __init__(self, vocab_size: int, d_model: int, max_len: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(max_len, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        idx = torch.arange(tokens.shape[1], device=tokens.device)
        return self.tokens(tokens) + self.positions(idx)


class TransformerClassifier(nn.Module):
    """Small encoder-only transformer; mean-pooled tokens into a linear head."""

    def __init__(self, vocab_size: int, n_classes: int, max_len: int,
                 d_model: int = 32, n_heads: int = 2, n_layers: int = 2, d_ff: int = 64):
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, d_model, max_len)
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x).mean(dim=1))


class Autoencoder(nn.Module):
    """Dense autoencoder for images: ``encoder`` to a small code, ``decoder`` back."""

    def __init__(self, image_shape: tuple[int, ...], latent: int = 8, hidden: int = 64):
        super().__init__()
        n = math.prod(image_shape)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, latent))
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, n), nn.Sigmoid(),
            nn.Unflatten(1, tuple(image_shape)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class VAEEncoder(nn.Module):
    """Image to the mean and log-variance of a diagonal Gaussian."""

    def __init__(self, n: int, hidden: int, latent: int):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.logvar(h)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per element (sum over latent units for a sample's KL)."""
    return 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar)


class VAE(nn.Module):
    """Variational autoencoder. In eval mode ``forward`` decodes the mean (deterministic)."""

    def __init__(self, image_shape: tuple[int, ...], latent: int = 8, hidden: int = 128):
        super().__init__()
        n = math.prod(image_shape)
        self.latent = latent
        self.encoder = VAEEncoder(n, hidden, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, n), nn.Sigmoid(),
            nn.Unflatten(1, tuple(image_shape)),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.encoder(x)
        if self.training:
            mu = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(mu)


class Generator(nn.Module):
    """Latent vector to an image in [0, 1]."""

    def __init__(self, latent: int, image_shape: tuple[int, ...], hidden: int = 128):
        super().__init__()
        n = math.prod(image_shape)
        self.latent = latent
        self.net = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 2 * hidden), nn.ReLU(),
            nn.Linear(2 * hidden, n), nn.Sigmoid(), nn.Unflatten(1, tuple(image_shape)),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """Image to one logit: how real it looks."""

    def __init__(self, image_shape: tuple[int, ...], hidden: int = 128):
        super().__init__()
        n = math.prod(image_shape)
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(n, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden // 2),
            nn.LeakyReLU(0.2), nn.Linear(hidden // 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GAN(nn.Module):
    """Holds the generator and the discriminator so they ship in one weights file."""

    def __init__(self, image_shape: tuple[int, ...], latent: int = 16, hidden: int = 128):
        super().__init__()
        self.generator = Generator(latent, image_shape, hidden)
        self.discriminator = Discriminator(image_shape, hidden)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.discriminator(self.generator(z))
