"""Training of zoo models: deterministic under a seed, on the CPU, with progress bars.

``train(name)`` builds the model, trains it with the settings in its spec, computes
its test metrics and writes ``NAME.safetensors`` and ``NAME.json`` atomically into a
folder of the user's (:func:`default_dir`: ``<store root>/zoo-weights``, e.g.
``~/.cache/interp/zoo-weights``), never into the shipped ``zoo/weights`` unless told
to (``force=True``), and only when the model clears its quality bar (unless
``keep_below_bar=True``). The same seed on the same machine gives bit-identical weights:
every random draw (initialisation, shuffling, noise, latent vectors) comes from
generators seeded here, and deterministic algorithms are enforced for the run.
"""

from __future__ import annotations

import contextlib
import json
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from interp._io import write_text, write_with
from interp.errors import InterpError
from interp.store import default_root

from . import WEIGHTS_DIR, _sha256, build, card_path, names, spec, weights_path
from . import data as zdata
from .evaluate import check_bars, metrics
from .models import gaussian_kl
from .registry import Spec, TrainConfig


@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[torch.Generator]:
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield torch.Generator().manual_seed(seed)
    finally:
        torch.use_deterministic_algorithms(previous)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=gen)
    for i in range(0, n, batch_size):
        yield order[i:i + batch_size]


def _adam(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    betas = tuple(cfg.extra.get("betas", (0.9, 0.999)))
    return torch.optim.Adam(params, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)


def _epochs(model: nn.Module, n: int, cfg: TrainConfig, gen, bar, batch_loss, label: str) -> dict:
    """Adam over ``cfg.epochs`` shuffled epochs of ``n`` samples; ``batch_loss(idx)`` is the
    mean loss of one batch. Shows the epoch's mean loss on the progress bar."""
    opt = _adam(model.parameters(), cfg)
    for _ in range(cfg.epochs):
        total = 0.0
        for idx in _batches(n, cfg.batch_size, gen):
            loss = batch_loss(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        bar.set_postfix({label: f"{total / n:.5g}"})
        bar.update()
    return {"final_train_loss": total / n}


def _fit_classifier(model: nn.Module, ds: zdata.Dataset, cfg: TrainConfig, gen, bar) -> dict:
    x, y = ds.train
    return _epochs(model, len(x), cfg, gen, bar,
                   lambda idx: F.cross_entropy(model(x[idx]), y[idx]), "loss")


def _fit_autoencoder(model: nn.Module, ds: zdata.Dataset, cfg: TrainConfig, gen, bar) -> dict:
    x = ds.train[0]
    return _epochs(model, len(x), cfg, gen, bar, lambda idx: F.mse_loss(model(x[idx]), x[idx]), "mse")


def _fit_vae(model: nn.Module, ds: zdata.Dataset, cfg: TrainConfig, gen, bar) -> dict:
    """ELBO with a Bernoulli likelihood (binary cross-entropy summed over pixels)."""
    x = ds.train[0]

    def negative_elbo(idx):
        xb = x[idx]
        mu, logvar = model.encoder(xb)
        z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
        nll = F.binary_cross_entropy(model.decoder(z), xb, reduction="sum") / len(xb)
        kl = gaussian_kl(mu, logvar).sum() / len(xb)
        return nll + kl

    record = _epochs(model, len(x), cfg, gen, bar, negative_elbo, "neg_elbo")
    return {**record, "loss": "negative ELBO, Bernoulli likelihood"}


def _fit_gan(model: nn.Module, ds: zdata.Dataset, cfg: TrainConfig, gen, bar) -> dict:
    """Non-saturating GAN loss with one-sided label smoothing (real target 0.9)."""
    x = ds.train[0]
    g, d = model.generator, model.discriminator
    opt_g, opt_d = _adam(g.parameters(), cfg), _adam(d.parameters(), cfg)
    smooth = cfg.extra.get("real_label", 0.9)
    for _ in range(cfg.epochs):
        for idx in _batches(len(x), cfg.batch_size, gen):
            real = x[idx]
            z = torch.randn(len(idx), g.latent, generator=gen)
            fake = g(z)
            d_real, d_fake = d(real), d(fake.detach())
            loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, smooth))
                      + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            out = d(fake)
            loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
        bar.set_postfix(loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}")
        bar.update()
    return {"final_loss_d": loss_d.item(), "final_loss_g": loss_g.item(),
            "loss": "non-saturating GAN loss, one-sided label smoothing", "real_label": smooth}


FITTERS = {
    "mlp": _fit_classifier, "cnn": _fit_classifier, "rnn": _fit_classifier,
    "transformer": _fit_classifier, "autoencoder": _fit_autoencoder, "vae": _fit_vae, "gan": _fit_gan,
}


