"""Saliency and attribution: the gradient family as one verb over a registry.

    interp.attribute(model, x, target, method="integrated_gradients", steps=64)  # shaped like x
    interp.explain(model, x, target, method="occlusion")   # an Attribution: values, target, score, delta
    interp.methods()                                       # {name: one-line description}

Captum does the work for integrated gradients, guided backprop, DeepLIFT, occlusion
and Grad-CAM. What this module adds: one way to give a target
(:func:`interp._checks.resolve_target`), input checks with clear errors, models of
several inputs (a tuple or a dict: attributions come back per input, in the same
structure; see :mod:`interp.space`), token models explained through their embedding
layer (one score per token), Grad-CAM upsampled to the input, DeepLIFT on models that
call one activation module several times (torchvision's ResNets: each call gets a copy
of its own while DeepLIFT runs), and a model left exactly as it was (hooks,
attributes, parameters, buffers, gradients, train/eval mode), also after an error.
Analyses of one model run one at a time (Captum's hooks live on its modules); other
models' run beside them (:func:`interp.space.exclusive`).

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
import copy
import importlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._checks import check_batch, check_finite, refuse_batch_statistics, resolve_target
from .capture import intervene, module_names, recording
from .errors import InputError, InterpError, UnknownNameError
from .inputs import Inputs, as_inputs, blame, per_input
from .memory import start_memory_reuse
from .modules import hooked
from .space import Space, as_found, exclusive, prepare

# Captum announces, on every call, hooks that it removes again (and we check that it does)
warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations", category=UserWarning)
warnings.filterwarnings("ignore", message="Setting forward, backward hooks and attributes on non-linear",
                        category=UserWarning)

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
    values: Any                  # a tensor shaped like the input; per input (tuple or dict) for several
    target: torch.Tensor
    score: torch.Tensor
    delta: torch.Tensor | None = None
    options: dict = field(default_factory=dict)
    embedding: Any = None        # the embedding layer of token ids (a dict by input for several inputs)
    seconds: float = 0.0

    @property
    def label(self) -> str:
        """The method with the options that shape its result, in words, e.g.
        ``integrated_gradients (steps 64)`` or ``occlusion (window 3×3)``."""
        shown = {k: v for k, v in self.options.items() if k in LABEL_OPTIONS and v is not None}
        inner = ", ".join(f"{k} {option_text(v)}" for k, v in shown.items())
        return f"{self.method} ({inner})" if inner else self.method


LABEL_OPTIONS = ("steps", "samples", "noise", "window", "layer", "composite")


def option_text(v: Any) -> str:
    """An option's value as a figure shows it: ``0.15``, a size per dimension as ``3×3``
    (``1`` for one dimension), per input ``image: 3×3 · mask: 1``; ``default`` for None."""
    if v is None:
        return "default"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (tuple, list)):
        return "×".join(option_text(i) for i in v)
    if isinstance(v, dict):
        return " · ".join(f"{k}: {option_text(i)}" for k, i in v.items())
    return str(v)


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


def _per_input_check(check: Callable, expected: str) -> Callable:
    """``check`` for a value, or for each value of a dict by input name (models of several inputs)."""
    def checked(v) -> str | None:
        if isinstance(v, dict):
            bad = next((k for k, i in v.items() if check(i) is not None), None)
            return None if bad is None else f"{expected} (or a dict of them by input name; {bad!r} is not)"
        return None if check(v) is None else f"{expected} (or a dict of them by input name)"
    return checked


def _one_window(v) -> str | None:
    if v is None or _positive_int(v) is None:
        return None
    if isinstance(v, (tuple, list)) and v and all(_positive_int(i) is None for i in v):
        return None
    return "no"


def _one_baseline(v) -> str | None:
    if v is None or isinstance(v, torch.Tensor):
        return None
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return None if ok else "no"


_window = _per_input_check(_one_window, "expected None, an integer >= 1 or a tuple of them")
_baseline = _per_input_check(_one_baseline, "expected None, a number or a tensor (a token id for token inputs)")


def _layer(v) -> str | None:
    return None if v is None or isinstance(v, str) else "expected a module path such as 'features.3'"


def _bool(v) -> str | None:
    return None if isinstance(v, bool) else "expected True or False"


BASELINE = Option(None, _baseline, "reference input: a number or tensor (default 0); for token "
                                   "inputs a token id whose embedding is used (default: zero embedding)")


# ---------------------------------------------------------------------------- targets and baselines

def _at_target(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each sample's score for its target: (batch, K) scores, (batch,) targets -> (batch,)."""
    return scores.gather(1, target[:, None])[:, 0]


