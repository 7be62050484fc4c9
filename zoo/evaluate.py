"""Test-split metrics of zoo models, and the quality bars they must clear.

The same function fills a model card after training and recomputes it from the
shipped weights (``interp zoo evaluate``), so a card can always be checked.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import data as zdata

GAN_SAMPLES = 1000
GAN_SEED = 1234
SHUFFLE_SEED = 4321

# metric -> (comparison, bound); checked by the tests and shown by `interp zoo evaluate`
QUALITY_BARS: dict[str, dict[str, tuple[str, float]]] = {
    "mlp": {"accuracy": (">=", 0.93)},
    "cnn": {"accuracy": (">=", 0.95)},
    "rnn": {"accuracy": (">=", 0.95)},
    "transformer": {"accuracy": (">=", 0.95)},
    "autoencoder": {"mse_ratio": ("<=", 0.5)},
    "vae": {"mse_ratio": ("<=", 0.5)},
    "gan": {"gen_confidence": (">=", 0.8), "disc_auc_real_vs_shuffled": (">=", 0.9),
            "gen_classes_covered": (">=", 8)},
}


def check_bars(kind: str, metrics: dict) -> list[str]:
    """Descriptions of the quality bars ``metrics`` misses (empty when all are met)."""
    failures = []
    for key, (op, bound) in QUALITY_BARS.get(kind, {}).items():
        value = metrics.get(key)
        ok = value is not None and (value >= bound if op == ">=" else value <= bound)
        if not ok:
            failures.append(f"{key}={value} (needs {op} {bound})")
    return failures


@torch.no_grad()
def _batched(fn, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])


def classification(model: nn.Module, ds: zdata.Dataset) -> dict:
    from sklearn.metrics import confusion_matrix, f1_score

    x, y = ds.test
    pred = _batched(model, x).argmax(-1).numpy()
    y = y.numpy()
    return {
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "n_test": int(len(y)),
        "confusion_matrix": confusion_matrix(y, pred, labels=range(len(ds.classes))).tolist(),
    }


def _reconstruction_errors(model: nn.Module, ds: zdata.Dataset) -> dict:
    x = ds.test[0]
    recon = _batched(model, x)
    mse = float(((recon - x) ** 2).mean())
    baseline = float(((ds.train[0].mean(0, keepdim=True) - x) ** 2).mean())
    return {"mse": mse, "baseline_mse": baseline, "mse_ratio": mse / baseline, "n_test": int(len(x))}


def reconstruction(full: nn.Module, ds: zdata.Dataset) -> dict:
    return _reconstruction_errors(full, ds)


def kl_per_unit(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean KL(q(z|x) || N(0, 1)) per latent unit over ``x``."""
    from .models import gaussian_kl

    with torch.no_grad():
        mu, logvar = encoder(x)
    return gaussian_kl(mu, logvar).mean(0)


def variational(full: nn.Module, ds: zdata.Dataset) -> dict:
    out = _reconstruction_errors(full, ds)
    kl = kl_per_unit(full.encoder, ds.test[0])
    out.update({"kl": float(kl.sum()), "kl_per_unit": [float(v) for v in kl],
                "active_units": int((kl > 0.01).sum())})
    return out


def generated_samples(generator: nn.Module, n: int = GAN_SAMPLES, seed: int = GAN_SEED) -> torch.Tensor:
    """The fixed set of generated images the GAN's metrics are computed on."""
    z = torch.randn(n, generator.latent, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator(z)


def shuffled_pixels(x: torch.Tensor, seed: int = SHUFFLE_SEED) -> torch.Tensor:
    """Each image's pixels randomly permuted: same intensities, no digit structure."""
    g = torch.Generator().manual_seed(seed)
    flat = x.reshape(len(x), -1)
    order = torch.stack([torch.randperm(flat.shape[1], generator=g) for _ in range(len(x))])
    return flat.gather(1, order).reshape(x.shape)


def generation(full: nn.Module, ds: zdata.Dataset, classifier: nn.Module) -> dict:
    from sklearn.metrics import roc_auc_score

    fake = generated_samples(full.generator)
    real = ds.test[0]
    with torch.no_grad():
        probs = classifier(fake).softmax(-1)
        d_real = torch.sigmoid(full.discriminator(real)).squeeze(-1).numpy()
        d_fake = torch.sigmoid(full.discriminator(fake)).squeeze(-1).numpy()
        d_shuf = torch.sigmoid(full.discriminator(shuffled_pixels(real))).squeeze(-1).numpy()
    counts = np.bincount(probs.argmax(-1).numpy(), minlength=probs.shape[1])
    ones, zeros = np.ones(len(real)), np.zeros
    return {
        "gen_confidence": float(probs.max(-1).values.mean()),
        "gen_classes_covered": int((counts >= 0.02 * len(fake)).sum()),
        "gen_class_counts": counts.tolist(),
        "disc_real_accuracy": float((d_real > 0.5).mean()),
        "disc_fake_accuracy": float((d_fake < 0.5).mean()),
        "disc_auc_real_vs_generated": float(roc_auc_score(
            np.r_[ones, zeros(len(fake))], np.r_[d_real, d_fake])),
        "disc_auc_real_vs_shuffled": float(roc_auc_score(
            np.r_[ones, zeros(len(real))], np.r_[d_real, d_shuf])),
        "n_generated": int(len(fake)),
    }


def metrics(kind: str, full: nn.Module, model: nn.Module, ds: zdata.Dataset,
            weights_dir=None) -> dict:
    """Test metrics of one model, by kind (the GAN is judged by the zoo's digit CNN)."""
    full.eval()
    if kind in ("mlp", "cnn", "rnn", "transformer"):
        return classification(model, ds)
    if kind == "autoencoder":
        return reconstruction(full, ds)
    if kind == "vae":
        return variational(full, ds)
    if kind == "gan":
        from . import card_path, load

        # the judge from the same folder where one was trained there, else the shipped one
        judge_dir = weights_dir if weights_dir is not None and card_path("cnn-digits", weights_dir).is_file() else None
        return generation(full, ds, load("cnn-digits", judge_dir).model)
    raise ValueError(kind)


def compare(card_metrics: dict, fresh: dict, rel: float = 1e-4) -> list[str]:
    """Keys whose recomputed value differs from the card's (empty when all match)."""
    bad = []
    for key, want in card_metrics.items():
        got = fresh.get(key)
        if not np.allclose(np.asarray(got, float), np.asarray(want, float), rtol=rel, atol=1e-6):
            bad.append(f"{key}: card {want} vs recomputed {got}")
    return bad