def fit(name: str, *, seed: int | None = None, epochs: int | None = None,
        progress: bool = True) -> tuple[nn.Module, dict]:
    """Train entry ``name`` from scratch; returns the full model and its training record."""
    s: Spec = spec(name)
    cfg = s.train
    seed = cfg.seed if seed is None else seed
    epochs = cfg.epochs if epochs is None else epochs
    if not isinstance(epochs, int) or epochs < 1:
        raise InterpError(f"epochs must be a positive integer; got {epochs!r}")
    cfg = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                      weight_decay=cfg.weight_decay, seed=seed, extra=cfg.extra)
    with _deterministic(seed) as gen:
        full, ds = build(name)
        full.train()
        start = time.perf_counter()
        with tqdm(total=epochs, desc=f"{name:<22}", unit="epoch", disable=not progress,
                  leave=True, dynamic_ncols=True) as bar:
            record = FITTERS[s.kind](full, ds, cfg, gen, bar)
        seconds = time.perf_counter() - start
    full.eval()
    training = cfg.as_dict()
    training.update(record)
    training.update({"seconds": round(seconds, 2), "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "python": platform.python_version()})
    return full, training


def _card(name: str, full: nn.Module, training: dict, model_metrics: dict) -> dict:
    s = spec(name)
    ds = zdata.load(s.dataset)
    model = s.model_of(full)
    n_params = sum(p.numel() for p in full.parameters())
    card = {
        "name": name,
        "kind": s.kind,
        "task": s.task,
        "description": s.description,
        "modality": ds.modality,
        "input_shape": list(ds.input_shape),
        "input_dtype": str(ds.test[0].dtype).replace("torch.", ""),
        "model_class": type(model).__qualname__,
        "parameters": n_params,
        "dataset": ds.summary(),
        "training": training,
        "metrics": model_metrics,
    }
    if ds.classes:
        card["classes"] = list(ds.classes)
    if ds.feature_names:
        card["feature_names"] = list(ds.feature_names)
    if ds.vocab:
        card["vocab"] = list(ds.vocab)
    if s.parts_of(full):
        card["parts"] = sorted(s.parts_of(full))
    return card


class BelowBar(InterpError):
    """A trained model that misses its quality bar, and was therefore not saved."""


def default_dir() -> Path:
    """Where ``interp zoo train`` writes by default: ``<store root>/zoo-weights``."""
    return default_root() / "zoo-weights"


def _target(weights_dir: Path | None, force: bool) -> Path:
    folder = Path(weights_dir) if weights_dir is not None else default_dir()
    if folder.resolve() == WEIGHTS_DIR.resolve() and not force:
        raise InterpError(f"{folder} holds the shipped weights; training writes to {default_dir()} by default. "
                          "Pass force=True (`interp zoo train --weights-dir zoo/weights --force`) to replace them")
    return folder


def save(name: str, full: nn.Module, training: dict, weights_dir: Path | None = None, *, force: bool = False,
         keep_below_bar: bool = False) -> dict:
    """Compute the test metrics, then write weights and card atomically into ``weights_dir``
    (default :func:`default_dir`; the shipped folder only with ``force``); returns the card.
    A model below its quality bar raises :class:`BelowBar` and is not written, unless
    ``keep_below_bar``."""
    from safetensors.torch import save_file

    folder = _target(weights_dir, force)
    s = spec(name)
    ds = zdata.load(s.dataset)
    model_metrics = metrics(s.kind, full, s.model_of(full), ds, folder)
    failures = check_bars(s.kind, model_metrics)
    if failures and not keep_below_bar:
        raise BelowBar(f"{name} is below its quality bar ({'; '.join(failures)}), so it was not saved; train "
                       "longer, or pass --keep-below-bar to save it anyway")
    state = {k: v.detach().contiguous() for k, v in full.state_dict().items()}
    wpath = weights_path(name, folder)
    write_with(wpath, lambda tmp: save_file(state, str(tmp), metadata={"name": name}))
    card = _card(name, full, training, model_metrics)
    card["weights"] = {"file": wpath.name, "bytes": wpath.stat().st_size, "sha256": _sha256(wpath),
                       "format": "safetensors"}
    write_text(card_path(name, folder), json.dumps(card, indent=2) + "\n")
    card["quality_failures"] = failures
    card["written_to"] = str(folder)
    return card


def train(name: str, *, seed: int | None = None, epochs: int | None = None, weights_dir: Path | None = None,
          progress: bool = True, force: bool = False, keep_below_bar: bool = False) -> dict:
    """Train, evaluate and save entry ``name`` (see :func:`save`); returns its card."""
    _target(weights_dir, force)  # refuse before training, not after
    full, training = fit(name, seed=seed, epochs=epochs, progress=progress)
    return save(name, full, training, weights_dir, force=force, keep_below_bar=keep_below_bar)


def train_all(*, seed: int | None = None, weights_dir: Path | None = None, progress: bool = True,
              force: bool = False, keep_below_bar: bool = False) -> list[dict]:
    """Train every entry in registry order (the digit CNN before the GAN it judges)."""
    return [train(n, seed=seed, weights_dir=weights_dir, progress=progress, force=force,
                  keep_below_bar=keep_below_bar) for n in names()]


__all__ = ["fit", "save", "train", "train_all", "default_dir", "BelowBar", "WEIGHTS_DIR"]