class _SummedTarget(nn.Module):
    """The sum over the batch of each sample's target score, as one number: its gradient
    is each sample's own (samples do not mix), and Captum then seeds one backward pass
    instead of one per sample (its ``torch.unbind`` of the outputs cost 30% of integrated
    gradients on the zoo CNN). The targets travel as a forward argument, so Captum
    expands them with the inputs."""

    def __init__(self, space: Space):
        super().__init__()
        self.scores = space.forward
        self.explained = len(space.inputs)

    def forward(self, *args) -> torch.Tensor:
        inputs, (target, *constants) = args[:self.explained], args[self.explained:]
        return _at_target(self.scores(*inputs, *constants), target).sum().reshape(1)


def _summed(space: Space, target: torch.Tensor) -> tuple[nn.Module, tuple]:
    """(forward, additional forward arguments) of :class:`_SummedTarget` for Captum."""
    return _SummedTarget(space), (target, *space.constants)


def _completeness_gap(space: Space, target: torch.Tensor, values: tuple, reference: tuple) -> torch.Tensor:
    """Σ values − (f(x) − f(baseline)) per sample (over every input), from one forward pass on
    the baseline."""
    with torch.enable_grad():  # the path the attributions took (no inference fast paths)
        at_reference = _at_target(space.run(reference).detach(), target)
    at_input = _at_target(space.scores, target)
    return _total(values) - (at_input - at_reference)


def _total(values) -> torch.Tensor:
    """Σ over every input and position, per sample."""
    return sum(v.detach().flatten(1).sum(1) for v in values)


def _references(space: Space, baseline) -> tuple[torch.Tensor, ...]:
    """The baseline of each explained tensor, shaped like it (``baseline``: given once, or per
    input, see :func:`interp.inputs.per_input`)."""
    given = per_input(baseline, space.structure, "baseline")
    out = []
    for name, slot, b in zip(space.structure.names, space.slots, given):
        if slot is None:
            continue
        out.append(_reference(space, slot, b, name))
    return tuple(out)


def _reference(space: Space, slot: int, baseline, name: str) -> torch.Tensor:
    inputs = space.inputs[slot].detach()
    if baseline is None:
        return torch.zeros_like(inputs)
    embedding = space.embeddings[slot]
    if embedding is not None:
        if not isinstance(baseline, int) or isinstance(baseline, bool):
            raise InputError(f"for token inputs the baseline is a token id whose embedding is used; got "
                             f"{baseline!r}")
        layer = module_names(space.model)[embedding]
        ids = space.constants[space.forward.plan[space.slots.index(slot)][2]]
        n = getattr(layer, "num_embeddings", None)
        if n is not None and not 0 <= baseline < n:
            raise InputError(f"baseline token id {baseline} is out of range for an embedding of {n} tokens")
        with torch.no_grad():
            e = layer(torch.full_like(ids, baseline))
        return e.detach().expand_as(inputs).clone()
    if isinstance(baseline, (int, float)):
        return torch.full_like(inputs, float(baseline))
    b = baseline.detach().to(device=inputs.device, dtype=inputs.dtype)
    check_finite(b, "the baseline")
    try:
        return torch.broadcast_to(b, inputs.shape).clone()
    except RuntimeError:
        where = "" if space.structure.single else f" of {name}"
        raise InputError(f"baseline{where} of shape {tuple(b.shape)} does not broadcast to the input's "
                         f"{tuple(inputs.shape)}; expected one sample's shape {tuple(inputs.shape[1:])} "
                         f"or the batch's") from None


# ---------------------------------------------------------------------------- the methods
# Each method takes the space, the targets and its options and returns (values, delta):
# ``values`` one tensor per explained tensor of the space (a tuple), ``delta`` per sample or None.

