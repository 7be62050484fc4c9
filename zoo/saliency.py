"""Saliency of zoo entries: what each kind of model is explained by, and the views of it.

Classifiers explain a class score (the logit) of their prediction or of any class.
Autoencoders and the VAE explain their reconstruction error or one latent unit (the
encoder's output; the VAE's mean). The GAN explains its discriminator's "real"
logit, on a real test sample and on a generated one side by side. Token models are
explained through their embedding layer, one value per token, against a zero
embedding.

Both faces (dashboard and reports) call :func:`comparison`, which runs
:func:`interp.explain` for each method and draws with :mod:`interp.figures`. The
methods run on a private copy of the entry's model: Captum's guided backprop and
DeepLIFT hook the model's modules while they run, and the dashboard's other views
run the entry's model on other threads at the same time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from interp import explain, figures, methods
from interp.attribution import Attribution, default_cam_layer, spatial_layers
from interp.errors import InputError, UnknownNameError
from interp.objectives import OutputPart, ReconstructionError

from . import Entry, spec
from .overview import _generated, _memo, check_index

DEFAULT_METHODS = ("gradient", "input_x_gradient", "integrated_gradients", "smoothgrad", "occlusion", "grad_cam")


@dataclass(frozen=True)
class Objective:
    """What an entry's saliency explains: a model giving (batch, scores) and the targets
    a user can pick (label, value)."""

    key: str
    label: str
    targets: tuple[tuple[str, object], ...]


def objectives(entry: Entry) -> list[Objective]:
    """The choices of what to explain, the first being the default."""
    if entry.is_classifier:
        classes = entry.card["classes"]
        return [Objective("class", "class score (logit)",
                          (("predicted class", "predicted"),) + tuple((f"class {c}", i) for i, c in enumerate(classes)))]
    if entry.card["task"] == "reconstruction":
        latent = _latent_size(entry)
        return [Objective("error", "reconstruction error (MSE)", (("error", 0),)),
                Objective("latent", "latent unit" + (" (mean)" if entry.kind == "vae" else ""),
                          tuple((f"unit {k}", k) for k in range(latent)))]
    return [Objective("real", "discriminator: real score (logit)", (("real", 0),))]


def objective(entry: Entry, key: str | None) -> Objective:
    found = {o.key: o for o in objectives(entry)}
    if key is None:
        return next(iter(found.values()))
    if key not in found:
        raise UnknownNameError(f"saliency objective of {entry.name}", key, found)
    return found[key]


def _latent_size(entry: Entry) -> int:
    encoder = entry.parts["encoder"]  # the entry's own (the private copy may be under analysis)
    with torch.no_grad():
        return int((OutputPart(encoder, 0) if entry.kind == "vae" else encoder)(entry.test[0][:1]).shape[1])


def _private_full(entry: Entry) -> nn.Module:
    """A copy of the entry's full model, for saliency alone (same weights, same mode)."""
    return _memo(entry, "saliency-model", lambda: copy.deepcopy(entry.full))


def explained_model(entry: Entry, key: str) -> nn.Module:
    """The model whose scores are explained for objective ``key``: the entry's model (a
    private copy of it), wrapped where its output is not one score per target."""
    return _objective_model(entry, _private_full(entry), key)


def fresh_model(entry: Entry, key: str) -> nn.Module:
    """Like :func:`explained_model`, on a fresh copy of the model built for this call (the
    same weights, in eval mode) from the entry's spec, so no hook or state of another
    thread comes along: LRP rewrites modules while it runs, and sensitivity runs long."""
    full = spec(entry.name).build(entry.dataset)
    full.load_state_dict(entry.full.state_dict())
    full.eval()
    return _objective_model(entry, full, key)


def _objective_model(entry: Entry, full: nn.Module, key: str) -> nn.Module:
    s = spec(entry.name)
    if key == "error":
        return ReconstructionError(s.model_of(full))
    if key == "latent":
        encoder = s.parts_of(full)["encoder"]
        return OutputPart(encoder, 0) if entry.kind == "vae" else encoder
    return s.model_of(full)


def available_methods(entry: Entry) -> list[str]:
    """The attribution methods that apply to the entry's model: Grad-CAM needs a
    convolution, guided backprop a ReLU module."""
    def compute():
        names = list(methods())
        if not cam_layers(entry):
            names.remove("grad_cam")
        if not any(isinstance(m, nn.ReLU) for m in entry.model.modules()):
            names.remove("guided_backprop")
        return tuple(names)

    return list(_memo(entry, "saliency-methods", compute))


def default_methods(entry: Entry) -> list[str]:
    usable = available_methods(entry)
    return [m for m in DEFAULT_METHODS if m in usable]


