"""Saliency of subjects: what each kind of model is explained by, and the views of it.

Classifiers explain a class score (the logit) of their prediction or of any class;
regression models an output. Autoencoders explain their reconstruction error or, given
an encoder, one latent unit (the encoder's output; a VAE's mean). GANs explain the
discriminator's "real" logit, on a real sample and on a generated one side by side.
Token models are explained through their embedding layer, one value per token, against
a zero embedding.

Both faces (dashboard and reports) call :func:`comparison`, which runs
:func:`interp.explain` for each method and draws with :mod:`interp.figures`. The
methods run on a private copy of the subject's model (:meth:`interp.Subject.copy`):
Captum's guided backprop and DeepLIFT hook the model's modules while they run, and the
dashboard's other views run the working copy on other threads at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import figures
from ..attribution import Attribution, default_cam_layer, explain, methods, spatial_layers
from ..errors import InputError, UnknownNameError
from ..objectives import OutputPart, ReconstructionError
from ..subject import Subject
from .overview import check_index, generated, generated_partner, label_name, memo, model, parts, predict, sample_name

DEFAULT_METHODS = ("gradient", "input_x_gradient", "integrated_gradients", "smoothgrad", "occlusion", "grad_cam")


@dataclass(frozen=True)
class Objective:
    """What a subject's saliency explains: a model giving (batch, scores) and the targets
    a user can pick (label, value)."""

    key: str
    label: str
    targets: tuple[tuple[str, object], ...]


def objectives(subject: Subject) -> list[Objective]:
    """The choices of what to explain, the subject's own objective first."""
    found = _objectives(subject)
    return sorted(found, key=lambda o: o.key != subject.objective)


def _objectives(subject: Subject) -> list[Objective]:
    if subject.is_classifier:
        classes = subject.classes
        return [Objective("class", "class score (logit)",
                          (("predicted class", "predicted"),)
                          + tuple((f"class {c}", i) for i, c in enumerate(classes)))]
    if subject.task == "regression":
        k = subject.output_shape[0]
        return [Objective("output", "predicted output", tuple((f"output {i}", i) for i in range(k)))]
    if subject.task == "reconstruction":
        out = [Objective("error", "reconstruction error (MSE)", (("error", 0),))]
        if "encoder" in subject.parts:
            out.append(Objective("latent", "latent unit" + (" (mean)" if subject.latent_is_distribution else ""),
                                 tuple((f"unit {k}", k) for k in range(_latent_size(subject)))))
        return out
    return [Objective("real", "discriminator: real score (logit)", (("real", 0),))]


def objective(subject: Subject, key: str | None) -> Objective:
    found = {o.key: o for o in objectives(subject)}
    if key is None:
        return next(iter(found.values()))
    if key not in found:
        raise UnknownNameError(f"saliency objective of {subject.name}", key, found)
    return found[key]


def _latent_size(subject: Subject) -> int:
    def compute():
        with torch.no_grad():
            return int(_encoder(subject, parts(subject))(subject.inputs[:1]).shape[1])

    return memo(subject, "latent-size", compute)


def _encoder(subject: Subject, copied_parts: dict) -> nn.Module:
    """The encoder as (batch, units): a VAE's mean, a convolutional code flattened (its rank
    read once, on the working copy)."""
    encoder = copied_parts["encoder"]
    if subject.latent_is_distribution:
        return OutputPart(encoder, 0)  # flattens too

    def rank():
        with torch.no_grad():
            return parts(subject)["encoder"](subject.inputs[:1]).ndim

    return nn.Sequential(encoder, nn.Flatten()) if memo(subject, "encoder-rank", rank) > 2 else encoder


def explained_model(subject: Subject, key: str) -> nn.Module:
    """The model whose scores are explained for objective ``key``: a private copy of the
    subject's model (for saliency alone), wrapped where its output is not one score per target."""
    return objective_model(subject, memo(subject, "saliency-model", subject.copy), key)


def fresh_model(subject: Subject, key: str) -> nn.Module:
    """Like :func:`explained_model`, on a fresh copy of the model made for this call (the
    same weights, in eval mode), so no hook or state of another thread comes along: LRP
    rewrites modules while it runs, and sensitivity runs long."""
    return objective_model(subject, subject.copy(), key)


def objective_model(subject: Subject, copied: tuple, key: str) -> nn.Module:
    """The model explained for objective ``key``, built on ``copied`` (a :meth:`Subject.copy`)."""
    model_, parts = copied
    if key == "error":
        return ReconstructionError(model_)
    if key == "latent":
        return _encoder(subject, parts)
    return model_


def own_names(subject: Subject, key: str) -> dict[str, str]:
    """Module paths of the model explained for objective ``key`` -> the subject's own paths,
    where they differ: a wrapper (the VAE's encoder explained alone, the reconstruction error
    around the whole model) names ``encoder.body.1`` ``model.body.1`` or
    ``model.encoder.body.1``; every view says the subject's name."""
    def compute():
        copied = subject.copy()
        wrapper = objective_model(subject, copied, key)
        own = {id(m): name for name, m in copied[0].named_modules()}
        return {name: own[id(m)] for name, m in wrapper.named_modules()
                if name and id(m) in own and own[id(m)] and own[id(m)] != name}

    return memo(subject, f"own-names-{key}", compute)


