"""Datasets of the zoo: scikit-learn's bundled sets and synthetic sets made in code.

Nothing is downloaded. ``digits`` and ``breast_cancer`` come from the copies that
ship inside scikit-learn; ``shapes`` and ``sentiment`` are generated here from a
fixed seed, together with their *ground truth*: for each sample, which pixels or
token positions decide its label. Explanations can then be scored against a
known answer instead of being judged by eye.

Every split is deterministic: the same call returns the same tensors on every
machine (numpy's PCG64 generator, fixed seeds, no threads involved).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch

SPLIT_SEED = 0
TEST_FRACTION = 0.25


@dataclass(frozen=True)
class Dataset:
    """One dataset with its train/test split and whatever names it needs to be shown.

    ``train_truth`` / ``test_truth`` are ground-truth relevance masks (bool, shaped
    like the inputs) for synthetic sets, ``None`` otherwise.
    """

    name: str
    modality: str  # "image" | "tabular" | "tokens"
    description: str
    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    classes: tuple[str, ...] | None = None
    feature_names: tuple[str, ...] | None = None
    vocab: tuple[str, ...] | None = None
    train_truth: torch.Tensor | None = None
    test_truth: torch.Tensor | None = None
    truth_description: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.test[0].shape[1:])

    def summary(self) -> dict:
        """The card's ``dataset`` section."""
        out = {
            "name": self.name,
            "modality": self.modality,
            "description": self.description,
            "n_train": int(self.train[0].shape[0]),
            "n_test": int(self.test[0].shape[0]),
            "input_shape": list(self.input_shape),
            "input_dtype": str(self.test[0].dtype).replace("torch.", ""),
        }
        if self.truth_description:
            out["ground_truth"] = self.truth_description
        return out


