"""Latent maps of zoo entries: which layers to project, how to colour them, the figures.

A layer's outputs over the test set are projected with
:func:`interp.projection.project_layer` (collected into the store, flattened when a
sample's output is a vector, pooled over positions (mean) when it is a map or a
sequence) and kept in the store, so a second look is read back. The default layer is
the deepest hidden one: the input of the classifier's last layer, an autoencoder's
code (the VAE's mean), the discriminator's last hidden layer. Points are coloured by
the true label, the prediction or whether it is right, and their hover names the
sample. Both faces (dashboard and reports) call these functions.
"""

from __future__ import annotations

import plotly.graph_objects as go
import torch

from interp import figures, generative
from interp.errors import InputError, UnknownNameError
from interp.projection import METHODS, LayerProjection, project_layer

from . import Entry, overview
from .activations import outputs
from .overview import _memo

COLOURS = {"label": "true label", "prediction": "prediction", "correct": "right or wrong"}
UNIT = "unit"  # colour by one unit's activation at the mapped layer
ATTRIBUTION = "attribution"  # colour by a per-sample score of the predicted class's integrated gradients
IG_STEPS = 16
TOP_SHARE = 0.1  # without ground truth: the share of |attribution| on the top 10% of positions
SMALL_MULTIPLES = 6   # layers in the report's layer-by-layer maps


def layers(entry: Entry) -> list[str]:
    """Outputs that can be projected: every recorded output of more than one unit, in
    model order (the final output too: a map of the logits)."""
    def compute():
        from .activations import units as count

        return tuple(o for o in outputs(entry) if count(entry, o) > 1)

    return list(_memo(entry, "latent-layers", compute))


def default_layer(entry: Entry) -> str:
    """The deepest hidden layer: an autoencoder's code (the VAE's mean), else the last
    output before the model's final one (an LSTM's final hidden state ``h``, not its cell)."""
    names = layers(entry)
    if entry.kind in ("autoencoder", "vae"):
        code = [o for o in names if o.startswith("encoder.") and not o.endswith("logvar")]
        return code[-1]
    hidden = [o for o in names[:-1] if not o.endswith(".c")]
    return hidden[-1] if hidden else names[-1]


def colourings(entry: Entry) -> dict[str, str]:
    """What points can be coloured by: labels for every entry with classes, the
    prediction and right/wrong for classifiers."""
    if entry.is_classifier:
        return {**COLOURS, UNIT: "a unit's activation", ATTRIBUTION: attribution_name(entry)}
    return {"label": "true label (digit)", UNIT: "a unit's activation"}


def _check(entry: Entry, layer: str, method: str, colour: str) -> None:
    if layer not in layers(entry):
        raise UnknownNameError(f"layer output of {entry.name}", layer, layers(entry))
    if method not in METHODS:
        raise UnknownNameError("projection method", method, METHODS)
    if colour not in colourings(entry):
        raise UnknownNameError(f"colouring of {entry.name}", colour, colourings(entry))


def _reduce(entry: Entry, layer: str) -> str | None:
    from .activations import test_collection

    shape = test_collection(entry)[layer].shape[1:]
    return None if len(shape) <= 1 else "mean"


def projection(entry: Entry, layer: str | None = None, method: str = "pca", n_components: int = 2,
               progress: bool = False) -> LayerProjection:
    """The map of ``layer`` (default: the deepest hidden one) over the test set."""
    layer = layer or default_layer(entry)
    _check(entry, layer, method, "label")
    if n_components not in (2, 3):
        raise InputError(f"n_components must be 2 or 3 for a map; got {n_components!r}")
    key = f"latent-{layer}-{method}-{n_components}"
    if key not in entry.memo:  # not under overview's memo lock: a UMAP fit takes seconds, other views go on
        x, y = entry.test
        entry.memo[key] = project_layer(entry.model, x, layer, method, n_components, labels=y,
                                        reduce=_reduce(entry, layer), name=entry.name, progress=progress)
    return entry.memo[key]


def cached_projection(entry: Entry, layer: str, method: str, n_components: int = 2) -> LayerProjection | None:
    """The map if it is already in memory, else None (for views that must not wait)."""
    return entry.memo.get(f"latent-{layer}-{method}-{n_components}")


def _predictions(entry: Entry) -> torch.Tensor:
    return _memo(entry, "latent-predictions", lambda: entry.predict(entry.test[0]).argmax(-1))


def attribution_name(entry: Entry) -> str:
    return ("attribution on the ground truth" if entry.truth is not None
            else f"attribution on the top {TOP_SHARE:.0%} of inputs")


