"""The activations of a subject's data, and what the dashboard and reports show of them.

Units are what :func:`interp.layer_stats` makes them: channels of feature maps, features
of sequences, and for attention weights the key positions (the attention each position
receives, averaged over heads and queries; per head every row sums to one, so heads as
units would say nothing).

The data is collected once per subject into the on-disk store
(:func:`interp.store.default_root`, or ``$INTERP_CACHE``), every leaf module at full
resolution, so a dashboard restart or a report reads it back instead of recomputing.
Statistics and figures are derived from the stored arrays; both faces call these
functions, so they show the same thing.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from .. import figures
from ..capture import module_names
from ..collect import Collection, collect
from ..errors import InputError, UnknownNameError
from ..stats import LayerStats, layer_stats, unit_values
from ..subject import Subject
from .overview import check_index, class_labels, label_name, memo, model, parts, sample_name

TOP_K = 9


def test_collection(subject: Subject) -> Collection:
    """Every leaf output of the subject's model over its data (stored, or read back)."""
    return memo(subject, "collection", lambda: collect(model(subject), subject.inputs, labels=class_labels(subject),
                                                        name=subject.name, progress=False))


def outputs(subject: Subject) -> list[str]:
    return test_collection(subject).outputs


def _check_output(subject: Subject, output: str) -> str:
    names = outputs(subject)
    if output not in names:
        raise UnknownNameError("output", output, names)
    return output


def _module(subject: Subject, output: str) -> nn.Module:
    return module_names(model(subject))[test_collection(subject).layer_of(output)]


def is_attention(subject: Subject, output: str) -> bool:
    """Attention weights (heads, queries, keys), as capture recorded their layout."""
    return test_collection(subject).layout(output) == "attention"


def encoder_path(subject: Subject) -> str | None:
    """Where the subject's encoder part sits in the model (its module path), or None."""
    encoder = parts(subject).get("encoder")
    if encoder is None:
        return None
    return next((name for name, m in model(subject).named_modules() if m is encoder and name), None)


def code_output(subject: Subject) -> str | None:
    """An autoencoder's code among the recorded outputs of more than one unit: the last
    output of its encoder, for a VAE the one that equals the encoder's mean (found by value
    on the first sample, not by a name such as ``mu``); None without an encoder."""
    encoder = encoder_path(subject)
    if encoder is None:
        return None
    col = test_collection(subject)
    code = [o for o in col.outputs if (o == encoder or o.startswith(encoder + ".")) and units(subject, o) > 1]
    if subject.latent_is_distribution:  # the output that is the mean, not the log-variance
        def first_mean():
            with torch.no_grad():
                out = parts(subject)["encoder"](subject.inputs[:1])
            return (out[0] if isinstance(out, tuple) else out).reshape(-1).double().numpy()

        mu = memo(subject, "code-mean", first_mean)
        means = [o for o in code if col[o][0].size == mu.size
                 and np.allclose(np.asarray(col[o][0], dtype=np.float64).reshape(-1), mu, atol=1e-5)]
        code = means or [o for o in code if not o.endswith("logvar")]
    return code[-1] if code else None


def default_output(subject: Subject) -> str:
    """The output a first look should show: an autoencoder's code (a VAE's mean; the Latent
    space view opens on the same, :func:`code_output`), attention for transformers, the
    hidden states for RNNs, the last unpooled feature map for CNNs, else the last hidden
    layer. Never the model's own output when it is a map: a decoder's image is what the
    model makes, not a hidden layer."""
    code = code_output(subject)
    if code is not None:
        return code
    col = test_collection(subject)
    names = col.outputs
    attention = [o for o in names if is_attention(subject, o)]
    if attention:
        return attention[0]
    sequences = [o for o in names if isinstance(_module(subject, o), nn.RNNBase) and col.layout(o) == "last"]
    if sequences:
        return sequences[-1]
    maps = [o for o in names[:-1] if col.channels_first(o) and len(col.meta["outputs"][o]["shape"]) >= 2
            and not isinstance(_module(subject, o), (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d))]
    if maps:
        return maps[-1]
    vectors = [o for o in names if len(col.meta["outputs"][o]["shape"]) == 1]
    return vectors[-2] if len(vectors) >= 2 else names[-1]


def stats(subject: Subject, output: str) -> LayerStats:
    _check_output(subject, output)
    return memo(subject, f"stats:{output}", lambda: layer_stats(
        test_collection(subject), [output], k=TOP_K,
        n_classes=len(subject.classes) if subject.classes and class_labels(subject) is not None else None)[output])