def _input_gradient(space: Space, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
    selected = _at_target(space.graph, target).sum()
    return torch.autograd.grad(selected, space.inputs)


def _gradient(space, target, opts):
    return _input_gradient(space, target), None


def _saliency(space, target, opts):
    return tuple(g.abs() for g in _input_gradient(space, target)), None


def _input_x_gradient(space, target, opts):
    return tuple(g * a.detach() for g, a in zip(_input_gradient(space, target), space.inputs)), None


def _smoothgrad(space, target, opts):
    """Smilkov et al. 2017: the mean gradient over copies ``x + N(0, sigma^2)``, where sigma is
    ``noise`` times the sample's own value range (max - min; 1 for a constant sample), per input.

    Written here rather than with Captum's ``NoiseTunnel``, which takes one sigma for the
    whole batch and draws the noise of all samples in one call, so that a sample's map
    changes with the batch it is in (a report's grid and the dashboard's single sample
    disagreed). Here one noise pattern per input is drawn from a generator seeded with
    ``seed`` (the global random state is not touched) and scaled per sample, so a sample
    gets the same map alone or in any batch."""
    inputs = tuple(a.detach() for a in space.inputs)
    n, k = len(inputs[0]), opts["samples"]
    generator = torch.Generator().manual_seed(opts["seed"])
    sigmas, patterns = [], []
    for a in inputs:
        flat = a.flatten(1)
        spread = flat.max(1).values - flat.min(1).values
        sigmas.append(opts["noise"] * torch.where(spread > 0, spread, torch.ones_like(spread)))
        patterns.append(torch.randn((k, *a.shape[1:]), generator=generator, dtype=a.dtype).to(a.device))
    device = inputs[0].device
    sample = torch.arange(n, device=device).repeat_interleave(k)  # row r: sample[r] + noise copy[r]
    copy = torch.arange(k, device=device).repeat(n)
    totals = [torch.zeros_like(a) for a in inputs]
    for start in range(0, n * k, ROWS_PER_EVAL):  # bounded memory whatever n and k
        i, c = sample[start:start + ROWS_PER_EVAL], copy[start:start + ROWS_PER_EVAL]
        noisy = tuple((a[i] + s[i].view(-1, *([1] * (a.ndim - 1))) * p[c]).requires_grad_(True)
                      for a, s, p in zip(inputs, sigmas, patterns))
        with torch.enable_grad():
            scores = _at_target(space.run(noisy, i), target[i])
            grads = torch.autograd.grad(scores.sum(), noisy)
        for total, g in zip(totals, grads):
            total.index_add_(0, i, g)
    return tuple(t / k for t in totals), None


def _integrated_gradients(space, target, opts):
    from captum.attr import IntegratedGradients

    batch = opts["internal_batch_size"]
    if batch is None and len(space.inputs[0]) * opts["steps"] > ROWS_PER_EVAL:
        batch = max(len(space.inputs[0]), ROWS_PER_EVAL)
    reference = _references(space, opts["baseline"])
    forward, extra = _summed(space, target)
    values = IntegratedGradients(forward).attribute(
        tuple(a.detach().requires_grad_() for a in space.inputs), baselines=reference, additional_forward_args=extra,
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
        tuple(a.detach().requires_grad_() for a in space.inputs), target=target,
        additional_forward_args=space.constants or None)
    return values, None


class _PerCall(nn.Module):
    """A parameter-free module called several times per forward, as one copy per call (while
    DeepLIFT runs: Captum keeps each module's input and output on the module, so a module
    called twice loses its first call). ``calls`` counts the calls of the current forward."""

    def __init__(self, module: nn.Module, calls: int):
        super().__init__()
        self.copies = nn.ModuleList(copy.deepcopy(module) for _ in range(calls))
        self.calls = 0

    def forward(self, *args, **kwargs):
        i = min(self.calls, len(self.copies) - 1)
        self.calls += 1
        return self.copies[i](*args, **kwargs)


@contextlib.contextmanager
def _one_module_per_call(space: Space, types: tuple):
    """Each module of ``types`` that one forward calls several times replaced, where its parents
    hold it, by a :class:`_PerCall` of as many copies (parameter-free modules only: the
    copies compute the same function); put back on exit."""
    counts: dict[int, int] = {}
    model = space.model
    candidates = {n: m for n, m in module_names(model).items()
                  if isinstance(m, types) and next(m.parameters(), None) is None and n != "model"}
    if not candidates:
        yield
        return

    def count(name, _args, _out):
        counts[id(candidates[name])] = counts.get(id(candidates[name]), 0) + 1

    rows = torch.zeros(2, dtype=torch.long)  # copies of the first sample (a squeezing forward keeps a batch)
    with hooked(candidates, after={n: count for n in candidates}), torch.no_grad():
        space.run(tuple(a.detach()[rows] for a in space.inputs), rows)
    reused = {i: c for i, c in counts.items() if c > 1}
    swaps, wrappers = [], {}
    for parent in model.modules():
        for child_name, child in list(parent._modules.items()):
            if child is not None and id(child) in reused:
                wrapper = wrappers.setdefault(id(child), _PerCall(child, reused[id(child)]))
                swaps.append((parent, child_name, child))
                parent._modules[child_name] = wrapper

    def reset(_module, _args):
        for w in wrappers.values():
            w.calls = 0

    handle = model.register_forward_pre_hook(reset) if wrappers else None
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()
        for parent, child_name, child in swaps:
            parent._modules[child_name] = child


def _deeplift(space, target, opts):
    from captum.attr import DeepLift
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    with _one_module_per_call(space, tuple(SUPPORTED_NON_LINEAR)):
        try:
            values, delta = DeepLift(space.forward).attribute(
                tuple(a.detach().requires_grad_() for a in space.inputs),
                baselines=_references(space, opts["baseline"]), target=target,
                additional_forward_args=space.constants or None, return_convergence_delta=True)
        except RuntimeError as exc:
            if "used more than once" not in str(exc):
                raise
            raise InterpError("deeplift needs each activation module (ReLU, Sigmoid, ...) to be called once per "
                              "forward on the same shapes, and this model calls one in ways DeepLIFT cannot follow; "
                              "give each use its own module, or choose another method") from None
    return values, delta


def _positions(shape: tuple[int, ...], tokens: bool) -> tuple[int, ...]:
    """The sample dimensions a window slides over: tokens for token inputs, the spatial
    dimensions of (C, ...) inputs, every dimension of a flat feature vector."""
    if tokens:
        return shape[:-1]
    return shape[1:] if len(shape) >= 2 else shape


def _windows(shape: tuple[int, ...], tokens: bool, window, stride, name: str = ""
             ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Occlusion's (window, stride) over one input's positions, defaults filled in and checked."""
    positions = _positions(shape, tokens)
    small = min(positions)
    default = 1 if tokens or len(positions) < 2 else max(2, small // 5)
    of = f" of {name}" if name else ""

    def expand(v, what: str, fallback: int) -> tuple[int, ...]:
        v = fallback if v is None else v
        t = (v,) * len(positions) if isinstance(v, int) else tuple(v)
        if len(t) != len(positions):
            raise InputError(f"occlusion {what} {v!r}{of} has {len(t)} sizes; the input has {len(positions)} "
                             f"positional dimensions {positions}")
        return t

    window = expand(window, "window", default)
    if any(w > p for w, p in zip(window, positions)):
        raise InputError(f"occlusion window {window} is larger than the input{of} {positions}; expected at most "
                         f"the input's size in every dimension")
    stride = expand(stride, "stride", max(1, min(window) // 2))
    if any(st > w for st, w, p in zip(stride, window, positions) if w < p):
        raise InputError(f"occlusion stride {stride} is larger than the window {window}{of}: positions between "
                         "windows would never be occluded; expected a stride of at most the window")
    return window, stride


def _occlusion(space, target, opts):
    from captum.attr import Occlusion

    names = [n for n, s in zip(space.structure.names, space.slots) if s is not None]
    windows = dict(zip(space.structure.names, per_input(opts["window"], space.structure, "window")))
    strides = dict(zip(space.structure.names, per_input(opts["stride"], space.structure, "stride")))
    shapes, used, sliding, steps = space.shapes(), {}, [], []
    for name, shape, embedding in zip(names, shapes, space.embeddings):
        tokens = embedding is not None
        window, stride = _windows(shape, tokens, windows[name], strides[name],
                                  "" if space.structure.single else name)
        used[name] = (window, stride)
        if tokens:  # a window covers whole embedding vectors
            window, stride = window + shape[-1:], stride + shape[-1:]
        elif len(shape) >= 2:  # and every channel
            window, stride = shape[:1] + window, (shape[0],) + stride
        sliding.append(window)
        steps.append(stride)
    if space.structure.single:  # what was used, defaults filled in
        opts["window"], opts["stride"] = used[names[0]]
    else:
        opts["window"] = {n: w for n, (w, _) in used.items()}
        opts["stride"] = {n: st for n, (_, st) in used.items()}
    values = Occlusion(space.forward).attribute(
        tuple(a.detach() for a in space.inputs), sliding_window_shapes=tuple(sliding), strides=tuple(steps),
        baselines=_references(space, opts["baseline"]), target=target,
        additional_forward_args=space.constants or None,
        perturbations_per_eval=max(1, min(64, ROWS_PER_EVAL // len(space.inputs[0]))))
    return values, None


def _spatial(shape: tuple[int, ...], layout: str) -> bool:
    return layout == "channels" and len(shape) >= 3


def _maps(model: nn.Module, x, layers=None) -> list[tuple[str, tuple[int, ...], str, int]]:
    """(layer, output shape, layout, calls) of each tensor output on copies of the first
    sample, in call order."""
    inputs = as_inputs(x, model)
    rec = recording(model, lambda: inputs.probe().call(model), layers, track_layout=True)
    return [(rec.layer_of[n], tuple(t[0].movedim(rec.batch_axis[n], 0).shape), rec.layout[n], len(t))
            for n, t in rec.calls.items() if n == rec.layer_of[n]]


def spatial_layers(model: nn.Module, x) -> list[str]:
    """Module paths whose output on ``x`` is a spatial map (batch, channels, positions...)
    computed once per forward, in call order: the layers Grad-CAM can weight."""
    refuse_batch_statistics(model, "layer list")
    return [lay for lay, shape, layout, calls in _maps(model, x) if calls == 1 and _spatial(shape, layout)]


def default_cam_layer(model: nn.Module, x) -> str | None:
    """Grad-CAM's default layer: the last convolution's output, or the parameter-free module
    right after it when that keeps its shape (the rectified maps, as in Selvaraju et al.);
    ``None`` when the model has no spatial convolution output."""
    refuse_batch_statistics(model, "layer choice")
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


def _cam_layer(space: Space, layer: str | None) -> str:
    """The layer Grad-CAM weights: the one asked for, checked to be spatial and called once,
    or the default (:func:`default_cam_layer`)."""
    x = space.structure
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


def _inputs_reaching(space: Space, layer: str) -> set[int]:
    """The explained tensors ``layer``'s output depends on (autograd, on one sample)."""
    rows = torch.zeros(2, dtype=torch.long)  # copies of the first sample (a squeezing forward keeps a batch)
    leaves = tuple(a.detach()[rows].requires_grad_(True) for a in space.inputs)
    outputs: list[torch.Tensor] = []

    def take(_name, _args, output):
        if isinstance(output, torch.Tensor) and not outputs:
            outputs.append(output)

    with intervene(space.model, [layer], take), torch.enable_grad():
        space.run(leaves, rows)
    if not outputs or not outputs[0].requires_grad:
        return set()
    grads = torch.autograd.grad(outputs[0].sum(), leaves, allow_unused=True)
    return {i for i, g in enumerate(grads) if g is not None}


def _cam_size(shape: tuple[int, ...], tokens: bool) -> tuple[int, ...]:
    """The positions of one input a Grad-CAM map is upsampled to: tokens, features, or space."""
    return shape[:-1] if tokens else shape if len(shape) == 1 else shape[1:]


def _grad_cam(space, target, opts):
    from captum.attr import LayerAttribution, LayerGradCam

    layer = _cam_layer(space, opts["layer"])
    opts["layer"] = layer
    module = module_names(space.model)[layer]
    maps = LayerGradCam(space.forward, module).attribute(
        tuple(a.detach().requires_grad_() for a in space.inputs), target=target,
        additional_forward_args=space.constants or None, relu_attributions=opts["relu"])   # (batch, 1, positions...)
    sizes = [_cam_size(shape, e is not None) for shape, e in zip(space.shapes(), space.embeddings)]
    fits = [i for i, size in enumerate(sizes) if len(size) == maps.ndim - 2]
    if len(space.inputs) > 1:  # the map belongs to the inputs the layer reads, not to any of its rank
        fits = [i for i in fits if i in _inputs_reaching(space, layer)]
    if not fits:
        raise InterpError(f"grad_cam: layer {layer!r} has {maps.ndim - 2} positional dimensions, and no input it "
                          f"reads has as many ({', '.join(str(len(s)) for s in sizes)}); choose a layer whose maps "
                          "match the input")
    fits = fits[:1]
    values: list = [None] * len(space.inputs)
    for i in fits:
        size, shape = sizes[i], space.shapes()[i]
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
        up = LayerAttribution.interpolate(maps.detach(), size, interpolate_mode=mode)
        tokens = space.embeddings[i] is not None
        values[i] = up[:, 0] if tokens or len(shape) == 1 else up.expand(-1, shape[0], *size).contiguous()
    return tuple(values), None


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
           }, per_token="none"),
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


