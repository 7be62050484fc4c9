"""Latent maps of subjects: which layers to project, how to colour them, the figures.

A layer's outputs over the test set are projected with
:func:`interp.layer_projection.project_layer` (collected into the store, flattened when a
sample's output is a vector, pooled over positions (mean) when it is a map or a
sequence) and kept in the store, so a second look is read back. The default layer is
the deepest hidden one: the input of the classifier's last layer, an autoencoder's
code (a VAE's mean), the discriminator's last hidden layer. Points are coloured by
the true label, the prediction or whether it is right, and their hover names the
sample. Both faces (dashboard and reports) call these functions.
"""

from __future__ import annotations

import plotly.graph_objects as go
import torch

from .. import figures, generative
from ..errors import InputError, UnknownNameError
from ..layer_projection import project_layer
from ..projection import METHODS, LayerProjection
from ..store import Store
from ..subject import Subject
from . import overview
from .activations import code_output, outputs
from .overview import memo, model, parts

COLOURS = {"label": "true label", "prediction": "prediction", "correct": "right or wrong"}
UNIT = "unit"  # colour by one unit's activation at the mapped layer
ATTRIBUTION = "attribution"  # colour by a per-sample score of the predicted class's integrated gradients
IG_STEPS = 16
TOP_SHARE = 0.1  # without ground truth: the share of |attribution| on the top 10% of positions
SMALL_MULTIPLES = 6   # layers in the report's layer-by-layer maps


def layers(subject: Subject) -> list[str]:
    """Outputs that can be projected: every recorded output of more than one unit, in
    model order (the final output too: a map of the logits)."""
    def compute():
        from .activations import units as count

        return tuple(o for o in outputs(subject) if count(subject, o) > 1)

    return list(memo(subject, "latent-layers", compute))


def default_layer(subject: Subject) -> str:
    """The deepest hidden layer: an autoencoder's code (the VAE's mean), else the last
    output before the model's final one (an LSTM's final hidden state ``h``, not its cell)."""
    names = layers(subject)
    code = code_output(subject)  # the Activations view opens on the same
    if code is not None and code in names:
        return code
    final = outputs(subject)[-1]  # the model's own output, which layers() leaves out when it is one unit
    hidden = [o for o in names if o != final and not o.endswith(".c")]
    return hidden[-1] if hidden else names[-1]


def colourings(subject: Subject) -> dict[str, str]:
    """What points can be coloured by: labels where the subject has them, the
    prediction and right/wrong for classifiers."""
    if subject.is_classifier and subject.labels is not None:
        return {**COLOURS, UNIT: "a unit's activation", ATTRIBUTION: attribution_name(subject)}
    if subject.is_classifier:
        return {"prediction": COLOURS["prediction"], UNIT: "a unit's activation",
                ATTRIBUTION: attribution_name(subject)}
    if subject.labels is not None and subject.labels.ndim == 1:
        return {"label": "label" + (" (value)" if subject.labels.is_floating_point() else ""),
                UNIT: "a unit's activation"}
    return {UNIT: "a unit's activation"}


def _check(subject: Subject, layer: str, method: str, colour: str) -> None:
    if layer not in layers(subject):
        raise UnknownNameError(f"layer output of {subject.name}", layer, layers(subject))
    if method not in METHODS:
        raise UnknownNameError("projection method", method, METHODS)
    if colour not in colourings(subject):
        raise UnknownNameError(f"colouring of {subject.name}", colour, colourings(subject))


def _reduce(subject: Subject, layer: str) -> str | None:
    from .activations import test_collection

    shape = test_collection(subject)[layer].shape[1:]
    return None if len(shape) <= 1 else "mean"


def projection(subject: Subject, layer: str | None = None, method: str = "pca", n_components: int = 2,
               progress: bool = False) -> LayerProjection:
    """The map of ``layer`` (default: the deepest hidden one) over the test set."""
    layer = layer or default_layer(subject)
    _check(subject, layer, method, next(iter(colourings(subject))))
    if n_components not in (2, 3):
        raise InputError(f"n_components must be 2 or 3 for a map; got {n_components!r}")
    key = _key(layer, method, n_components)
    if key not in subject.memo:  # not under overview's memo lock: a UMAP fit takes seconds, other views go on
        n = len(subject.inputs)
        small = ({"n_neighbors": max(2, min(15, n - 1))} if method == "umap" else
                 {"perplexity": max(1.0, min(30.0, (n - 1) / 3))} if method == "tsne" else {})
        store = _Watched()
        result = project_layer(model(subject), subject.inputs, layer, method, n_components,
                               labels=overview.class_labels(subject), reduce=_reduce(subject, layer),
                               name=subject.name, progress=progress, store=store, **small)
        subject.memo[key + "-read"] = store.read_back
        subject.memo[key] = result
    return subject.memo[key]


