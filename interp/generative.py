"""Generative latents: walk a decoder's or generator's latent space and see what it makes.

    t = interp.generative.traverse(decoder, z0, units=(2, 5), span=3.0, steps=7)   # a 7 x 7 grid
    p = interp.generative.interpolate(generator, z_a, z_b, steps=9, critic=discriminator)
    kl = interp.generative.kl_per_unit(mu, logvar)      # which VAE units are used, which collapsed

Written here (no library among Captum, scikit-learn or umap-learn decodes latent
paths): a traversal moves a base code along two latent units (or any two directions)
by multiples of a scale (the codes' std per unit, so steps mean the same on every
unit) and decodes the grid; an interpolation decodes the straight path between two
codes and scores it with a critic (the GAN's discriminator), so one sees where the
path leaves what the critic takes for real data; ``kl_per_unit`` is the VAE's KL
divergence to the prior per latent unit, averaged over samples (a unit with KL near 0
carries no information about the input: posterior collapse). Results are frozen
dataclasses of tensors; the models are run in no-grad and left as they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ._checks import check_finite, scores_of
from .errors import InputError

COLLAPSED = 0.01  # nats: a unit whose mean KL is below this carries (almost) no information


@dataclass(frozen=True)
class Traversal:
    """Decoded outputs on a grid around ``base``: ``outputs[i, j]`` decodes
    ``base + offsets[i] * directions[0] + offsets[j] * directions[1]`` (one direction:
    a single row). ``units``: the latent units walked (None for free directions)."""

    outputs: torch.Tensor       # (rows, cols, *output shape)
    offsets: torch.Tensor       # (steps,) multiples of the scale
    base: torch.Tensor          # (latent,)
    directions: torch.Tensor    # (1 or 2, latent), already scaled
    units: tuple[int, ...] | None


@dataclass(frozen=True)
class Interpolation:
    """Decoded outputs along the straight path from ``start`` to ``end`` (``alphas`` in
    [0, 1]), and the ``critic``'s score of each (None without a critic)."""

    outputs: torch.Tensor       # (steps, *output shape)
    alphas: torch.Tensor        # (steps,)
    scores: torch.Tensor | None
    start: torch.Tensor
    end: torch.Tensor


def _code(z, what: str) -> torch.Tensor:
    if not isinstance(z, torch.Tensor) or not z.is_floating_point():
        raise InputError(f"{what} must be a float tensor (a latent code); got {type(z).__name__}")
    z = z.detach().reshape(-1) if z.ndim <= 1 or (z.ndim == 2 and len(z) == 1) else None
    if z is None:
        raise InputError(f"{what} must be one latent code, shaped (latent,) or (1, latent)")
    check_finite(z, what)
    return z


def _steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise InputError(f"steps must be an integer >= 2; got {steps!r}")
    return steps


def _decode(decoder: nn.Module, codes: torch.Tensor) -> torch.Tensor:
    if not isinstance(decoder, nn.Module):
        raise InputError(f"expected the decoder or generator as an nn.Module; got {type(decoder).__name__}")
    with torch.no_grad():
        try:
            out = decoder(codes)
        except RuntimeError as exc:
            raise InputError(f"the decoder refused codes of shape {tuple(codes.shape)}: {exc}") from None
    if not isinstance(out, torch.Tensor):
        raise InputError(f"the decoder must return a tensor; got {type(out).__name__}")
    return out