# ---------------------------------------------------------------------------- the verb

def explain(model: nn.Module, x, target="predicted", method: str = "integrated_gradients",
            *, embedding=None, **options) -> Attribution:
    """Attribute the ``target`` score of ``model`` at ``x`` to the input, with ``method``.

    ``x``: a batch (float values, or integer token ids explained through the embedding
    layer that reads them; ``embedding=`` names it when several could), or several inputs
    as a tuple or a dict of such batches (attributions then come back per input, in the
    same structure; inputs that are neither float nor token ids, such as masks, get None).
    ``target``: an output index, one index per sample, or ``"predicted"``. ``options``:
    the method's (see :func:`method_options`; with several inputs, ``baseline``, ``window``
    and ``stride`` may be given per input as a dict by name). Returns an
    :class:`Attribution` whose ``values`` are shaped like ``x``. The model runs in the mode
    it is in, and is left as it was.
    """
    structure = check_batch(model, x, "explain")
    m = _method(method)
    opts = _options(m, options)
    if not m.graph:
        importlib.import_module("captum.attr")  # imported on first use, kept out of the timing
    start_memory_reuse()
    start = time.perf_counter()
    if torch.is_inference_mode_enabled():
        raise InterpError("attribution needs autograd, and this call runs inside torch.inference_mode(); "
                          "call it outside that block")
    refuse_batch_statistics(model, random=True)
    with blame(model, structure, f"{m.name}"):
        space, t, values, delta = _computed(model, structure, target, m, opts, embedding)
    per_explained = []
    for value, e in zip(values, space.embeddings):
        if value is not None:
            value = value.detach()
            if e is not None and m.per_token != "none":
                value = value.sum(-1) if m.per_token == "sum" else value.mean(-1)
        per_explained.append(value)
    out = []
    for name, given, slot in zip(structure.names, structure.tensors, space.slots):
        value = None if slot is None else per_explained[slot]
        if value is not None:
            if value.shape != given.shape:  # a method that broke the contract: say so instead of returning it
                raise RuntimeError(f"{m.name} returned {tuple(value.shape)} for {name} of {tuple(given.shape)}")
            value = value.to(given.dtype if given.is_floating_point() else torch.float32)
        out.append(value)
    return Attribution(method=m.name, values=structure.pack(out), target=t, score=_at_target(space.scores, t),
                       delta=None if delta is None else delta.detach().reshape(-1),
                       options=opts, embedding=space.embedding, seconds=time.perf_counter() - start)


