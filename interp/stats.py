"""Layer statistics over a dataset: per unit mean, std, how often it is zero, its max,
the samples that drive it hardest, and its mean per class.

A *unit* is a channel of a feature map (channels-first outputs) or a feature of a
sequence or vector output (the last axis). Its *value* for a sample is the mean
over the remaining positions (space or time), so a conv channel's value is its
average response. ``frac_zero`` counts samples where the unit is zero at every
position (a dead or sparse unit); ``max`` is the largest activation at any single
position, so it can exceed the top value, which is a mean over positions; ``min`` the
smallest (at least 0 for a unit that never goes negative, as after a ReLU).

Computed in one streaming pass over the stored arrays, chunk by chunk, so memory
stays bounded by the chunk size whatever the number of samples. Means and
variances are merged across chunks in float64 (Chan et al.'s parallel update).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .collect import Collection
from .errors import InputError, UnknownNameError

CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class LayerStats:
    """Per-unit statistics of one output over ``n_samples`` samples."""

    output: str
    n_samples: int
    sample_shape: tuple[int, ...]   # per-sample shape of the stored output
    channels_first: bool            # units on the first per-sample axis (else the last)
    mean: np.ndarray                # (units,) mean over samples of the unit's value
    std: np.ndarray                 # (units,) population std over samples of the unit's value
    frac_zero: np.ndarray           # (units,) share of samples where the unit is zero everywhere
    max: np.ndarray                 # (units,) largest activation at any single position, any sample
                                    # (the other fields use the unit's mean over positions)
    top_indices: np.ndarray         # (units, k) sample indices with the highest values, best first
    top_values: np.ndarray          # (units, k) those values
    class_means: np.ndarray | None  # (classes, units) mean value per class, if labels were given
    class_counts: np.ndarray | None  # (classes,) samples per class
    min: np.ndarray | None = None   # (units,) smallest activation at any single position, any sample
                                    # (None: not known, as in statistics made before it was kept)

    @property
    def units(self) -> int:
        return len(self.mean)

    def dead(self, threshold: float = 0.99) -> np.ndarray:
        """Indices of units that are zero on at least ``threshold`` of the samples."""
        return np.flatnonzero(self.frac_zero >= threshold)


def unit_values(array: np.ndarray, channels_first: bool) -> np.ndarray:
    """(n, units) values: ``array`` (n, *shape) averaged over every axis but the unit axis."""
    return _unit_first(np.asarray(array), channels_first).mean(axis=2, dtype=np.float64)


def _unit_first(a: np.ndarray, channels_first: bool) -> np.ndarray:
    """(n, units, positions) view of a chunk."""
    if a.ndim == 1:
        return a.reshape(len(a), 1, 1)
    if a.ndim == 2:
        return a.reshape(len(a), a.shape[1], 1)
    if channels_first:
        return a.reshape(len(a), a.shape[1], -1)
    return np.moveaxis(a, -1, 1).reshape(len(a), a.shape[-1], -1)


def _merge_top(values: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of (units, m) candidates, the k largest (best first, ties by lower index)."""
    k = min(k, values.shape[1])
    order = np.lexsort((indices, -values), axis=1)[:, :k]
    return np.take_along_axis(values, order, 1), np.take_along_axis(indices, order, 1)


def output_stats(array: np.ndarray, output: str = "", channels_first: bool = True,
                 labels: np.ndarray | None = None, k: int = 9, n_classes: int | None = None) -> LayerStats:
    """Statistics of one ``(n, *shape)`` array (a memmap is read chunk by chunk)."""
    n = len(array)
    if n == 0:
        raise InputError(f"output {output!r} has no samples; expected at least one")
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer; got {k!r}")
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != n:
            raise InputError(f"got {len(labels)} labels for {n} samples of {output!r}")
        if labels.dtype.kind not in "iu" or (labels < 0).any():
            raise InputError("labels must be non-negative integer class indices")
        n_classes = int(n_classes if n_classes is not None else labels.max() + 1)
    row_bytes = max(1, int(np.prod(array.shape[1:])) * array.dtype.itemsize)
    chunk = max(1, CHUNK_BYTES // row_bytes)
    count, mean, m2 = 0, None, None
    zeros = maxima = minima = top_v = top_i = class_sum = None
    for start in range(0, n, chunk):
        a = np.asarray(array[start:start + chunk], dtype=np.float64)
        u = _unit_first(a, channels_first)                 # (m, units, positions)
        v = u.mean(axis=2)                                 # (m, units) unit values
        m = len(v)
        c_mean, c_m2 = v.mean(0), ((v - v.mean(0)) ** 2).sum(0)
        if mean is None:
            units = v.shape[1]
            mean, m2 = c_mean, c_m2
            zeros, maxima, minima = np.zeros(units), np.full(units, -np.inf), np.full(units, np.inf)
            top_v, top_i = np.empty((units, 0)), np.empty((units, 0), dtype=np.int64)
            class_sum = np.zeros((n_classes, units)) if labels is not None else None
        else:
            delta = c_mean - mean
            total = count + m
            mean = mean + delta * m / total
            m2 = m2 + c_m2 + delta ** 2 * count * m / total
        count += m
        zeros += (np.abs(u).max(axis=2) == 0).sum(0)
        maxima = np.maximum(maxima, u.max(axis=(0, 2)))
        minima = np.minimum(minima, u.min(axis=(0, 2)))
        idx = np.arange(start, start + m)
        top_v, top_i = _merge_top(np.concatenate([top_v, v.T], 1),
                                  np.concatenate([top_i, np.broadcast_to(idx, v.T.shape)], 1), k)
        if class_sum is not None:
            np.add.at(class_sum, labels[start:start + m], v)
    class_means = class_counts = None
    if labels is not None:
        class_counts = np.bincount(labels, minlength=n_classes)
        with np.errstate(invalid="ignore", divide="ignore"):
            class_means = class_sum / class_counts[:, None]
    return LayerStats(
        output=output, n_samples=n, sample_shape=tuple(array.shape[1:]), channels_first=channels_first,
        mean=mean, std=np.sqrt(m2 / count), frac_zero=zeros / count, max=maxima, min=minima,
        top_indices=top_i, top_values=top_v, class_means=class_means, class_counts=class_counts,
    )


def layer_stats(source, outputs: list[str] | None = None, labels: np.ndarray | None = None,
                k: int = 9, n_classes: int | None = None,
                channels_first: Mapping[str, bool] | bool | None = None) -> dict[str, LayerStats]:
    """Statistics of every (or each named) output of ``source``.

    ``source``: an :class:`interp.Collection` (labels default to the ones stored with
    it; the unit axis comes from its metadata) or a mapping ``{name: (n, *shape) array}``
    (units on the first per-sample axis unless ``channels_first`` says otherwise).
    """
    if isinstance(source, Collection):
        names = source.outputs
        get = source.__getitem__
        first = {o: source.channels_first(o) for o in names}
        if labels is None:
            labels = source.labels
    elif isinstance(source, Mapping):
        names = list(source)
        get = source.__getitem__
        first = {o: True for o in names}
    else:
        raise InputError(f"source must be a Collection or a mapping of arrays; got {type(source).__name__}")
    if isinstance(channels_first, bool):
        first = {o: channels_first for o in names}
    elif channels_first is not None:
        first.update(channels_first)
    chosen = names if outputs is None else list(outputs)
    for o in chosen:
        if o not in names:
            raise UnknownNameError("output", o, names)
    return {o: output_stats(get(o), o, first[o], labels, k, n_classes) for o in chosen}


__all__ = ["LayerStats", "layer_stats", "output_stats", "unit_values"]
