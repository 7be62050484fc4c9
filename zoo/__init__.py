"""The zoo: small trained models of every kind interp explains, with their data and cards.

    >>> import zoo
    >>> zoo.names()
    ['mlp-cancer', 'cnn-digits', ...]
    >>> entry = zoo.load("cnn-digits")     # weights from safetensors, model in eval mode
    >>> x, y = entry.test
    >>> subject = zoo.subject("cnn-digits")  # what the dashboard and reports inspect

Weights ship in ``zoo/weights/NAME.safetensors`` beside a model card
``NAME.json`` (kind, task, input shape, names, training settings, test metrics,
the weights' sha256). Loading never unpickles anything.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from interp.errors import UnknownNameError, WeightsError

from . import data
from .registry import KINDS, SPECS, Spec

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

__all__ = ["names", "load", "subject", "Entry", "KINDS", "WEIGHTS_DIR", "spec", "card_path", "weights_path"]


def names() -> list[str]:
    """Names of every zoo entry, in a stable order."""
    return list(SPECS)


def spec(name: str) -> Spec:
    if not isinstance(name, str) or name not in SPECS:
        raise UnknownNameError("zoo model", name, SPECS)
    return SPECS[name]


def weights_path(name: str, weights_dir: Path | None = None) -> Path:
    return Path(weights_dir or WEIGHTS_DIR) / f"{name}.safetensors"


def card_path(name: str, weights_dir: Path | None = None) -> Path:
    return Path(weights_dir or WEIGHTS_DIR) / f"{name}.json"


@dataclass
class Entry:
    """A loaded zoo model with its data and card."""

    name: str
    card: dict
    model: nn.Module
    parts: dict[str, nn.Module]
    dataset: data.Dataset
    full: nn.Module = field(repr=False)
    memo: dict = field(default_factory=dict, repr=False)  # results derived from this entry, for reuse

    @property
    def kind(self) -> str:
        return self.card["kind"]

    @property
    def train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset.train

    @property
    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset.test

    @property
    def truth(self) -> torch.Tensor | None:
        """Ground-truth relevance masks of the test inputs (synthetic sets), else None."""
        return self.dataset.test_truth

    @property
    def is_classifier(self) -> bool:
        return self.card["task"] == "classification"

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """What the model says about ``x``, by task.

        classification: class probabilities (n, classes); reconstruction: the
        reconstructed inputs; generation: the discriminator's probability that each
        input is real, (n,).
        """
        out = self.model(x)
        if self.card["task"] == "classification":
            return out.softmax(-1)
        if self.card["task"] == "generation":
            return torch.sigmoid(out).squeeze(-1)
        return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_card(name: str, weights_dir: Path | None = None) -> dict:
    path = card_path(name, weights_dir)
    if not path.is_file():
        raise WeightsError(f"model card {str(path)!r} is missing; "
                           f"expected one beside the weights (run `interp zoo train {name}`)")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise WeightsError(f"model card {str(path)!r} is not valid JSON ({exc}); "
                           f"restore it or run `interp zoo train {name}`") from None
    if not isinstance(card, dict) or not isinstance(card.get("weights"), dict) \
            or not card["weights"].get("sha256"):
        raise WeightsError(f"model card {str(path)!r} is incomplete: expected a JSON object with "
                           f"weights.sha256 (run `interp zoo train {name}`)")
    return card


def read_weights(path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file (read once, hash-checked when a hash is given),
    with errors that name the file. Never unpickles."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} is missing; "
                           f"expected a .safetensors file (run `interp zoo train {path.stem}`)")
    raw = path.read_bytes()
    try:
        tensors = load(raw)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"weights file {str(path)!r} is truncated or not a safetensors file "
                           f"({exc}); restore it or run `interp zoo train {path.stem}`") from None
    if expected_sha256 and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise WeightsError(f"weights file {str(path)!r} does not match the sha256 in its model card; "
                           f"it was changed or corrupted (run `interp zoo train {path.stem}`)")
    return tensors


def build(name: str) -> tuple[nn.Module, data.Dataset]:
    """A fresh, untrained model of entry ``name`` and its dataset."""
    s = spec(name)
    ds = data.load(s.dataset)
    return s.build(ds), ds


def load(name: str, weights_dir: str | Path | None = None) -> Entry:
    """Load a zoo entry from its safetensors weights; the model is returned in eval mode."""
    s = spec(name)
    card = read_card(name, weights_dir)
    path = weights_path(name, weights_dir)
    tensors = read_weights(path, card["weights"]["sha256"])
    full, ds = build(name)
    try:
        full.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise WeightsError(f"weights file {str(path)!r} does not fit model {name!r} ({first}); "
                           f"run `interp zoo train {name}`") from None
    full.eval()
    for p in full.parameters():
        p.requires_grad_(True)
    return Entry(name=name, card=card, model=s.model_of(full), parts=s.parts_of(full),
                 dataset=ds, full=full)


def _about(entry: Entry) -> list[tuple[str, str]]:
    """The card's rows a subject does not say itself: data, split, training, weights."""
    card = entry.card
    ds, tr = card.get("dataset", {}), card.get("training", {})
    rows = [("kind", card["kind"]),
            ("dataset", f"{ds.get('name')}: {ds.get('description', '')}"),
            ("split", f"{ds.get('n_train')} train / {ds.get('n_test')} test (the test split is inspected)")]
    if "ground_truth" in ds:
        rows.append(("ground truth", ds["ground_truth"]))
    keys = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "seed", "seconds", "torch")
    rows.append(("training", ", ".join(f"{k}={tr[k]}" for k in keys if k in tr)))
    weights = card.get("weights", {})
    if weights:
        rows.append(("weights", f"{weights.get('file')} ({weights.get('bytes', 0) / 1024:.0f} KiB, "
                                f"sha256 {weights.get('sha256', '')[:12]}…)"))
    return rows


@functools.lru_cache(maxsize=16)
def subject(name: str, weights_dir: str | Path | None = None):
    """The zoo entry ``name`` as an :class:`interp.Subject`: its model and parts, the test
    split, the card's names, metrics and quality bars (kept per process: the dashboard
    switches between models often)."""
    from interp import Subject

    from .evaluate import QUALITY_BARS

    entry = load(name, weights_dir)
    ds = entry.dataset
    scaling = None
    if "feature_mean" in ds.extra:
        scaling = (torch.tensor(ds.extra["feature_mean"]), torch.tensor(ds.extra["feature_std"]))
    judge = load("cnn-digits", weights_dir).model if entry.kind == "gan" else None
    return Subject(entry.model, entry.test, name=entry.name, task=entry.card["task"], modality=ds.modality,
                   classes=ds.classes, features=ds.feature_names, vocab=ds.vocab, truth=entry.truth,
                   parts=entry.parts, metrics=entry.card["metrics"], bars=QUALITY_BARS.get(entry.kind),
                   reference=entry.train[0], judge=judge, pad_id=0 if ds.modality == "tokens" else None,
                   scaling=scaling, description=entry.card.get("description", ""), about=_about(entry))