def attribution_scores(entry: Entry) -> torch.Tensor:
    """One number per test sample from the integrated gradients of its predicted class:
    the share of |attribution| on the ground-truth positions where the data has them
    (the explanation finds what decides), else the share on the top 10% of positions
    (how concentrated it is)."""
    from interp import attribute

    from .saliency import explained_model

    def compute():
        a = attribute(explained_model(entry, "class"), entry.test[0], "predicted", "integrated_gradients",
                      steps=IG_STEPS).abs().flatten(1)
        total = a.sum(1).clamp(min=1e-12)
        if entry.truth is not None:
            return (a * entry.truth.flatten(1).to(a.dtype)).sum(1) / total
        k = max(1, round(TOP_SHARE * a.shape[1]))
        return a.topk(k, dim=1).values.sum(1) / total

    return _memo(entry, "latent-attribution", compute)


def has_attribution_scores(entry: Entry) -> bool:
    return "latent-attribution" in entry.memo


def units(entry: Entry, layer: str) -> int:
    """How many units ``layer`` has (as the Activations view counts them)."""
    from .activations import units as count

    return count(entry, layer)


def colour_values(entry: Entry, colour: str, layer: str | None = None, unit: int = 0):
    """One value per test sample for ``colour``, and the class names (None for values);
    ``UNIT``: the activation of ``unit`` of ``layer`` (as the Activations view measures it)."""
    y = entry.test[1]
    if colour == ATTRIBUTION:
        return attribution_scores(entry), None
    if colour == UNIT:
        from .activations import values

        v = values(entry, layer or default_layer(entry))
        if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < v.shape[1]:
            raise InputError(f"unit must be an index in [0, {v.shape[1] - 1}] for {layer}; got {unit!r}")
        return v[:, unit], None
    if colour == "label":
        return y, entry.card.get("classes")
    if colour == "prediction":
        return _predictions(entry), entry.card.get("classes")
    return (_predictions(entry) == y), None


def hover_texts(entry: Entry) -> list[str]:
    """One line per test sample: its index, true label and (classifiers) prediction, and
    for token models the sentence."""
    def compute():
        x, y = entry.test
        classes = entry.card.get("classes")
        predicted = _predictions(entry) if entry.is_classifier else None
        vocab = entry.dataset.vocab
        out = []
        for i in range(len(y)):
            text = f"sample {i} · {classes[int(y[i])] if classes else int(y[i])}"
            if predicted is not None:
                p = int(predicted[i])
                text += f" → {classes[p]}" + ("" if p == int(y[i]) else " ✗")
            if vocab is not None:
                words = " ".join(vocab[int(t)] for t in x[i] if int(t) != 0)
                text += f"<br>{words}"
            out.append(text)
        return tuple(out)

    return list(_memo(entry, "latent-hover", compute))


def map_figure(entry: Entry, result: LayerProjection, colour: str = "label", selected=None,
               unit: int = 0) -> go.Figure:
    """The map of ``result`` coloured by ``colour`` (``unit``: which unit, for UNIT), the
    ``selected`` samples ringed."""
    values, names = colour_values(entry, colour, result.layer, unit)
    method = figures.projection.METHOD_NAMES.get(result.method, result.method)
    how = "flattened" if result.reduce is None else f"{result.reduce} over positions"
    return figures.projection_map(
        result.coordinates, values, class_names=names, categorical=names is not None or colour == "correct",
        color_name=f"unit {unit}" if colour == UNIT else colourings(entry)[colour],
        hover=hover_texts(entry), quality=result.quality, selected=selected,
        title=f"{method} of {result.layer} ({result.features} features, {how}), {len(result.coordinates)} test samples")


def layer_by_layer(entry: Entry, method: str = "pca") -> go.Figure:
    """Small multiples: up to SMALL_MULTIPLES layers from the first to the deepest hidden
    one, evenly spaced, each mapped by ``method``."""
    names = layers(entry)
    last = names.index(default_layer(entry))
    picks = sorted({round(i * last / max(1, SMALL_MULTIPLES - 1)) for i in range(SMALL_MULTIPLES)})
    maps = [projection(entry, names[i], method) for i in picks]
    return figures.layer_maps(maps, labels=entry.test[1], class_names=entry.card.get("classes"))


def selection_figure(entry: Entry, indices, limit: int = 20) -> go.Figure:
    """The selected test samples as what they are (the first ``limit``), each clickable."""
    indices = [int(i) for i in indices][:limit]
    x = entry.test[0][indices]
    texts = hover_texts(entry)
    titles = [texts[i].split("<br>")[0].replace("sample ", "#") for i in indices]
    return figures.sample_grid(x, entry.dataset.modality, indices, titles,
                               title=f"{len(indices)} selected sample{'s' if len(indices) != 1 else ''}",
                               vocab=entry.dataset.vocab, feature_names=entry.dataset.feature_names)