def cam_layers(entry: Entry) -> list[str]:
    """Layers Grad-CAM can weight, the default first: the spatial outputs beside the last
    convolution (same parent module); none for models without a convolution."""
    def compute():
        x = entry.test[0][:1]
        default = default_cam_layer(entry.model, x)
        if default is None:
            return ()
        parent = default.rpartition(".")[0]
        return (default,) + tuple(la for la in spatial_layers(entry.model, x)
                                  if la != default and la.rpartition(".")[0] == parent)

    return list(_memo(entry, "cam-layers", compute))


def inputs(entry: Entry, index: int) -> tuple[torch.Tensor, list[str], torch.Tensor | None]:
    """The batch a comparison explains for test sample ``index``, its column titles and
    ground-truth masks: the sample itself, and for the GAN a generated sample beside it."""
    index = check_index(entry, index)
    x, y = entry.test
    truth = entry.truth[index:index + 1] if entry.truth is not None else None
    if entry.card["task"] == "generation":
        images, _ = _generated(entry)
        g = index % len(images)
        return torch.cat([x[index:index + 1], images[g:g + 1]]), [f"real #{index}", f"generated #{g}"], None
    label = f"#{index}"
    classes = entry.card.get("classes")
    if entry.is_classifier:
        true, predicted = int(y[index]), int(entry.predict(x[index:index + 1])[0].argmax())
        label += (f": {classes[true]} ✓" if true == predicted
                  else f": {classes[true]} → {classes[predicted]} ✗")
    elif classes:
        label += f" ({classes[int(y[index])]})"
    return x[index:index + 1], [label], truth


def _check_methods(entry: Entry, names) -> list[str]:
    usable = available_methods(entry)
    names = list(names or [])
    for m in names:
        if m not in usable:
            raise UnknownNameError(f"attribution method for {entry.name}", m, usable)
    if not names:
        raise InputError("choose at least one attribution method")
    return names


def _target(entry: Entry, obj: Objective, target):
    """``target`` checked against the objective's targets; ``None``: its first."""
    if target is None:
        return obj.targets[0][1]
    if target not in [v for _, v in obj.targets]:
        raise InputError(f"target {target!r} is not one of {entry.name}'s {obj.label} targets: "
                         f"{', '.join(str(v) for _, v in obj.targets)}")
    return target


def explain_batch(entry: Entry, x: torch.Tensor, method_names, key: str | None = None, target=None,
                  options: dict | None = None) -> list[Attribution]:
    """:func:`interp.explain` of the entry's objective ``key`` (default: the first) for each
    method, with per-method ``options`` ({method: {option: value}}); ``target`` one of the
    objective's targets (default: its first, e.g. the predicted class)."""
    obj = objective(entry, key)
    target = _target(entry, obj, target)
    model = explained_model(entry, obj.key)
    options = options or {}
    return [explain(model, x, target, m, **options.get(m, {})) for m in _check_methods(entry, method_names)]


def _samples(entry: Entry, indices) -> tuple[torch.Tensor, list[str], torch.Tensor | None]:
    xs, titles, truths = zip(*(inputs(entry, i) for i in indices))
    truth = torch.cat(truths) if all(t is not None for t in truths) else None
    return torch.cat(xs), [t for ts in titles for t in ts], truth


def comparison(entry: Entry, indices, method_names=None, key: str | None = None, target=None,
               options: dict | None = None, title: str | None = None):
    """The methods × samples grid and the table of numbers beside it, for test samples
    ``indices`` (a list, or one index). Returns (grid, summary, attributions)."""
    indices = [indices] if isinstance(indices, int) else list(indices)
    method_names = default_methods(entry) if method_names is None else method_names
    obj = objective(entry, key)
    target = _target(entry, obj, target)
    x, titles, truth = _samples(entry, indices)
    attrs = explain_batch(entry, x, method_names, obj.key, target, options)
    what = obj.label if obj.key != "class" else ("predicted class score" if target == "predicted"
                                                 else f"score of class {entry.card['classes'][target]}")
    grid = figures.attribution_grid(
        x, attrs, entry.dataset.modality, sample_titles=titles, feature_names=entry.dataset.feature_names,
        vocab=entry.dataset.vocab, truth=truth,
        title=title or f"What drives the {what}" + (f" (unit {target})" if obj.key == "latent" else ""))
    summary = figures.attribution_summary(attrs, titles, truth=truth)
    return grid, summary, attrs


__all__ = ["objectives", "objective", "explained_model", "fresh_model", "available_methods", "default_methods", "cam_layers",
           "inputs", "explain_batch", "comparison", "DEFAULT_METHODS", "Objective"]