def traverse(decoder: nn.Module, base, units=None, directions=None, span: float = 3.0, steps: int = 7,
             scale=None) -> Traversal:
    """Decode codes around ``base`` along two latent ``units`` (or one), or along free
    ``directions`` ((1|2, latent) tensor), from ``-span`` to ``+span`` times ``scale``
    (a number, or per unit; default 1) in ``steps`` steps per axis."""
    z = _code(base, "base")
    steps = _steps(steps)
    if isinstance(span, bool) or not isinstance(span, (int, float)) or not math.isfinite(span) or span <= 0:
        raise InputError(f"span must be a finite number > 0; got {span!r}")
    latent = len(z)
    if (units is None) == (directions is None):
        raise InputError("give either units=(i, j) (latent units to walk) or directions=(1 or 2, latent) tensor")
    s = torch.ones(latent, dtype=z.dtype) if scale is None else torch.as_tensor(scale, dtype=z.dtype).reshape(-1)
    if s.numel() == 1:
        s = s.expand(latent)
    if len(s) != latent or not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise InputError(f"scale must be a number > 0 or one per latent unit ({latent})")
    if units is not None:
        units = tuple(units) if isinstance(units, (tuple, list)) else (units,)
        if not 1 <= len(units) <= 2 or any(isinstance(u, bool) or not isinstance(u, int) or not 0 <= u < latent
                                           for u in units):
            raise InputError(f"units must be one or two latent unit indices in [0, {latent - 1}]; got {units!r}")
        dirs = torch.zeros(len(units), latent, dtype=z.dtype)
        for k, u in enumerate(units):
            dirs[k, u] = s[u]
    else:
        dirs = torch.as_tensor(directions, dtype=z.dtype)
        if dirs.ndim == 1:
            dirs = dirs[None]
        if dirs.ndim != 2 or dirs.shape[1] != latent or not 1 <= len(dirs) <= 2:
            raise InputError(f"directions must be (1 or 2, {latent}); got {tuple(dirs.shape)}")
        check_finite(dirs, "directions")
        dirs = dirs * s
    offsets = torch.linspace(-float(span), float(span), steps, dtype=z.dtype)
    if len(dirs) == 1:
        codes = z + offsets[:, None] * dirs[0]
        out = _decode(decoder, codes)[None]
    else:
        a, b = torch.meshgrid(offsets, offsets, indexing="ij")
        codes = z + a.reshape(-1, 1) * dirs[0] + b.reshape(-1, 1) * dirs[1]
        out = _decode(decoder, codes)
        out = out.reshape(steps, steps, *out.shape[1:])
    return Traversal(outputs=out, offsets=offsets, base=z, directions=dirs,
                     units=tuple(int(u) for u in units) if units is not None else None)


def interpolate(decoder: nn.Module, start, end, steps: int = 9, critic: nn.Module | None = None) -> Interpolation:
    """Decode the straight path from code ``start`` to code ``end``; with a ``critic``
    (e.g. a GAN's discriminator), its score of every decoded output."""
    a, b = _code(start, "start"), _code(end, "end")
    if a.shape != b.shape:
        raise InputError(f"start and end must be codes of one size; got {len(a)} and {len(b)}")
    alphas = torch.linspace(0.0, 1.0, _steps(steps), dtype=a.dtype)
    out = _decode(decoder, a + alphas[:, None] * (b - a))
    scores = None
    if critic is not None:
        with torch.no_grad():
            try:
                s = scores_of(critic(out))
            except RuntimeError as exc:
                raise InputError(f"the critic refused the decoded outputs of shape {tuple(out.shape)}: {exc}") from None
        scores = s[:, 0] if s.shape[1] == 1 else s
    return Interpolation(outputs=out, alphas=alphas, scores=scores, start=a, end=b)


def kl_per_unit(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent unit, averaged over samples:
    ``0.5 * (mu^2 + exp(logvar) - logvar - 1)``. Units below COLLAPSED carry (almost)
    no information about the input."""
    for t, what in ((mu, "mu"), (logvar, "logvar")):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.ndim != 2:
            raise InputError(f"{what} must be a float tensor (samples, latent units)")
        check_finite(t, what)
    if mu.shape != logvar.shape:
        raise InputError(f"mu and logvar must have one shape; got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    return (0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)).mean(0)


__all__ = ["traverse", "interpolate", "kl_per_unit", "Traversal", "Interpolation", "COLLAPSED"]
