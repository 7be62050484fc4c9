"""Saliency and attribution: the gradient family as one verb over a registry.

    interp.attribute(model, x, target, method="integrated_gradients", steps=64)  # shaped like x
    interp.explain(model, x, target, method="occlusion")   # an Attribution: values, target, score, delta
    interp.methods()                                       # {name: one-line description}

Captum does the work for integrated gradients, guided backprop, DeepLIFT, occlusion
and Grad-CAM. What this module adds: one way to give a target
(:func:`interp._checks.resolve_target`), input checks with clear errors, token
models explained through their embedding layer (one score per token), Grad-CAM
upsampled to the input, and a model left exactly as it was (hooks, attributes,
parameters, buffers, gradients, train/eval mode), also after an error. Analyses run
one at a time in the process (Captum's hooks live on the modules).

Written here instead: ``gradient``, ``saliency`` and ``input_x_gradient`` are one
autograd call on the forward pass that also resolves the target (Captum's wrappers
add about 0.6 ms of Python per call, 1.55x forward+backward on the zoo CNN at batch
128, over our 1.2 target; the tests check them against Captum's ``Saliency`` and
``InputXGradient``); ``smoothgrad`` draws its noise per sample (see
:func:`_smoothgrad` for why Captum's ``NoiseTunnel`` does not fit).

Adding a method is one :class:`Method` entry in ``METHODS`` plus its test.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ._checks import check_batch, check_finite, resolve_target, run_model, scores_of
from .capture import capture, intervene, module_names
from .errors import InputError, InterpError, UnknownNameError

# Captum announces, on every call, hooks that it removes again (and we check that it does)
warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations", category=UserWarning)
warnings.filterwarnings("ignore", message="Setting forward, backward hooks and attributes on non-linear",
                        category=UserWarning)

EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)
CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
ROWS_PER_EVAL = 512  # inputs per forward when a method evaluates many perturbed copies (measured: 256-512
# rows run fastest on the CPU, 4096 rows at once up to twice as slow per row)


# ---------------------------------------------------------------------------- results

@dataclass(frozen=True)
class Attribution:
    """What :func:`explain` returns. ``values`` is shaped like the input (one value per
    token for token ids); ``target`` and ``score`` hold, per sample, the explained output
    index and its value at the input; ``delta`` is the completeness gap
    ``sum(values) - (f(x) - f(baseline))`` per sample for the methods that define one
    (integrated gradients, DeepLIFT), else ``None``."""

    method: str
    values: torch.Tensor
    target: torch.Tensor
    score: torch.Tensor
    delta: torch.Tensor | None = None
    options: dict = field(default_factory=dict)
    embedding: str | None = None
    seconds: float = 0.0

    @property
    def label(self) -> str:
        """The method with the options that shape its result, e.g. ``integrated_gradients (steps=64)``."""
        shown = {k: v for k, v in self.options.items() if k in LABEL_OPTIONS and v is not None}
        inner = ", ".join(f"{k}={_short(v)}" for k, v in shown.items())
        return f"{self.method} ({inner})" if inner else self.method


LABEL_OPTIONS = ("steps", "samples", "noise", "window", "layer", "composite")


def _short(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------- options

@dataclass(frozen=True)
class Option:
    """One option of a method: its default and a check returning an error text or None."""

    default: Any
    check: Callable[[Any], str | None]
    doc: str


def _positive_int(v) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v >= 1
    return None if ok else "expected an integer >= 1"


def _optional_positive_int(v) -> str | None:
    return None if v is None else _positive_int(v)


def _non_negative(v) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
    return None if ok else "expected a finite number >= 0"


def _any_int(v) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) else "expected an integer"


def _window(v) -> str | None:
    if v is None or _positive_int(v) is None:
        return None
    if isinstance(v, (tuple, list)) and v and all(_positive_int(i) is None for i in v):
        return None
    return "expected None, an integer >= 1 or a tuple of them"


def _baseline(v) -> str | None:
    if v is None or isinstance(v, torch.Tensor):
        return None
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return None if ok else "expected None, a number or a tensor (a token id for token inputs)"


def _layer(v) -> str | None:
    return None if v is None or isinstance(v, str) else "expected a module path such as 'features.3'"


def _bool(v) -> str | None:
    return None if isinstance(v, bool) else "expected True or False"


BASELINE = Option(None, _baseline, "reference input: a number or tensor (default 0); for token "
                                   "inputs a token id whose embedding is used (default: zero embedding)")


# ---------------------------------------------------------------------------- the input space

@dataclass
class _Space:
    """Where attribution happens: the input itself, or for token ids the output of the
    embedding layer that reads them (``extra`` then holds the ids for the forward)."""

    model: nn.Module
    forward: nn.Module          # (inputs, *extra) -> (batch, scores)
    inputs: torch.Tensor        # what attributions are taken for
    extra: tuple | None         # additional forward arguments (token ids)
    scores: torch.Tensor        # (batch, K) at the input, detached
    graph: torch.Tensor | None  # the same scores with autograd graph, when asked for
    embedding: str | None

    @property
    def tokens(self) -> bool:
        return self.embedding is not None

    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.inputs.shape[1:])


class _Scores(nn.Module):
    """``model(x)`` as (batch, scores)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scores_of(self.model(x))


