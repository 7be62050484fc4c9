"""What the overview of a zoo entry shows, shared by the dashboard and the reports.

Both faces call these functions, so a model's overview looks the same in the
browser and in a static report. Computation happens here (predictions,
summaries); drawing happens in :mod:`interp.figures`.
"""

from __future__ import annotations

import functools
import threading

import plotly.graph_objects as go
import torch

from interp import figures, summarize
from interp.architecture import Architecture
from interp.errors import InputError

from . import Entry, load
from .evaluate import QUALITY_BARS, generated_samples

N_GENERATED = 16
N_RECONSTRUCTIONS = 8


@functools.lru_cache(maxsize=16)
def cached_entry(name: str) -> Entry:
    """A loaded entry kept in memory (the dashboard switches between models often)."""
    return load(name)


def card_rows(card: dict) -> list[tuple[str, str]]:
    """The model card as (field, text) rows for display."""
    ds = card.get("dataset", {})
    tr = card.get("training", {})
    rows = [
        ("name", card["name"]),
        ("kind", card["kind"]),
        ("task", card["task"]),
        ("description", card.get("description", "")),
        ("input", f"{card['modality']}, shape {tuple(card['input_shape'])}, {card['input_dtype']}"),
        ("parameters", f"{card.get('parameters', 0):,}"),
        ("dataset", f"{ds.get('name')}: {ds.get('description', '')}"),
        ("split", f"{ds.get('n_train')} train / {ds.get('n_test')} test"),
    ]
    if "ground_truth" in ds:
        rows.append(("ground truth", ds["ground_truth"]))
    if "classes" in card:
        rows.append(("classes", ", ".join(card["classes"])))
    if "feature_names" in card:
        rows.append(("features", f"{len(card['feature_names'])}: " + ", ".join(card["feature_names"])))
    if "vocab" in card:
        rows.append(("vocabulary", f"{len(card['vocab'])} tokens: " + " ".join(card["vocab"])))
    if "parts" in card:
        rows.append(("parts", ", ".join(card["parts"])))
    keys = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "seed", "seconds", "torch")
    rows.append(("training", ", ".join(f"{k}={tr[k]}" for k in keys if k in tr)))
    weights = card.get("weights", {})
    if weights:
        rows.append(("weights", f"{weights.get('file')} ({weights.get('bytes', 0) / 1024:.0f} KiB, "
                                f"sha256 {weights.get('sha256', '')[:12]}…)"))
    return rows


_memo_lock = threading.RLock()  # the dashboard serves requests on threads: compute each result once


def _memo(entry: Entry, key: str, compute):
    """``compute()`` once per entry (results depend on its weights, so they live on it)."""
    if key not in entry.memo:
        with _memo_lock:
            if key not in entry.memo:
                entry.memo[key] = compute()
    return entry.memo[key]


def architecture(entry: Entry) -> Architecture:
    """The architecture summary of an entry (one forward pass on one test sample)."""
    return _memo(entry, "architecture", lambda: summarize(entry.model, entry.test[0][:1]))


def _bar_text(kind: str) -> dict[str, str]:
    return {k: f"{op} {bound}" for k, (op, bound) in QUALITY_BARS.get(kind, {}).items()}


def _generated(entry: Entry) -> tuple[torch.Tensor, torch.Tensor]:
    """A GAN entry's first generated samples and the digit CNN's probabilities for them."""
    def compute():
        images = generated_samples(entry.parts["generator"])[:N_GENERATED]
        return images, cached_entry("cnn-digits").predict(images)

    return _memo(entry, "generated", compute)


def overview_figures(entry: Entry) -> dict[str, go.Figure]:
    """Ordered figures of an entry's overview: metrics, architecture, and a task view."""
    out: dict[str, go.Figure] = {}
    out["metrics"] = figures.metrics_table(entry.card["metrics"], bars=_bar_text(entry.kind))
    x = entry.test[0]
    out["architecture"] = figures.architecture_table(architecture(entry))
    if entry.is_classifier:
        out["confusion"] = figures.confusion_matrix(entry.card["metrics"]["confusion_matrix"],
                                                    entry.card["classes"])
    elif entry.card["task"] == "reconstruction":
        originals = x[:N_RECONSTRUCTIONS]
        recon = entry.predict(originals)
        out["reconstructions"] = figures.image_grid(
            torch.cat([originals, recon]), cols=N_RECONSTRUCTIONS,
            title="Test inputs (top) and their reconstructions (bottom)")
    elif entry.card["task"] == "generation":
        images, probs = _generated(entry)
        conf, label = probs.max(-1)
        titles = [f"{int(c)} ({float(p):.2f})" for c, p in zip(label, conf)]
        out["generated"] = figures.image_grid(
            images, titles, cols=8,
            title="Generated samples, labelled by the zoo's digit CNN (class, confidence)")
    return out