def _key(layer: str, method: str, n_components: int) -> str:
    return f"latent-{layer}-{method}-{n_components}"


class _Watched(Store):
    """The default store, noting whether the last result was read back or computed: a map
    read from disk was not fitted now, and its fit time is the original run's."""

    read_back = False

    def result(self, identity, request, compute):
        computed = []

        def noted():
            computed.append(True)
            return compute()

        found = super().result(identity, request, noted)
        self.read_back = not computed
        return found


def read_back(subject: Subject, result: LayerProjection) -> bool:
    """Whether ``result`` (from :func:`projection`) was read from the store, not fitted in this process."""
    return bool(subject.memo.get(_key(result.layer, result.method, result.coordinates.shape[1]) + "-read"))


def fit_text(result: LayerProjection, read: bool) -> str:
    """How the map came to be, in words: "fitted in X s", or for a map ``read`` from the store
    "read from the store (fitted in X s)" with the original fit time it keeps (so a second
    look does not claim a fit of a few milliseconds, nor hide that none ran)."""
    seconds = "under 0.01 s" if result.seconds < 0.005 else f"{result.seconds:.2f} s"
    return f"read from the store (fitted in {seconds})" if read else f"fitted in {seconds}"


def cached_projection(subject: Subject, layer: str, method: str, n_components: int = 2) -> LayerProjection | None:
    """The map if it is already in memory, else None (for views that must not wait)."""
    return subject.memo.get(_key(layer, method, n_components))


def _predictions(subject: Subject) -> torch.Tensor:
    return overview.predicted_classes(subject)


def attribution_name(subject: Subject) -> str:
    return ("attribution on the ground truth" if subject.truth is not None
            else f"attribution on the top {TOP_SHARE:.0%} of inputs")


def attribution_scores(subject: Subject) -> torch.Tensor:
    """One number per sample from the integrated gradients of its predicted class:
    the share of |attribution| on the ground-truth positions where the data has them
    (the explanation finds what decides), else the share on the top 10% of positions
    (how concentrated it is)."""
    from ..attribution import attribute
    from .saliency import explained_model

    def compute():
        a = attribute(explained_model(subject, "class"), subject.inputs, "predicted", "integrated_gradients",
                      steps=IG_STEPS).abs().flatten(1)
        total = a.sum(1).clamp(min=1e-12)
        if subject.truth is not None:
            truth = subject.truth.expand_as(subject.inputs)  # (n, 1, H, W) masks of (n, C, H, W) images
            return (a * truth.flatten(1).to(a.dtype)).sum(1) / total
        k = max(1, round(TOP_SHARE * a.shape[1]))
        return a.topk(k, dim=1).values.sum(1) / total

    return memo(subject, "latent-attribution", compute)


def has_attribution_scores(subject: Subject) -> bool:
    return "latent-attribution" in subject.memo


def units(subject: Subject, layer: str) -> int:
    """How many units ``layer`` has (as the Activations view counts them)."""
    from .activations import units as count

    return count(subject, layer)


def colour_values(subject: Subject, colour: str, layer: str | None = None, unit: int = 0):
    """One value per sample for ``colour``, and the class names (None for values);
    ``UNIT``: the activation of ``unit`` of ``layer`` (as the Activations view measures it)."""
    y = subject.labels
    if colour == ATTRIBUTION:
        return attribution_scores(subject), None
    if colour == UNIT:
        from .activations import values

        v = values(subject, layer or default_layer(subject))
        if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < v.shape[1]:
            raise InputError(f"unit must be an index in [0, {v.shape[1] - 1}] for {layer}; got {unit!r}")
        return v[:, unit], None
    if colour == "label":
        return y, subject.classes if not y.is_floating_point() else None
    if colour == "prediction":
        return _predictions(subject), subject.classes
    return (_predictions(subject) == y), None


def hover_texts(subject: Subject) -> list[str]:
    """One line per sample: its index, true label and (classifiers) prediction, and
    for token models the sentence."""
    def compute():
        x, y = subject.inputs, subject.labels
        classes = subject.classes
        predicted = _predictions(subject) if subject.is_classifier else None
        out = []
        for i in range(len(x)):
            label = overview.label_name(subject, i)
            text = f"sample {i}" + (f" · {label}" if label is not None else "")
            if predicted is not None:
                p = int(predicted[i])
                text += f" → {classes[p]}" + ("" if y is None or p == int(y[i]) else " ✗")
            if subject.vocab is not None:
                words = " ".join(subject.vocab[int(t)] for t in x[i] if int(t) != subject.pad_id)
                text += f"<br>{words}"
            out.append(text)
        return tuple(out)

    return list(memo(subject, "latent-hover", compute))