class _ThroughEmbedding(nn.Module):
    """``model(tokens)`` with the output of the embedding layer replaced by ``e``: a model of
    the embeddings, which gradients and baselines are defined for. With ``by_identity``
    only the call that reads the token tensor itself is replaced (the same layer may also
    embed other ids, e.g. a class token); otherwise the layer's one call."""

    def __init__(self, model: nn.Module, layer: str, by_identity: bool):
        super().__init__()
        self.model, self.layer, self.by_identity = model, layer, by_identity

    def forward(self, e: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        def replace(_name, args, _out):
            return e if not self.by_identity or (args and args[0] is tokens) else None

        with intervene(self.model, [self.layer], replace):
            return scores_of(self.model(tokens))


def _embedding_candidates(model: nn.Module, embedding: str | None) -> list[str]:
    modules = module_names(model)
    found = [n for n, m in modules.items() if isinstance(m, EMBEDDINGS)]
    if embedding is not None:
        if embedding not in modules:
            raise UnknownNameError("embedding layer", embedding, found or list(modules))
        return [embedding]
    if not found:
        raise InputError("integer inputs are token ids, which are explained through the nn.Embedding "
                         "layer that reads them; the model has none (give float inputs, or name the "
                         "layer whose output to explain with embedding=...)")
    return found


def _prepare(model: nn.Module, x: torch.Tensor, embedding: str | None, graph: bool,
             at: torch.Tensor | None = None) -> _Space:
    """One forward pass on ``x``: the scores (for the target) and the space to attribute in.
    With ``graph`` the inputs require grad and the scores keep their autograd graph. ``at``:
    for token ids, embedding values to attribute at instead of the embedding's own output
    (the explanation sensitivity perturbs token models there)."""
    if x.is_floating_point():
        if embedding is not None:
            raise InputError(f"embedding={embedding!r} applies to token-id inputs; the input is "
                             f"{str(x.dtype).replace('torch.', '')}, attributed directly")
        inputs = x.detach().requires_grad_(graph)  # a new leaf sharing x's storage; x is untouched
        with torch.enable_grad():  # the same code path as the methods' own passes (no inference fast paths)
            out = scores_of(run_model(model, inputs))
        return _Space(model, _Scores(model), inputs, None, out.detach(), out if graph else None, None)
    if x.is_complex() or x.dtype == torch.bool:
        raise InputError(f"inputs must be float values or integer token ids; got dtype "
                         f"{str(x.dtype).replace('torch.', '')}")
    candidates = _embedding_candidates(model, embedding)
    seen: dict[str, torch.Tensor] = {}

    def take(name, args, output):
        if embedding is None and not (args and args[0] is x):
            return None  # an embedding of something else (e.g. positions)
        if name in seen:
            raise InputError(f"embedding layer {name!r} reads the tokens more than once per forward; "
                             "name one read once with embedding=...")
        seen[name] = output.detach().clone().requires_grad_(graph)
        return seen[name]

    with intervene(model, candidates, take), torch.enable_grad():
        out = scores_of(run_model(model, x, "input of token ids"))
    if len(seen) != 1:
        what = "none of them" if not seen else f"{len(seen)} of them ({', '.join(seen)})"
        raise InputError(f"token ids are explained through the one embedding layer that reads them; "
                         f"{what} read the input among {', '.join(candidates)}; name it with embedding=...")
    (name, e), = seen.items()
    if not e.is_floating_point() or e.shape[:x.ndim] != x.shape:
        raise InputError(f"embedding layer {name!r} gives {tuple(e.shape)} for token ids {tuple(x.shape)}; "
                         "expected one vector per token")
    through = _ThroughEmbedding(model, name, by_identity=embedding is None)
    if at is not None:
        if at.shape != e.shape or not at.is_floating_point():
            raise InputError(f"embedding values to attribute at must be shaped like the embedding's output "
                             f"{tuple(e.shape)}; got {tuple(at.shape)}")
        e = at.detach().to(e.dtype).requires_grad_(graph)
        with torch.enable_grad():
            out = through(e, x)
    return _Space(model, through, e, (x,), out.detach(), out if graph else None, name)


def _at_target(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each sample's score for its target: (batch, K) scores, (batch,) targets -> (batch,)."""
    return scores.gather(1, target[:, None])[:, 0]


class _SummedTarget(nn.Module):
    """The sum over the batch of each sample's target score, as one number: its gradient
    is each sample's own (samples do not mix), and Captum then seeds one backward pass
    instead of one per sample (its ``torch.unbind`` of the outputs cost 30% of integrated
    gradients on the zoo CNN). The targets travel as a forward argument, so Captum
    expands them with the inputs."""

    def __init__(self, forward: nn.Module):
        super().__init__()
        self.scores = forward

    def forward(self, inputs: torch.Tensor, target: torch.Tensor, *extra) -> torch.Tensor:
        return _at_target(self.scores(inputs, *extra), target).sum().reshape(1)


def _summed(space: _Space, target: torch.Tensor) -> tuple[nn.Module, tuple]:
    """(forward, additional forward arguments) of :class:`_SummedTarget` for Captum."""
    return _SummedTarget(space.forward), (target, *(space.extra or ()))


def _completeness_gap(space: _Space, target: torch.Tensor, values: torch.Tensor,
                      reference: torch.Tensor) -> torch.Tensor:
    """Σ values − (f(x) − f(baseline)) per sample, from one forward pass on the baseline."""
    with torch.enable_grad():  # the path the attributions took (no inference fast paths)
        at_reference = _at_target(space.forward(reference, *(space.extra or ())).detach(), target)
    at_input = _at_target(space.scores, target)
    return values.detach().flatten(1).sum(1) - (at_input - at_reference)


def _reference(space: _Space, baseline) -> torch.Tensor:
    """The baseline in attribution space, shaped like the inputs."""
    inputs = space.inputs.detach()
    if baseline is None:
        return torch.zeros_like(inputs)
    if space.tokens:
        if not isinstance(baseline, int) or isinstance(baseline, bool):
            raise InputError(f"for token inputs the baseline is a token id whose embedding is used; got "
                             f"{baseline!r}")
        layer = module_names(space.model)[space.embedding]
        tokens = space.extra[0]
        n = getattr(layer, "num_embeddings", None)
        if n is not None and not 0 <= baseline < n:
            raise InputError(f"baseline token id {baseline} is out of range for an embedding of {n} tokens")
        with torch.no_grad():
            e = layer(torch.full_like(tokens, baseline))
        return e.detach().expand_as(inputs).clone()
    if isinstance(baseline, (int, float)):
        return torch.full_like(inputs, float(baseline))
    b = baseline.detach().to(device=inputs.device, dtype=inputs.dtype)
    check_finite(b, "the baseline")
    try:
        return torch.broadcast_to(b, inputs.shape).clone()
    except RuntimeError:
        raise InputError(f"baseline of shape {tuple(b.shape)} does not broadcast to the input's "
                         f"{tuple(inputs.shape)}; expected one sample's shape {tuple(inputs.shape[1:])} "
                         f"or the batch's") from None


# ---------------------------------------------------------------------------- the methods

def _input_gradient(space: _Space, target: torch.Tensor) -> torch.Tensor:
    selected = _at_target(space.graph, target).sum()
    return torch.autograd.grad(selected, space.inputs)[0]


def _gradient(space, target, opts):
    return _input_gradient(space, target), None


def _saliency(space, target, opts):
    return _input_gradient(space, target).abs(), None


def _input_x_gradient(space, target, opts):
    return _input_gradient(space, target) * space.inputs.detach(), None


def _smoothgrad(space, target, opts):
    """Smilkov et al. 2017: the mean gradient over copies ``x + N(0, sigma^2)``, where sigma is
    ``noise`` times the sample's own value range (max - min; 1 for a constant sample).

    Written here rather than with Captum's ``NoiseTunnel``, which takes one sigma for the
    whole batch and draws the noise of all samples in one call, so that a sample's map
    changes with the batch it is in (a report's grid and the dashboard's single sample
    disagreed). Here one noise pattern is drawn from a generator seeded with ``seed``
    (the global random state is not touched) and scaled per sample, so a sample gets
    the same map alone or in any batch."""
    inputs = space.inputs.detach()
    n, shape, k = len(inputs), inputs.shape[1:], opts["samples"]
    flat = inputs.flatten(1)
    spread = flat.max(1).values - flat.min(1).values
    sigma = opts["noise"] * torch.where(spread > 0, spread, torch.ones_like(spread))
    pattern = torch.randn((k, *shape), generator=torch.Generator().manual_seed(opts["seed"]),
                          dtype=inputs.dtype).to(inputs.device)
    sample = torch.arange(n, device=inputs.device).repeat_interleave(k)  # row r: sample[r] + noise copy[r]
    copy = torch.arange(k, device=inputs.device).repeat(n)
    total = torch.zeros_like(inputs)
    for start in range(0, n * k, ROWS_PER_EVAL):  # bounded memory whatever n and k
        i, c = sample[start:start + ROWS_PER_EVAL], copy[start:start + ROWS_PER_EVAL]
        noisy = (inputs[i] + sigma[i].view(-1, *([1] * len(shape))) * pattern[c]).requires_grad_(True)
        extra = tuple(a[i] for a in space.extra or ())
        with torch.enable_grad():
            scores = _at_target(space.forward(noisy, *extra), target[i])
            grads = torch.autograd.grad(scores.sum(), noisy)[0]
        total.index_add_(0, i, grads)
    return total / k, None


def _integrated_gradients(space, target, opts):
    from captum.attr import IntegratedGradients

    batch = opts["internal_batch_size"]
    if batch is None and len(space.inputs) * opts["steps"] > ROWS_PER_EVAL:
        batch = max(len(space.inputs), ROWS_PER_EVAL)
    reference = _reference(space, opts["baseline"])
    forward, extra = _summed(space, target)
    values = IntegratedGradients(forward).attribute(
        space.inputs.detach().requires_grad_(), baselines=reference, additional_forward_args=extra,
        n_steps=opts["steps"], internal_batch_size=batch)
    return values, _completeness_gap(space, target, values, reference)


def _relus(model: nn.Module) -> None:
    if not any(isinstance(m, nn.ReLU) for m in model.modules()):
        raise InterpError("guided_backprop changes the backward pass of nn.ReLU modules, and the model "
                          "has none (its result would equal 'gradient'); choose another method")


def _guided_backprop(space, target, opts):
    from captum.attr import GuidedBackprop

    _relus(space.model)
    values = GuidedBackprop(space.forward).attribute(
        space.inputs.detach().requires_grad_(), target=target, additional_forward_args=space.extra)
    return values, None


def _deeplift(space, target, opts):
    from captum.attr import DeepLift

    try:
        values, delta = DeepLift(space.forward).attribute(
            space.inputs.detach().requires_grad_(), baselines=_reference(space, opts["baseline"]),
            target=target, additional_forward_args=space.extra, return_convergence_delta=True)
    except RuntimeError as exc:
        if "used more than once" not in str(exc):
            raise
        raise InterpError("deeplift needs each activation module (ReLU, Sigmoid, ...) to be called once per "
                          "forward, and this model calls one several times; give each use its own module, "
                          "or choose another method") from None
    return values, delta


def _positions(space: _Space) -> tuple[int, ...]:
    """The sample dimensions a window slides over: tokens for token inputs, the spatial
    dimensions of (C, ...) inputs, every dimension of a flat feature vector."""
    shape = space.sample_shape()
    if space.tokens:
        return shape[:-1]
    return shape[1:] if len(shape) >= 2 else shape


def _windows(space: _Space, opts: dict) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Occlusion's (window, stride, positions), defaults filled in and checked against the input."""
    positions = _positions(space)
    small = min(positions)
    default = 1 if space.tokens or len(positions) < 2 else max(2, small // 5)

    def expand(v, what: str, fallback: int) -> tuple[int, ...]:
        v = fallback if v is None else v
        t = (v,) * len(positions) if isinstance(v, int) else tuple(v)
        if len(t) != len(positions):
            raise InputError(f"occlusion {what} {v!r} has {len(t)} sizes; the input has {len(positions)} "
                             f"positional dimensions {positions}")
        return t

    window = expand(opts["window"], "window", default)
    if any(w > p for w, p in zip(window, positions)):
        raise InputError(f"occlusion window {window} is larger than the input {positions}; expected at most "
                         f"the input's size in every dimension")
    stride = expand(opts["stride"], "stride", max(1, min(window) // 2))
    if any(st > w for st, w, p in zip(stride, window, positions) if w < p):
        raise InputError(f"occlusion stride {stride} is larger than the window {window}: positions between "
                         "windows would never be occluded; expected a stride of at most the window")
    return window, stride, positions


def _occlusion(space, target, opts):
    from captum.attr import Occlusion

    window, stride, _ = _windows(space, opts)
    opts["window"], opts["stride"] = window, stride  # what was used, defaults filled in
    shape = space.sample_shape()
    if space.tokens:  # a window covers whole embedding vectors
        window, stride = window + shape[-1:], stride + shape[-1:]
    elif len(shape) >= 2:  # and every channel
        window, stride = shape[:1] + window, (shape[0],) + stride
    values = Occlusion(space.forward).attribute(
        space.inputs.detach(), sliding_window_shapes=window, strides=stride,
        baselines=_reference(space, opts["baseline"]), target=target, additional_forward_args=space.extra,
        perturbations_per_eval=max(1, min(64, ROWS_PER_EVAL // len(space.inputs))))
    return values, None


def _spatial(shape: tuple[int, ...], layout: str) -> bool:
    return layout == "channels" and len(shape) >= 3


def _maps(model: nn.Module, x: torch.Tensor, layers=None) -> list[tuple[str, tuple[int, ...], str, int]]:
    """(layer, output shape, layout, calls) of each tensor output on one sample, in call order."""
    with capture(model, layers, track_layout=True) as rec:
        run_model(model, x[:1])
    return [(rec.layer_of[n], tuple(t[0].shape), rec.layout[n], len(t)) for n, t in rec.calls.items()
            if n == rec.layer_of[n]]


def spatial_layers(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Module paths whose output on ``x`` is a spatial map (batch, channels, positions...)
    computed once per forward, in call order: the layers Grad-CAM can weight."""
    return [lay for lay, shape, layout, calls in _maps(model, x) if calls == 1 and _spatial(shape, layout)]


def default_cam_layer(model: nn.Module, x: torch.Tensor) -> str | None:
    """Grad-CAM's default layer: the last convolution's output, or the parameter-free module
    right after it when that keeps its shape (the rectified maps, as in Selvaraju et al.);
    ``None`` when the model has no spatial convolution output."""
    modules = module_names(model)
    order = _maps(model, x)
    convs = [i for i, (lay, shape, layout, calls) in enumerate(order)
             if isinstance(modules[lay], CONVOLUTIONS) and calls == 1 and _spatial(shape, layout)]
    if not convs:
        return None
    i = convs[-1]
    if i + 1 < len(order):
        lay, shape, layout, calls = order[i + 1]
        if shape == order[i][1] and layout == "channels" and calls == 1 and not list(modules[lay].parameters()):
            return lay
    return order[i][0]


def _cam_layer(space: _Space, x: torch.Tensor, layer: str | None) -> str:
    """The layer Grad-CAM weights: the one asked for, checked to be spatial and called once,
    or the default (:func:`default_cam_layer`)."""
    if layer is None:
        found = default_cam_layer(space.model, x)
        if found is None:
            raise InterpError("grad_cam needs a spatial layer (a convolution's output: batch, channels, "
                              "positions...); the model has none. Choose another method, or name a layer "
                              "with layer=...")
        return found
    outputs = [o for o in _maps(space.model, x, [layer]) if o[0] == layer]
    if not outputs:
        raise InterpError(f"grad_cam: layer {layer!r} gives no single tensor on this input; expected a "
                          "spatial layer such as a convolution")
    _, shape, layout, calls = outputs[0]
    if calls > 1:
        raise InterpError(f"grad_cam needs a layer computed once per forward; {layer!r} runs {calls} times")
    if not _spatial(shape, layout):
        raise InterpError(f"grad_cam needs a spatial layer, whose output is (batch, channels, positions...) "
                          f"such as a convolution's; {layer!r} gives (batch, {', '.join(map(str, shape[1:]))}) "
                          f"({layout} layout)")
    return layer


def _grad_cam(space, target, opts, x: torch.Tensor):
    from captum.attr import LayerAttribution, LayerGradCam

    layer = _cam_layer(space, x, opts["layer"])
    opts["layer"] = layer
    module = module_names(space.model)[layer]
    maps = LayerGradCam(space.forward, module).attribute(
        space.inputs.detach().requires_grad_(), target=target, additional_forward_args=space.extra,
        relu_attributions=opts["relu"])                       # (batch, 1, positions...)
    size = tuple(x.shape[1:]) if space.tokens or x.ndim == 2 else tuple(x.shape[2:])
    if maps.ndim - 2 != len(size):
        raise InterpError(f"grad_cam: layer {layer!r} has {maps.ndim - 2} positional dimensions, the input "
                          f"{len(size)}; choose a layer whose maps match the input")
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    up = LayerAttribution.interpolate(maps.detach(), size, interpolate_mode=mode)
    if space.tokens or x.ndim == 2:
        return up[:, 0], None
    return up.expand(-1, x.shape[1], *size).contiguous(), None  # the same map in every channel


@dataclass(frozen=True)
class Method:
    """An entry of the registry: what it computes, its options, and how per-dimension
    values of a token's embedding become the token's one value (``"sum"``: gradients and
    their relatives, so totals are kept; ``"mean"``: occlusion, where every dimension of a
    window holds the same drop; ``"none"``: already one value per token)."""

    name: str
    description: str
    compute: Callable
    options: dict[str, Option] = field(default_factory=dict)
    graph: bool = False          # needs the forward's autograd graph (the plain gradient family)
    per_token: str = "sum"
    needs_input: bool = False    # compute also takes the raw input (Grad-CAM's layer probe)


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("saliency", "absolute gradient of the target score (Simonyan et al. 2014)", _saliency, graph=True),
    Method("gradient", "signed gradient of the target score", _gradient, graph=True),
    Method("input_x_gradient", "gradient times input (Shrikumar et al. 2016); equals LRP-0 on ReLU nets",
           _input_x_gradient, graph=True),
    Method("smoothgrad", "gradient averaged over noisy copies of the input (Smilkov et al. 2017)", _smoothgrad, {
        "samples": Option(25, _positive_int, "noisy copies per sample"),
        "noise": Option(0.15, _non_negative, "noise standard deviation, as a fraction of the input's value range"),
        "seed": Option(0, _any_int, "random seed of the noise (same seed, same result)"),
    }),
    Method("integrated_gradients", "gradients integrated along the path from a baseline; they sum to "
           "f(x) - f(baseline) (Sundararajan et al. 2017)", _integrated_gradients, {
               "steps": Option(50, _positive_int, "integration steps (Gauss-Legendre)"),
               "baseline": BASELINE,
               "internal_batch_size": Option(None, _optional_positive_int, "inputs per forward pass"),
           }),
    Method("guided_backprop", "gradient with negative signals stopped at every ReLU "
           "(Springenberg et al. 2015)", _guided_backprop),
    Method("deeplift", "differences from a baseline propagated with the rescale rule (Shrikumar et al. 2017)",
           _deeplift, {"baseline": BASELINE}),
    Method("occlusion", "drop of the target score when a sliding window is set to the baseline "
           "(Zeiler & Fergus 2014)", _occlusion, {
               "window": Option(None, _window, "window size per positional dimension (default: 1 for tokens "
                                "and features, about a fifth of the image side for images)"),
               "stride": Option(None, _window, "step between windows (default: half the window)"),
               "baseline": BASELINE,
           }, per_token="mean"),
    Method("grad_cam", "a convolution's maps weighted by their mean gradient, upsampled to the input "
           "(Selvaraju et al. 2017)", _grad_cam, {
               "layer": Option(None, _layer, "module path of a spatial layer (default: the last "
                               "convolution's output, after its activation)"),
               "relu": Option(True, _bool, "keep only positive evidence, as in the paper"),
           }, per_token="none", needs_input=True),
]}


def methods() -> dict[str, str]:
    """The names :func:`attribute` accepts, each with a one-line description."""
    return {name: m.description for name, m in METHODS.items()}


def method_options(method: str) -> dict[str, Option]:
    """The options ``method`` takes, with their defaults and descriptions."""
    return dict(_method(method).options)


def _method(name) -> Method:
    if not isinstance(name, str) or name not in METHODS:
        raise UnknownNameError("attribution method", name, METHODS)
    return METHODS[name]


def _options(method: Method, given: dict) -> dict:
    unknown = [k for k in given if k not in method.options]
    if unknown:
        raise UnknownNameError(f"option of {method.name}", unknown[0], method.options,
                               hint="" if method.options else f"{method.name} takes no options")
    opts = {k: o.default for k, o in method.options.items()}
    for k, v in given.items():
        problem = method.options[k].check(v)
        if problem:
            raise InputError(f"{method.name}: option {k}={v!r} is invalid; {problem}")
        opts[k] = v
    return opts


# ---------------------------------------------------------------------------- leaving the model as found

_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_HOOK_DICTS = _HOOKS + ("_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")
_CAPTUM_ATTRIBUTES = ("input", "output", "input_ref")  # what DeepLIFT stores on modules while it runs
# One analysis at a time in the process: Captum's hooks live on modules, and the modules of
# one model are reached through many wrappers (objectives, embedding views), so a lock per
# object would not keep two threads apart.
_ANALYSIS_LOCK = threading.RLock()


def _from_captum(hook) -> bool:
    fn = getattr(hook, "__func__", hook)
    return (getattr(fn, "__module__", "") or "").startswith("captum")


def _refuse_batch_statistics(model: nn.Module) -> None:
    """InterpError for a batch-norm module that normalises with the batch's own statistics
    (train mode, or no running statistics): one sample's attribution would depend on the
    others, and running statistics would move."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (m.training or m.running_mean is None):
            why = "is in train mode" if m.training else "keeps no running statistics (track_running_stats=False)"
            raise InterpError(f"module {name or 'model'!r} ({type(m).__name__}) {why}: it normalises with the "
                              "statistics of the batch, so one sample's attribution would depend on the "
                              "others; call model.eval() on a model with running statistics")


@contextlib.contextmanager
def exclusive():
    """Run the body as the only analysis in the process, with attention's inference fast
    path off, so every pass computes the same function: nn.MultiheadAttention's fast path
    (taken without autograd, as in Captum's occlusion and convergence deltas) treats
    padding differently from the autograd path."""
    with _ANALYSIS_LOCK:
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            yield
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)


@contextlib.contextmanager
def as_found(model: nn.Module):
    """Run the body :func:`exclusive`-ly, then put back what Captum may have changed: hooks
    and attributes it left on any module are removed, and every module's train/eval mode,
    every buffer (e.g. running statistics) and every parameter's ``requires_grad`` and
    ``.grad`` are restored (also after an error). Hooks of other code (e.g. another
    thread's ``capture``) stay."""
    with exclusive():
        modules = list(model.modules())  # walked once: this runs on every call, also the cheap ones
        hooks = [{a: set(getattr(m, a, None) or ()) for a in _HOOKS} for m in modules]
        attributes = [{a for a in _CAPTUM_ATTRIBUTES if a in m.__dict__} for m in modules]
        modes = [m.training for m in modules]
        params = [(p, p.requires_grad, p.grad) for m in modules for p in m._parameters.values() if p is not None]
        buffers = [(b, b.detach().clone()) for m in modules for b in m._buffers.values() if b is not None]
        try:
            yield
        finally:
            for m, before, had, mode in zip(modules, hooks, attributes, modes):
                for a in _HOOKS:
                    stale = [k for k, h in (getattr(m, a, None) or {}).items()
                             if k not in before[a] and _from_captum(h)]
                    for k in stale:  # what RemovableHandle.remove() does
                        for d in (getattr(m, name, None) for name in _HOOK_DICTS):
                            if isinstance(d, dict):
                                d.pop(k, None)
                for a in _CAPTUM_ATTRIBUTES:
                    if a not in had and a in m.__dict__:
                        del m.__dict__[a]
                if m.training != mode:
                    m.training = mode
            for p, flag, grad in params:
                if p.requires_grad != flag:
                    p.requires_grad_(flag)
                if p.grad is not grad:
                    p.grad = grad
            with torch.no_grad():
                for b, value in buffers:
                    if not torch.equal(b, value):
                        b.copy_(value)


# ---------------------------------------------------------------------------- the verb

def explain(model: nn.Module, x: torch.Tensor, target="predicted", method: str = "integrated_gradients",
            *, embedding: str | None = None, **options) -> Attribution:
    """Attribute the ``target`` score of ``model`` at ``x`` to the input, with ``method``.

    ``x``: a batch (float values, or integer token ids explained through the embedding
    layer that reads them; ``embedding=`` names it when several could). ``target``: an
    output index, one index per sample, or ``"predicted"``. ``options``: the method's
    (see :func:`method_options`). Returns an :class:`Attribution` whose ``values`` are
    shaped like ``x``. The model runs in the mode it is in, and is left as it was.
    """
    check_batch(model, x, "explain")
    m = _method(method)
    opts = _options(m, options)
    check_finite(x, "the input")
    if not m.graph:
        importlib.import_module("captum.attr")  # imported on first use, kept out of the timing
    start = time.perf_counter()
    if torch.is_inference_mode_enabled():
        raise InterpError("attribution needs autograd, and this call runs inside torch.inference_mode(); "
                          "call it outside that block")
    _refuse_batch_statistics(model)
    space, t, values, delta = _computed(model, x, target, m, opts, embedding)
    values = values.detach()
    if space.tokens and m.per_token != "none":
        values = values.sum(-1) if m.per_token == "sum" else values.mean(-1)
    if values.shape != x.shape:  # a method that broke the contract: say so instead of returning it
        raise RuntimeError(f"{m.name} returned {tuple(values.shape)} for an input of {tuple(x.shape)}")
    return Attribution(method=m.name, values=values.to(x.dtype if x.is_floating_point() else torch.float32),
                       target=t,
                       score=_at_target(space.scores, t),
                       delta=None if delta is None else delta.detach().reshape(-1),
                       options=opts, embedding=space.embedding, seconds=time.perf_counter() - start)


def _computed(model, x, target, m: Method, opts: dict, embedding, at=None):
    """(space, target, values, delta) of method ``m``; for token ids ``values`` are still
    per embedding dimension."""
    with as_found(model):
        space = _prepare(model, x, embedding, m.graph, at)
        t = resolve_target(target, space.scores)
        args = (space, t, opts, x) if m.needs_input else (space, t, opts)
        try:
            values, delta = m.compute(*args)
        except AssertionError as exc:  # Captum checks its arguments with asserts
            raise InputError(f"{m.name}: {exc}") from exc
    return space, t, values, delta


def attribute_at_embeddings(model: nn.Module, tokens: torch.Tensor, values: torch.Tensor, target,
                            method: str, *, embedding: str | None = None, **options) -> torch.Tensor:
    """Attributions of a token model's ``target`` score to its embedding values, shaped like
    them (batch, tokens, dim): the model run on ``tokens`` with the embedding layer's output
    replaced by ``values`` (for the explanation sensitivity, which perturbs there)."""
    check_batch(model, tokens, "explain")
    m = _method(method)
    opts = _options(m, options)
    check_finite(values, "the embedding values")
    if torch.is_inference_mode_enabled():
        raise InterpError("attribution needs autograd, and this call runs inside torch.inference_mode(); "
                          "call it outside that block")
    _refuse_batch_statistics(model)
    if tokens.is_floating_point():
        raise InputError("attribute_at_embeddings takes token ids; float inputs are attributed directly")
    return _computed(model, tokens, target, m, opts, embedding, values)[2].detach()


def attribute(model: nn.Module, x: torch.Tensor, target="predicted", method: str = "integrated_gradients",
              *, embedding: str | None = None, **options) -> torch.Tensor:
    """Attributions of the ``target`` score to ``x``, shaped like ``x`` (see :func:`explain`,
    which also returns the target, the score and the completeness gap)."""
    return explain(model, x, target, method, embedding=embedding, **options).values


__all__ = ["attribute", "attribute_at_embeddings", "explain", "methods", "method_options", "spatial_layers", "default_cam_layer", "Attribution", "Method", "METHODS",
           "Option", "as_found", "exclusive"]
