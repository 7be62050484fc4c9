"""The activations of a zoo entry's test set, and what the dashboard and reports show of them.

Units are what :func:`interp.layer_stats` makes them: channels of feature maps, features
of sequences, and for attention weights the key positions (the attention each position
receives, averaged over heads and queries; per head every row sums to one, so heads as
units would say nothing).

The test set is collected once per entry into the on-disk store
(:func:`interp.store.default_root`, or ``$INTERP_CACHE``), every leaf module at full
resolution, so a dashboard restart or a report reads it back instead of recomputing.
Statistics and figures are derived from the stored arrays; both faces call these
functions, so they show the same thing.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from torch import nn

from interp import collect, figures, layer_stats
from interp.capture import module_names
from interp.collect import Collection
from interp.errors import InputError, UnknownNameError
from interp.stats import LayerStats, unit_values

from . import Entry
from .overview import _memo, check_index

TOP_K = 9


def test_collection(entry: Entry) -> Collection:
    """Every leaf output of the entry's model over its test set (stored, or read back)."""
    x, y = entry.test
    return _memo(entry, "collection", lambda: collect(entry.model, x, labels=y, name=entry.name,
                                                      progress=False))


def outputs(entry: Entry) -> list[str]:
    return test_collection(entry).outputs


def _check_output(entry: Entry, output: str) -> str:
    names = outputs(entry)
    if output not in names:
        raise UnknownNameError("output", output, names)
    return output


def _module(entry: Entry, output: str) -> nn.Module:
    return module_names(entry.model)[test_collection(entry).layer_of(output)]


def is_attention(entry: Entry, output: str) -> bool:
    """Attention weights (heads, queries, keys), as capture recorded their layout."""
    return test_collection(entry).layout(output) == "attention"


def default_output(entry: Entry) -> str:
    """The output a first look should show: attention for transformers, the hidden
    states for RNNs, the last unpooled feature map for CNNs, else the last hidden layer."""
    col = test_collection(entry)
    names = col.outputs
    attention = [o for o in names if is_attention(entry, o)]
    if attention:
        return attention[0]
    sequences = [o for o in names if isinstance(_module(entry, o), nn.RNNBase) and col.layout(o) == "last"]
    if sequences:
        return sequences[-1]
    maps = [o for o in names if col.channels_first(o) and len(col.meta["outputs"][o]["shape"]) >= 2
            and not isinstance(_module(entry, o), (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d))]
    if maps:
        return maps[-1]
    vectors = [o for o in names if len(col.meta["outputs"][o]["shape"]) == 1]
    return vectors[-2] if len(vectors) >= 2 else names[-1]


def stats(entry: Entry, output: str) -> LayerStats:
    _check_output(entry, output)
    return _memo(entry, f"stats:{output}", lambda: layer_stats(
        test_collection(entry), [output], k=TOP_K,
        n_classes=len(entry.card["classes"]) if entry.card.get("classes") else None)[output])


def all_stats(entry: Entry) -> dict[str, LayerStats]:
    return {o: stats(entry, o) for o in outputs(entry)}


def values(entry: Entry, output: str) -> np.ndarray:
    """(n, units) unit values over the test set."""
    col = test_collection(entry)
    _check_output(entry, output)
    return _memo(entry, f"values:{output}", lambda: unit_values(col[output], col.channels_first(output)))


def units(entry: Entry, output: str) -> int:
    return stats(entry, output).units


def _tokens(entry: Entry, index: int) -> list[str] | None:
    if entry.dataset.modality != "tokens":
        return None
    return [entry.dataset.vocab[int(i)] for i in entry.test[0][index]]


def _check_unit(entry: Entry, output: str, unit: int | None) -> int | None:
    if unit is None:
        return None
    u = units(entry, output)
    if not isinstance(unit, int) or not 0 <= unit < u:
        raise InputError(f"unit must be an integer in [0, {u - 1}] for {output!r}; got {unit!r}")
    return unit


def sample_figure(entry: Entry, output: str, index: int, unit: int | None = None) -> go.Figure:
    """``output`` for test sample ``index``, drawn as what it is (maps, hidden states,
    attention, unit activations)."""
    col = test_collection(entry)
    _check_output(entry, output)
    index = check_index(entry, index)
    unit = _check_unit(entry, output, unit)
    a = np.asarray(col[output][index])
    title = f"{output} · test sample {index}"
    tokens = _tokens(entry, index)
    if is_attention(entry, output):
        return figures.attention_maps(a, tokens, title=title)
    if col.channels_first(output) and a.ndim >= 2:
        maps = a[:, None, :] if a.ndim == 2 else a.reshape(a.shape[0], a.shape[1], -1)  # (C, H, W)
        return figures.feature_maps(maps, title, highlight=unit)
    if a.ndim == 2 and tokens is not None and len(a) == len(tokens):
        return figures.sequence_heatmap(a, tokens, title=title)
    return figures.unit_bars(a.reshape(-1) if a.ndim == 2 and len(a) == 1 else unit_values(a[None], False)[0],
                             title, highlight=unit)


def stats_figure(entry: Entry, output: str, unit: int | None = None) -> go.Figure:
    return figures.unit_statistics(stats(entry, output), _check_unit(entry, output, unit))


def histogram_figure(entry: Entry, output: str, unit: int) -> go.Figure:
    unit = _check_unit(entry, output, unit)
    return figures.unit_histogram(values(entry, output)[:, unit], unit,
                                  title=f"{output}, unit {unit}: value over the test set")


def heatmap_figure(entry: Entry, output: str) -> go.Figure:
    col = test_collection(entry)
    return figures.unit_heatmap(values(entry, output), col.labels, entry.card.get("classes"),
                                title=f"{output}: unit values, test samples grouped by class")


def top_samples(entry: Entry, output: str, unit: int) -> tuple[np.ndarray, np.ndarray]:
    s = stats(entry, output)
    unit = _check_unit(entry, output, unit)
    return s.top_indices[unit], s.top_values[unit]


def top_figure(entry: Entry, output: str, unit: int) -> go.Figure:
    """The test samples that drive ``unit`` hardest, shown as the samples themselves."""
    idx, vals = top_samples(entry, output, unit)
    x, y = entry.test
    classes = entry.card.get("classes")
    if entry.dataset.modality == "image":
        titles = [f"#{i} · {v:.2f}" for i, v in zip(idx, vals)]
    else:
        titles = [f"#{i}: {v:.2f}" + (f" ({classes[int(y[i])]})" if classes else "") for i, v in zip(idx, vals)]
    return figures.sample_grid(x[idx], entry.dataset.modality, ids=[int(i) for i in idx], titles=titles,
                               title=f"top {len(idx)} test samples for {output}, unit {unit} (click one)",
                               vocab=entry.dataset.vocab, feature_names=entry.dataset.feature_names)


def stats_table_figure(entry: Entry) -> go.Figure:
    return figures.layer_stats_table(all_stats(entry), title=f"Layer statistics over {len(entry.test[0])} test samples")


def most_active_unit(entry: Entry, output: str) -> int:
    return int(np.argmax(stats(entry, output).mean))