def available_methods(subject: Subject) -> list[str]:
    """The attribution methods that apply to the subject's model: Grad-CAM needs a
    convolution, guided backprop a ReLU module."""
    def compute():
        names = list(methods())
        if not cam_layers(subject):
            names.remove("grad_cam")
        if not any(isinstance(m, nn.ReLU) for m in model(subject).modules()):
            names.remove("guided_backprop")
        return tuple(names)

    return list(memo(subject, "saliency-methods", compute))


def default_methods(subject: Subject) -> list[str]:
    usable = available_methods(subject)
    return [m for m in DEFAULT_METHODS if m in usable]


def cam_layers(subject: Subject) -> list[str]:
    """Layers Grad-CAM can weight, the default first: the spatial outputs beside the last
    convolution (same parent module); none for models without a convolution."""
    def compute():
        x = subject.inputs[:1]
        default = default_cam_layer(model(subject), x)
        if default is None:
            return ()
        parent = default.rpartition(".")[0]
        return (default,) + tuple(la for la in spatial_layers(model(subject), x)
                                  if la != default and la.rpartition(".")[0] == parent)

    return list(memo(subject, "cam-layers", compute))


def inputs(subject: Subject, index: int) -> tuple[torch.Tensor, list[str], torch.Tensor | None]:
    """The batch a comparison explains for sample ``index``, its column titles and
    ground-truth masks: the sample itself, and for the GAN a generated sample beside it."""
    index = check_index(subject, index)
    x, y = subject.inputs, subject.labels
    truth = subject.truth[index:index + 1] if subject.truth is not None else None
    if subject.task == "generation":
        images = generated(subject)
        g = generated_partner(subject, index)
        return torch.cat([x[index:index + 1], images[g:g + 1]]), [f"real #{index}", f"generated #{g}"], None
    label = "#" + sample_name(subject, index).removeprefix("sample ")  # "#7", or "#7, edited"
    classes = subject.classes
    if subject.is_classifier:
        predicted = int(predict(subject, x[index:index + 1])[0].argmax())
        if y is None:
            label += f": → {classes[predicted]}"
        else:
            true = int(y[index])
            label += (f": {classes[true]} ✓" if true == predicted
                      else f": {classes[true]} → {classes[predicted]} ✗")
    elif y is not None:
        label += f" ({label_name(subject, index)})"
    return x[index:index + 1], [label], truth


def _check_methods(subject: Subject, names) -> list[str]:
    usable = available_methods(subject)
    names = list(names or [])
    for m in names:
        if m not in usable:
            raise UnknownNameError(f"attribution method for {subject.name}", m, usable)
    if not names:
        raise InputError("choose at least one attribution method")
    return names


def check_target(subject: Subject, obj: Objective, target):
    """``target`` checked against the objective's targets; ``None``: its first."""
    if target is None:
        return obj.targets[0][1]
    if target not in [v for _, v in obj.targets]:
        raise InputError(f"target {target!r} is not one of {subject.name}'s {obj.label} targets: "
                         f"{', '.join(str(v) for _, v in obj.targets)}")
    return target


def explain_batch(subject: Subject, x: torch.Tensor, method_names, key: str | None = None, target=None,
                  options: dict | None = None) -> list[Attribution]:
    """:func:`interp.explain` of the subject's objective ``key`` (default: the first) for each
    method, with per-method ``options`` ({method: {option: value}}); ``target`` one of the
    objective's targets (default: its first, e.g. the predicted class)."""
    obj = objective(subject, key)
    target = check_target(subject, obj, target)
    explained = explained_model(subject, obj.key)
    options = options or {}
    return [explain(explained, x, target, m, **options.get(m, {})) for m in _check_methods(subject, method_names)]


def samples_of(subject: Subject, indices) -> tuple[torch.Tensor, list[str], torch.Tensor | None]:
    xs, titles, truths = zip(*(inputs(subject, i) for i in indices))
    truth = torch.cat(truths) if all(t is not None for t in truths) else None
    return torch.cat(xs), [t for ts in titles for t in ts], truth


def comparison(subject: Subject, indices, method_names=None, key: str | None = None, target=None,
               options: dict | None = None, title: str | None = None):
    """The methods × samples grid and the table of numbers beside it, for samples
    ``indices`` (a list, or one index). Returns (grid, summary, attributions)."""
    indices = [indices] if isinstance(indices, int) else list(indices)
    method_names = default_methods(subject) if method_names is None else method_names
    obj = objective(subject, key)
    target = check_target(subject, obj, target)
    x, titles, truth = samples_of(subject, indices)
    attrs = explain_batch(subject, x, method_names, obj.key, target, options)
    what = obj.label if obj.key != "class" else ("predicted class score" if target == "predicted"
                                                 else f"score of class {subject.classes[target]}")
    grid = figures.attribution_grid(
        x, attrs, subject.modality, sample_titles=titles, feature_names=subject.features,
        vocab=subject.vocab, truth=truth,
        title=title or f"What drives the {what}" + (f" (unit {target})" if obj.key == "latent" else ""))
    summary = figures.attribution_summary(attrs, titles, truth=truth)
    return grid, summary, attrs


__all__ = ["objectives", "objective", "explained_model", "fresh_model", "objective_model", "own_names",
           "available_methods", "default_methods", "cam_layers", "inputs", "check_target", "samples_of",
           "explain_batch", "comparison", "DEFAULT_METHODS", "Objective"]