def map_figure(subject: Subject, result: LayerProjection, colour: str | None = None, selected=None,
               unit: int = 0) -> go.Figure:
    """The map of ``result`` coloured by ``colour`` (default: the first of :func:`colourings`;
    ``unit``: which unit, for UNIT), the ``selected`` samples ringed."""
    colour = colour or next(iter(colourings(subject)))
    values, names = colour_values(subject, colour, result.layer, unit)
    method = figures.projection.METHOD_NAMES.get(result.method, result.method)
    how = "flattened" if result.reduce is None else f"{result.reduce} over positions"
    return figures.projection_map(
        result.coordinates, values, class_names=names, categorical=names is not None or colour == "correct",
        color_name=f"unit {unit}" if colour == UNIT else colourings(subject)[colour],
        hover=hover_texts(subject), quality=result.quality, selected=selected,
        title=f"{method} of {result.layer} ({result.features} features, {how}), {len(result.coordinates)} samples")


def layer_by_layer(subject: Subject, method: str = "pca") -> go.Figure:
    """Small multiples: up to SMALL_MULTIPLES layers from the first to the deepest hidden
    one, evenly spaced, each mapped by ``method``."""
    names = layers(subject)
    last = names.index(default_layer(subject))
    picks = sorted({round(i * last / max(1, SMALL_MULTIPLES - 1)) for i in range(SMALL_MULTIPLES)})
    maps = [projection(subject, names[i], method) for i in picks]
    y = subject.labels
    categorical = y is not None and y.ndim == 1 and not y.is_floating_point()
    return figures.layer_maps(maps, labels=y if categorical else None,
                              class_names=subject.classes if categorical else None)


def selection_figure(subject: Subject, indices, limit: int = 20) -> go.Figure:
    """The selected samples as what they are (the first ``limit``), each clickable."""
    indices = [int(i) for i in indices][:limit]
    x = subject.inputs[indices]
    texts = hover_texts(subject)
    titles = [texts[i].split("<br>")[0].replace("sample ", "#") for i in indices]
    return figures.sample_grid(x, subject.modality, indices, titles,
                               title=f"{len(indices)} selected sample{'s' if len(indices) != 1 else ''}",
                               vocab=subject.vocab, feature_names=subject.features)


# ---------------------------------------------------------------------------- generative latents

TRAVERSAL_STEPS = 7
TRAVERSAL_SPAN = 2.5      # in units of each code unit's std over the test set
INTERPOLATION_STEPS = 9


def _codes(subject: Subject) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The codes of the test set (a VAE's means) and, for a VAE, their log-variances (for
    an edited sample, of the test set it came from)."""
    if _test_set(subject) is not subject:
        return _codes(_test_set(subject))

    def compute():
        with torch.no_grad():
            out = parts(subject)["encoder"](subject.inputs)
        return (out[0], out[1]) if isinstance(out, tuple) else (out, None)

    return memo(subject, "latent-codes", compute)


def _test_set(subject: Subject) -> Subject:
    """The subject whose test set the codes' statistics come from: ``subject``, or for an
    edited sample (:func:`interp.study.whatif.edited`) the subject it was edited from."""
    original = getattr(subject, "original", None)
    return subject if original is None else original


def _code(subject: Subject, index: int) -> torch.Tensor:
    """Sample ``index``'s code (a VAE's mean), the sample as it is (edited or not)."""
    index = overview.check_index(subject, index)
    with torch.no_grad():
        out = parts(subject)["encoder"](subject.inputs[index:index + 1])
    return (out[0] if isinstance(out, tuple) else out)[0]


class _AsInputs(torch.nn.Module):
    """A decoder whose outputs are reshaped to the inputs' shape (a dense decoder whose model
    reshapes in its own forward)."""

    def __init__(self, decoder: torch.nn.Module, shape: tuple):
        super().__init__()
        self.decoder, self.shape = decoder, tuple(shape)

    def forward(self, z):
        return self.decoder(z).reshape(len(z), *self.shape)


def _decoder(subject: Subject) -> torch.nn.Module:
    """The decoder part, its outputs shaped as the inputs are."""
    def compute():
        decoder = parts(subject)["decoder"]
        mu, _ = _codes(subject)
        with torch.no_grad():
            out = decoder(mu[:1])
        shape = tuple(subject.inputs.shape[1:])
        if tuple(out.shape[1:]) != shape and out[0].numel() == subject.inputs[0].numel():
            return _AsInputs(decoder, shape)
        return decoder

    return memo(subject, "latent-decoder", compute)


def kl(subject: Subject) -> torch.Tensor:
    """The VAE's mean KL divergence to the prior per latent unit over the test set."""
    mu, logvar = _codes(subject)
    return generative.kl_per_unit(mu, logvar)