def _computed(model, structure: Inputs, target, m: Method, opts: dict, embedding, at=None):
    """(space, target, values, delta) of method ``m``; ``values`` one per explained tensor (for
    token ids still per embedding dimension)."""
    with as_found(model):
        space = prepare(model, structure, embedding, m.graph, at)
        t = resolve_target(target, space.scores)
        try:
            values, delta = m.compute(space, t, opts)
        except AssertionError as exc:  # Captum checks its arguments with asserts
            raise InputError(f"{m.name}: {exc}") from exc
    return space, t, tuple(values), delta


def attribute_at_embeddings(model: nn.Module, tokens: torch.Tensor, values: torch.Tensor, target,
                            method: str, *, embedding: str | None = None, **options) -> torch.Tensor:
    """Attributions of a token model's ``target`` score to its embedding values, shaped like
    them (batch, tokens, dim): the model run on ``tokens`` with the embedding layer's output
    replaced by ``values`` (for the explanation sensitivity, which perturbs there)."""
    structure = check_batch(model, tokens, "explain")
    m = _method(method)
    opts = _options(m, options)
    check_finite(values, "the embedding values")
    if torch.is_inference_mode_enabled():
        raise InterpError("attribution needs autograd, and this call runs inside torch.inference_mode(); "
                          "call it outside that block")
    refuse_batch_statistics(model, random=True)
    if not structure.single or tokens.is_floating_point():
        raise InputError("attribute_at_embeddings takes one tensor of token ids; float inputs are attributed "
                         "directly")
    with blame(model, structure, m.name):
        return _computed(model, structure, target, m, opts, embedding, values)[2][0].detach()


def attribute(model: nn.Module, x, target="predicted", method: str = "integrated_gradients",
              *, embedding=None, **options):
    """Attributions of the ``target`` score to ``x``, shaped like ``x`` (per input, in the
    same structure, for several inputs; see :func:`explain`, which also returns the target,
    the score and the completeness gap)."""
    return explain(model, x, target, method, embedding=embedding, **options).values


__all__ = ["attribute", "attribute_at_embeddings", "explain", "methods", "method_options", "spatial_layers",
           "default_cam_layer", "Attribution", "Method", "METHODS", "Option", "as_found", "exclusive"]