def _split(n: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split into (train indices, test indices)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    train, test = train_test_split(
        idx, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    return np.sort(train), np.sort(test)


@functools.cache
def digits() -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (n, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    tr, te = _split(len(y), y)
    return Dataset(
        name="digits",
        modality="image",
        description="scikit-learn bundled 8x8 handwritten digits (UCI), pixels scaled to [0, 1]",
        train=(torch.from_numpy(x[tr]), torch.from_numpy(y[tr])),
        test=(torch.from_numpy(x[te]), torch.from_numpy(y[te])),
        classes=tuple(str(c) for c in bunch.target_names),
    )


@functools.cache
def breast_cancer() -> Dataset:
    """scikit-learn's Wisconsin breast cancer table, standardised with training statistics."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x = bunch.data.astype(np.float64)
    y = bunch.target.astype(np.int64)
    tr, te = _split(len(y), y)
    mean, std = x[tr].mean(0), x[tr].std(0)
    z = ((x - mean) / std).astype(np.float32)
    return Dataset(
        name="breast_cancer",
        modality="tabular",
        description="scikit-learn bundled Wisconsin diagnostic breast cancer table; "
        "features standardised with the training split's mean and std",
        train=(torch.from_numpy(z[tr]), torch.from_numpy(y[tr])),
        test=(torch.from_numpy(z[te]), torch.from_numpy(y[te])),
        classes=tuple(str(c) for c in bunch.target_names),
        feature_names=tuple(str(f) for f in bunch.feature_names),
        extra={"feature_mean": mean.tolist(), "feature_std": std.tolist()},
    )


# --------------------------------------------------------------------------- shapes

SHAPE_CLASSES = ("ring", "square", "triangle", "cross")
SHAPE_SIZE = 16


def _shape_mask(kind: str, cy: float, cx: float, r: float, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    if kind == "ring":
        d = np.hypot(dy, dx)
        return np.abs(d - r) <= 0.6
    if kind == "square":  # outline
        m = np.maximum(np.abs(dy), np.abs(dx))
        return np.abs(m - r) <= 0.5
    if kind == "triangle":  # filled, apex up
        inside_y = (dy >= -r) & (dy <= r)
        half_width = (dy + r) / 2.0  # 0 at the apex, r at the base
        return inside_y & (np.abs(dx) <= half_width + 0.3)
    if kind == "cross":  # plus sign
        return ((np.abs(dy) <= 0.5) & (np.abs(dx) <= r)) | ((np.abs(dx) <= 0.5) & (np.abs(dy) <= r))
    raise ValueError(kind)


def _clutter(rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.zeros((size, size))
    for _ in range(rng.integers(4, 8)):  # short strokes
        y, x = rng.integers(0, size, 2)
        dy, dx = [(0, 1), (1, 0), (1, 1), (1, -1)][rng.integers(4)]
        value = rng.uniform(0.3, 0.7)
        for k in range(rng.integers(2, 4)):
            yk, xk = y + k * dy, x + k * dx
            if 0 <= yk < size and 0 <= xk < size:
                img[yk, xk] = max(img[yk, xk], value)
    return img


def make_shapes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` 16x16 images of one shape drawn over random strokes and noise.

    Returns (images float32 (n, 1, 16, 16), labels int64 (n,), masks bool (n, 1, 16, 16));
    the mask marks the pixels of the shape, i.e. what decides the label.
    """
    rng = np.random.default_rng(seed)
    size = SHAPE_SIZE
    images = np.zeros((n, 1, size, size), np.float32)
    masks = np.zeros((n, 1, size, size), bool)
    labels = rng.integers(0, len(SHAPE_CLASSES), n).astype(np.int64)
    for i in range(n):
        r = rng.uniform(3.0, 5.0)
        cy, cx = rng.uniform(r + 1, size - r - 2, 2)
        mask = _shape_mask(SHAPE_CLASSES[labels[i]], cy, cx, r, size)
        img = _clutter(rng, size)
        img[mask] = rng.uniform(0.8, 1.0)
        img += rng.normal(0.0, 0.05, img.shape)
        images[i, 0] = np.clip(img, 0.0, 1.0)
        masks[i, 0] = mask
    return images, labels, masks


def _synthetic(make, n_train: int, n_test: int, seeds: tuple[int, int], **fields) -> Dataset:
    """A Dataset from a generator ``make(n, seed) -> (inputs, labels, truth masks)``."""
    (xtr, ytr, mtr), (xte, yte, mte) = make(n_train, seed=seeds[0]), make(n_test, seed=seeds[1])
    t = torch.from_numpy
    return Dataset(train=(t(xtr), t(ytr)), test=(t(xte), t(yte)), train_truth=t(mtr),
                   test_truth=t(mte), **fields)


@functools.cache
def shapes(n_train: int = 3000, n_test: int = 1000) -> Dataset:
    """Synthetic shapes on clutter, with the shape's pixel mask as ground truth."""
    return _synthetic(
        make_shapes, n_train, n_test, (101, 202),
        name="shapes",
        modality="image",
        description="synthetic 16x16 images: one shape (ring, square outline, filled triangle, "
        "plus sign) drawn over random strokes and Gaussian noise; generated in code",
        classes=SHAPE_CLASSES,
        truth_description="bool mask shaped like the image: the pixels of the shape",
    )


# ------------------------------------------------------------------------ sentiment

PAD, NOT = "<pad>", "not"
FILLER = ("the", "a", "movie", "film", "plot", "was", "is", "and", "it", "this",
          "story", "acting", "really", "quite", "very", "so")
POSITIVE = ("good", "great", "excellent", "wonderful", "fun", "brilliant", "moving", "superb")
NEGATIVE = ("bad", "awful", "boring", "terrible", "dull", "poor", "weak", "worst")
VOCAB = (PAD, NOT) + FILLER + POSITIVE + NEGATIVE
SEQ_LEN = 12
SENTIMENT_CLASSES = ("negative", "positive")


def make_sentiment(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` token sequences whose label is decided by known positions.

    Each sequence of 12 tokens holds filler words and exactly one sentiment word.
    Half of the time "not" stands right before it and flips the label (the negation
    case); independently, 30% of sequences get a distractor "not" elsewhere, which
    changes nothing. Returns (token ids int64 (n, 12), labels int64 (n,),
    masks bool (n, 12)); the mask marks the sentiment word and its negation.
    """
    rng = np.random.default_rng(seed)
    index = {w: i for i, w in enumerate(VOCAB)}
    filler = np.array([index[w] for w in FILLER])
    pos = np.array([index[w] for w in POSITIVE])
    neg = np.array([index[w] for w in NEGATIVE])
    tokens = rng.choice(filler, size=(n, SEQ_LEN))
    labels = np.zeros(n, np.int64)
    masks = np.zeros((n, SEQ_LEN), bool)
    for i in range(n):
        p = int(rng.integers(1, SEQ_LEN))
        positive = bool(rng.integers(2))
        negated = bool(rng.integers(2))
        if rng.random() < 0.3:  # distractor: a "not" that negates nothing
            q = int(rng.choice([j for j in range(SEQ_LEN) if j not in (p - 1, p)]))
            tokens[i, q] = index[NOT]
        tokens[i, p] = rng.choice(pos if positive else neg)
        masks[i, p] = True
        if negated:
            tokens[i, p - 1] = index[NOT]
            masks[i, p - 1] = True
        labels[i] = int(positive != negated)
    return tokens.astype(np.int64), labels, masks


@functools.cache
def sentiment(n_train: int = 4000, n_test: int = 1000) -> Dataset:
    """Synthetic token sentiment with negation, with the deciding positions as ground truth."""
    return _synthetic(
        make_sentiment, n_train, n_test, (303, 404),
        name="sentiment",
        modality="tokens",
        description="synthetic 12-token sentences: filler words and one sentiment word, "
        "negated by a preceding 'not' half of the time; distractor 'not's elsewhere; "
        "generated in code",
        classes=SENTIMENT_CLASSES,
        vocab=VOCAB,
        truth_description="bool mask over token positions: the sentiment word and, "
        "when negated, the 'not' right before it",
    )


DATASETS = {"digits": digits, "breast_cancer": breast_cancer, "shapes": shapes, "sentiment": sentiment}


def load(name: str) -> Dataset:
    from interp.errors import UnknownNameError

    if name not in DATASETS:
        raise UnknownNameError("dataset", name, DATASETS)
    return DATASETS[name]()