def walkable(subject: Subject) -> bool:
    """Whether the codes can be walked: vectors (not maps) of two units or more."""
    mu, _ = _codes(subject)
    return mu.ndim == 2 and mu.shape[1] >= 2


def walked_units(subject: Subject) -> tuple[int, int]:
    """The two latent units a traversal walks: the VAE's two most informative (highest
    KL), the autoencoder's two of widest spread."""
    mu, logvar = _codes(subject)
    weight = generative.kl_per_unit(mu, logvar) if logvar is not None else mu.std(0)
    first, second = torch.topk(weight, 2).indices.tolist()
    return int(first), int(second)


def traversal(subject: Subject, index: int, units=None) -> generative.Traversal:
    """Decode a grid around sample ``index``'s code along two latent ``units``
    (default: :func:`walked_units`), steps scaled by each unit's std over the test set."""
    mu, _ = _codes(subject)
    return generative.traverse(_decoder(subject), _code(subject, index), units=units or walked_units(subject),
                               span=TRAVERSAL_SPAN, steps=TRAVERSAL_STEPS, scale=mu.std(0).clamp(min=1e-6))


def partner(subject: Subject, index: int) -> int:
    """The first test sample after ``index`` (wrapping) with another label (for an edited
    sample, after the test sample it came from)."""
    if _test_set(subject) is not subject:
        return partner(_test_set(subject), subject.edited_from)
    y = subject.labels
    n = len(subject.inputs)
    if y is None or y.ndim != 1:
        return (index + 1) % n
    return next((j % n for j in range(index + 1, index + n) if int(y[j % n]) != int(y[index])), index)


def between(subject: Subject, index: int, other: int) -> generative.Interpolation:
    """Decode the straight path from sample ``index``'s code (as it is, edited or not) to test
    sample ``other``'s."""
    mu, _ = _codes(subject)
    return generative.interpolate(_decoder(subject), _code(subject, index),
                                  mu[overview.check_index(_test_set(subject), other)], INTERPOLATION_STEPS)


def interpolation(subject: Subject, index: int) -> generative.Interpolation:
    """The GAN's generator along the straight path from the latent vector of the generated
    sample shown beside real sample ``index`` (:func:`interp.study.overview.generated_partner`)
    to the next generated one's, scored by the discriminator (real logit): the path starts
    at the image the other views explain for this sample."""
    z = overview.generated_latents(subject)
    g = overview.generated_partner(subject, index)
    return generative.interpolate(parts(subject)["generator"], z[g], z[(g + 1) % len(z)], INTERPOLATION_STEPS,
                                  critic=parts(subject)["discriminator"])


def generative_figures(subject: Subject, index: int) -> dict[str, go.Figure]:
    """The generative views of ``subject`` for sample ``index``: a traversal around its
    code and the path from it to a sample of another label (autoencoder, VAE), the KL per
    unit (VAE), an interpolation scored by the discriminator (GAN); empty for other models."""
    out: dict[str, go.Figure] = {}
    if {"encoder", "decoder"} <= set(subject.parts) and subject.modality == "image" and walkable(subject):
        t = traversal(subject, index)
        name = overview.sample_name(subject, index)
        out["traversal"] = figures.traversal_grid(
            t, title=f"Decoding around {name}'s code along units {t.units[0]} and {t.units[1]}")
        other = partner(subject, index)
        test = _test_set(subject)
        own = f" ({overview.label_name(subject, index)})" if subject.labels is not None else ""
        theirs = f" ({overview.label_name(test, other)})" if test.labels is not None else ""
        out["between"] = figures.interpolation_path(
            between(subject, index, other),
            title=f"Decoding the path from {name}'s code{own} to sample {other}'s{theirs}")
        if subject.latent_is_distribution:
            out["kl"] = figures.kl_bars(kl(subject), title="KL divergence per latent unit, test set")
    elif subject.task == "generation" and subject.modality == "image":
        g = overview.generated_partner(subject, index)
        out["interpolation"] = figures.interpolation_path(
            interpolation(subject, index), score_name="discriminator: real logit",
            title=f"Generator from generated #{g} (beside {overview.sample_name(subject, index)} in the saliency "
                  "and LRP views) "
                  f"to generated #{(g + 1) % overview.N_GENERATED}")
    return out


__all__ = ["has_attribution_scores", "units", "traversal", "interpolation", "between", "partner", "kl",
           "walked_units", "generative_figures", "layers", "default_layer", "colourings", "projection",
           "cached_projection", "read_back", "fit_text", "colour_values", "hover_texts", "map_figure",
           "layer_by_layer", "selection_figure", "COLOURS"]