# ---------------------------------------------------------------------------- generative latents

TRAVERSAL_STEPS = 7
TRAVERSAL_SPAN = 2.5      # in units of each code unit's std over the test set
INTERPOLATION_STEPS = 9


def _codes(entry: Entry) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The test set's codes (the VAE's means) and, for the VAE, their log-variances."""
    def compute():
        with torch.no_grad():
            out = entry.parts["encoder"](entry.test[0])
        return (out[0], out[1]) if isinstance(out, tuple) else (out, None)

    return _memo(entry, "latent-codes", compute)


def kl(entry: Entry) -> torch.Tensor:
    """The VAE's mean KL divergence to the prior per latent unit over the test set."""
    mu, logvar = _codes(entry)
    return generative.kl_per_unit(mu, logvar)


def walked_units(entry: Entry) -> tuple[int, int]:
    """The two latent units a traversal walks: the VAE's two most informative (highest
    KL), the autoencoder's two of widest spread."""
    mu, logvar = _codes(entry)
    weight = generative.kl_per_unit(mu, logvar) if logvar is not None else mu.std(0)
    first, second = torch.topk(weight, 2).indices.tolist()
    return int(first), int(second)


def traversal(entry: Entry, index: int, units=None) -> generative.Traversal:
    """Decode a grid around test sample ``index``'s code along two latent ``units``
    (default: :func:`walked_units`), steps scaled by each unit's std over the test set."""
    mu, _ = _codes(entry)
    index = overview.check_index(entry, index)
    return generative.traverse(entry.parts["decoder"], mu[index], units=units or walked_units(entry),
                               span=TRAVERSAL_SPAN, steps=TRAVERSAL_STEPS, scale=mu.std(0).clamp(min=1e-6))


def partner(entry: Entry, index: int) -> int:
    """The first test sample after ``index`` (wrapping) with another label."""
    y = entry.test[1]
    n = len(y)
    return next((j % n for j in range(index + 1, index + n) if int(y[j % n]) != int(y[index])), index)


def between(entry: Entry, index: int, other: int) -> generative.Interpolation:
    """Decode the straight path between test samples ``index``'s and ``other``'s codes."""
    mu, _ = _codes(entry)
    return generative.interpolate(entry.parts["decoder"], mu[overview.check_index(entry, index)],
                                  mu[overview.check_index(entry, other)], INTERPOLATION_STEPS)


def interpolation(entry: Entry, index: int) -> generative.Interpolation:
    """The GAN's generator along the straight path between two latent vectors drawn with
    seeds ``2 * index`` and ``2 * index + 1``, scored by the discriminator (real logit)."""
    gen = entry.parts["generator"]
    z = [torch.randn(gen.latent, generator=torch.Generator().manual_seed(2 * index + k)) for k in (0, 1)]
    return generative.interpolate(gen, z[0], z[1], INTERPOLATION_STEPS, critic=entry.parts["discriminator"])


def generative_figures(entry: Entry, index: int) -> dict[str, go.Figure]:
    """The generative views of ``entry`` for test sample ``index``: a traversal around its
    code and the path from it to a sample of another label (autoencoder, VAE), the KL per
    unit (VAE), an interpolation scored by the discriminator (GAN); empty for other models."""
    out: dict[str, go.Figure] = {}
    if entry.kind in ("autoencoder", "vae"):
        t = traversal(entry, index)
        out["traversal"] = figures.traversal_grid(
            t, title=f"Decoding around sample {index}'s code along units {t.units[0]} and {t.units[1]}")
        other = partner(entry, index)
        classes = entry.card.get("classes")
        y = entry.test[1]
        out["between"] = figures.interpolation_path(
            between(entry, index, other),
            title=f"Decoding the path from sample {index}'s code ({classes[int(y[index])]}) to sample {other}'s "
                  f"({classes[int(y[other])]})")
        if entry.kind == "vae":
            out["kl"] = figures.kl_bars(kl(entry), title="KL divergence per latent unit, test set")
    elif entry.kind == "gan":
        out["interpolation"] = figures.interpolation_path(
            interpolation(entry, index), score_name="discriminator: real logit",
            title=f"Generator between two latent vectors (seeds {2 * index}, {2 * index + 1})")
    return out


__all__ = ["has_attribution_scores", "units", "traversal", "interpolation", "between", "partner", "kl", "walked_units", "generative_figures", "layers", "default_layer", "colourings", "projection", "cached_projection", "colour_values",
           "hover_texts", "map_figure", "layer_by_layer", "selection_figure", "COLOURS"]