def sample_count(entry: Entry) -> int:
    return int(entry.test[0].shape[0])


def check_index(entry: Entry, index: int) -> int:
    """``index`` if it names a test sample of ``entry``; an InputError otherwise."""
    n = sample_count(entry)
    if not isinstance(index, int) or not 0 <= index < n:
        raise InputError(f"test sample index must be an integer in [0, {n - 1}]; got {index!r}")
    return index


def sample_figures(entry: Entry, index: int) -> dict[str, go.Figure]:
    """The test sample ``index`` as it looks, and what the model says about it."""
    index = check_index(entry, index)
    x, y = entry.test
    xi = x[index:index + 1]
    truth = entry.truth[index] if entry.truth is not None else None
    raw = None
    if entry.dataset.modality == "tabular" and "feature_mean" in entry.dataset.extra:
        mean = torch.tensor(entry.dataset.extra["feature_mean"])
        std = torch.tensor(entry.dataset.extra["feature_std"])
        raw = x[index] * std + mean
    out = {"sample": figures.sample_view(
        x[index], entry.dataset.modality, title=f"test sample {index}",
        feature_names=entry.card.get("feature_names"), vocab=entry.card.get("vocab"),
        truth=truth, raw_values=raw)}
    prediction = entry.predict(xi)
    if entry.is_classifier:
        out["prediction"] = figures.class_probabilities(prediction[0], entry.card["classes"],
                                                        true=int(y[index]))
    elif entry.card["task"] == "reconstruction":
        mse = float(((prediction - xi) ** 2).mean())
        out["prediction"] = figures.image_grid(torch.cat([xi, prediction]), ["input", "reconstruction"],
                                               cols=2, title=f"reconstruction (MSE {mse:.4f})")
    else:
        out["prediction"] = figures.real_score(float(prediction[0]))
    return out


def sample_caption(entry: Entry, index: int) -> str:
    """One line about test sample ``index`` (true label and prediction)."""
    index = check_index(entry, index)
    x, y = entry.test
    prediction = entry.predict(x[index:index + 1])
    classes = entry.card.get("classes")
    if entry.is_classifier:
        p = int(prediction[0].argmax())
        ok = "correct" if p == int(y[index]) else "misclassified"
        return (f"test sample {index}: true {classes[int(y[index])]}, predicted {classes[p]} "
                f"({float(prediction[0, p]):.3f}), {ok}")
    if entry.card["task"] == "reconstruction":
        mse = float(((prediction - x[index:index + 1]) ** 2).mean())
        return f"test sample {index} (digit {classes[int(y[index])]}): reconstruction MSE {mse:.4f}"
    return (f"test sample {index} (real digit {classes[int(y[index])]}): "
            f"discriminator P(real) = {float(prediction[0]):.3f}")


def misclassified(entry: Entry) -> list[int]:
    """Indices of misclassified test samples (empty for models that do not classify)."""
    if not entry.is_classifier:
        return []

    def compute():
        x, y = entry.test
        return tuple(torch.nonzero(entry.predict(x).argmax(-1) != y).flatten().tolist())

    return list(_memo(entry, "misclassified", compute))


def showcase_samples(entry: Entry, n_correct: int = 3, n_wrong: int = 2) -> list[int]:
    """A deterministic handful of test samples: the first correct ones of distinct classes,
    then the first misclassified ones."""
    x, y = entry.test
    wrong = set(misclassified(entry))
    picks, seen = [], set()
    for i in range(len(y)):
        if i not in wrong and int(y[i]) not in seen:
            picks.append(i)
            seen.add(int(y[i]))
        if len(picks) == n_correct:
            break
    return picks + sorted(wrong)[:n_wrong]