def all_stats(subject: Subject) -> dict[str, LayerStats]:
    return {o: stats(subject, o) for o in outputs(subject)}


def values(subject: Subject, output: str) -> np.ndarray:
    """(n, units) unit values over the test set."""
    col = test_collection(subject)
    _check_output(subject, output)
    return memo(subject, f"values:{output}", lambda: unit_values(col[output], col.channels_first(output)))


def units(subject: Subject, output: str) -> int:
    return stats(subject, output).units


def _tokens(subject: Subject, index: int) -> list[str] | None:
    if subject.modality != "tokens":
        return None
    return subject.token_texts(subject.inputs[index])


def _check_unit(subject: Subject, output: str, unit: int | None) -> int | None:
    if unit is None:
        return None
    u = units(subject, output)
    if not isinstance(unit, int) or not 0 <= unit < u:
        raise InputError(f"unit must be an integer in [0, {u - 1}] for {output!r}; got {unit!r}")
    return unit


def sample_figure(subject: Subject, output: str, index: int, unit: int | None = None) -> go.Figure:
    """``output`` for sample ``index``, drawn as what it is (maps, hidden states,
    attention, unit activations)."""
    col = test_collection(subject)
    _check_output(subject, output)
    index = check_index(subject, index)
    unit = _check_unit(subject, output, unit)
    a = np.asarray(col[output][index])
    title = f"{output} · {sample_name(subject, index)}"
    tokens = _tokens(subject, index)
    if is_attention(subject, output):
        return figures.attention_maps(a, tokens, title=title)
    if col.channels_first(output) and a.ndim >= 2:
        maps = a[:, None, :] if a.ndim == 2 else a.reshape(a.shape[0], a.shape[1], -1)  # (C, H, W)
        return figures.feature_maps(maps, title, highlight=unit)
    if a.ndim == 2 and tokens is not None and len(a) == len(tokens):
        return figures.sequence_heatmap(a, tokens, title=title)
    return figures.unit_bars(a.reshape(-1) if a.ndim == 2 and len(a) == 1 else unit_values(a[None], False)[0],
                             title, highlight=unit)


def stats_figure(subject: Subject, output: str, unit: int | None = None) -> go.Figure:
    return figures.unit_statistics(stats(subject, output), _check_unit(subject, output, unit))


def histogram_figure(subject: Subject, output: str, unit: int) -> go.Figure:
    unit = _check_unit(subject, output, unit)
    return figures.unit_histogram(values(subject, output)[:, unit], unit,
                                  title=f"{output}, unit {unit}: value over the test set")


def heatmap_figure(subject: Subject, output: str) -> go.Figure:
    col = test_collection(subject)
    grouped = subject.classes is not None and col.labels is not None
    return figures.unit_heatmap(values(subject, output), col.labels if grouped else None,
                                subject.classes if grouped else None,
                                title=f"{output}: unit values" + (", samples grouped by class" if grouped else ""))


def top_samples(subject: Subject, output: str, unit: int) -> tuple[np.ndarray, np.ndarray]:
    s = stats(subject, output)
    unit = _check_unit(subject, output, unit)
    return s.top_indices[unit], s.top_values[unit]


def top_figure(subject: Subject, output: str, unit: int) -> go.Figure:
    """The samples that drive ``unit`` hardest, shown as the samples themselves. The title
    says what they are, nothing about clicking: a report shows the same figure (the
    dashboard's caption says what a click does)."""
    idx, vals = top_samples(subject, output, unit)
    x = subject.inputs
    if subject.modality == "image":
        titles = [f"#{i} · {v:.2f}" for i, v in zip(idx, vals)]
    else:
        titles = [f"#{i}: {v:.2f}" + (f" ({label_name(subject, int(i))})" if subject.labels is not None else "")
                  for i, v in zip(idx, vals)]
    return figures.sample_grid(x[idx], subject.modality, ids=[int(i) for i in idx], titles=titles,
                               title=f"top {len(idx)} samples for {output}, unit {unit}",
                               vocab=subject.vocab, feature_names=subject.features)


def stats_table_figure(subject: Subject) -> go.Figure:
    return figures.layer_stats_table(all_stats(subject), title=f"Layer statistics over {len(subject.inputs)} samples")


def most_active_unit(subject: Subject, output: str) -> int:
    return int(np.argmax(stats(subject, output).mean))
