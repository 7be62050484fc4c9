"""Forward hooks that record layer activations: the one hook mechanism of interp.

    with interp.capture(model, layers=["features.*", nn.Linear]) as rec:
        model(x)
    rec.activations        # {"features.0": tensor, "features.1": tensor, ...}

Layers are chosen as module paths, glob patterns over module paths, or module
types (``None``: every leaf module). Names follow ``model.named_modules()``.

- A module called k times in one forward records k tensors: ``rec.calls[name]``
  is the list in call order, and ``rec.activations`` names them ``name:0`` ...
  ``name:k-1`` (a module called once keeps its plain name).
- Outputs that are tuples, dicts, named tuples or dataclasses are recorded per
  part with readable sub-names: ``lstm.out`` / ``lstm.h`` / ``lstm.c`` for
  ``nn.LSTM``, ``attn.out`` / ``attn.weights`` for ``nn.MultiheadAttention``,
  ``name.0``, ``name.1`` ... otherwise.
- ``reduce="mean"`` (or ``"max"``, or a function) keeps only a summary per
  sample, e.g. one value per channel of a feature map or per unit of a sequence.
- ``nn.MultiheadAttention`` is asked for its per-head weights, so attention maps
  are recorded even inside ``nn.TransformerEncoderLayer`` (which asks for none).
  Hugging Face attention modules (``BertSelfAttention``, ``GPT2Attention``,
  ``LlamaAttention``, ``ViTAttention`` ..., recognised by their shape, not by
  importing transformers) give ``attn.out`` / ``attn.weights`` too: while they are
  recorded, their config runs the "eager" implementation, the one that computes
  the weights (``sdpa`` returns none), and is put back on exit.
- Recorded tensors are detached. The body runs under ``torch.no_grad()`` unless
  ``enable_grad=True``; ``grads=True`` also records the gradient of every
  recorded output when a backward pass runs through it. A record the forward is
  about to overwrite in place (``ReLU(inplace=True)``, ``out += identity``) is copied
  first (:mod:`interp.inplace`), so every record holds what its layer gave.
- Batch axes are learned from the model's inputs as the forward runs: a time-major
  recurrent output, and a Linear applied to it, have theirs on axis 1
  (``rec.batch_axis``), also when time and batch have the same length.
- Only forwards run by the thread that entered the block are recorded, so a
  model shared with other threads (a web server's) does not leak into it.
- Every hook is removed on exit, also when the body raised; the model's
  parameters and train/eval mode are never touched.

``intervene`` uses the same hooks to read or replace a layer's output while the
model runs (attribution through an embedding layer, layer ablation). The module
names and :func:`hooked`, the helper that registers hooks which change values, live
in :mod:`interp.modules` (the input checks need them too) and are re-exported here.

Written here rather than taken from a library: Captum's layer hooks record one
layer per call, TorchLens traces every tensor operation at large overhead; what
we need is plain ``register_forward_hook`` with naming, selection and cleanup
done once, correctly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ._checks import refuse_batch_statistics
from .errors import CaptureError, InputError, ModelError, UnknownNameError
from .inplace import may_write_in_place, storage_of, unwatched, watch_always, watch_writes, watched
from .inputs import ModelRaised, as_inputs, blame, check_model
from .memory import start_memory_reuse
from .modules import ROOT_NAME, hooked, is_pattern, module_names

LayerSpec = str | type | Sequence[str | type] | None

# readable names of the parts of well-known tuple outputs
_TUPLE_NAMES: list[tuple[type, tuple]] = [
    (nn.LSTM, ("out", ("h", "c"))),
    (nn.LSTMCell, ("h", "c")),
    (nn.GRU, ("out", "h")),
    (nn.RNN, ("out", "h")),
    (nn.MultiheadAttention, ("out", "weights")),
]

# modules whose children are parameter holders, not called as modules: treated as leaves
ATOMIC = (nn.MultiheadAttention,)


def leaf_names(model: nn.Module, modules: dict[str, nn.Module] | None = None) -> list[str]:
    """Paths of the modules that do the work: those without children, and atomic ones
    (``nn.MultiheadAttention``, whose ``out_proj`` is never called as a module)."""
    if isinstance(model, ATOMIC):
        return [ROOT_NAME]
    modules = module_names(model) if modules is None else modules
    inside_atomic = tuple(f"{n}." for n, m in modules.items() if isinstance(m, ATOMIC))
    return [n for n, m in modules.items()
            if (isinstance(m, ATOMIC) or not any(c is not None for c in m._modules.values()))
            and not n.startswith(inside_atomic)]


def select_layers(model: nn.Module, layers: LayerSpec = None,
                  modules: dict[str, nn.Module] | None = None) -> list[str]:
    """Module paths chosen by ``layers`` (see the module docstring), in model order.

    Raises :class:`UnknownNameError` (listing close matches) for a name, pattern
    or type that matches no module.
    """
    modules = module_names(model) if modules is None else modules
    if layers is None:
        return leaf_names(model, modules)
    if isinstance(layers, (str, type)):
        layers = [layers]
    if not isinstance(layers, (list, tuple, set)):
        raise InputError(f"layers must be None, a module path, a glob pattern, an nn.Module type "
                         f"or a list of them; got {layers!r} of type {type(layers).__name__}")
    chosen: set[str] = set()
    for spec in layers:
        if isinstance(spec, type) and issubclass(spec, nn.Module):
            found = {n for n, m in modules.items() if isinstance(m, spec)}
            if not found:
                types = sorted({type(m).__name__ for m in modules.values()})
                raise UnknownNameError("layer type", spec.__name__, types,
                                       hint="no module of that type in the model")
        elif isinstance(spec, str) and is_pattern(spec):
            found = {n for n in modules if fnmatch.fnmatchcase(n, spec)}
            if not found:
                raise UnknownNameError("layer pattern", spec, list(modules),
                                       hint="the pattern matches no module path")
        elif isinstance(spec, str):
            if spec not in modules:
                raise UnknownNameError("layer", spec, list(modules))
            found = {spec}
        else:
            raise InputError(f"layers must be module paths, glob patterns or nn.Module types; "
                             f"got {spec!r} of type {type(spec).__name__}")
        chosen |= found
    return [n for n in modules if n in chosen]


def _attention_config(module: nn.Module) -> Any:
    """The config of a Hugging Face attention module (``BertSelfAttention``, ``GPT2Attention``,
    ``LlamaAttention``, ``ViTAttention`` ...: a class named ``*Attention`` whose ``config`` says
    which attention implementation runs), or of the one it wraps (``BertAttention``); None for
    any other module. Known by shape, so transformers is never imported."""
    if not type(module).__name__.endswith("Attention"):
        return None
    for m in (module, *module._modules.values()):
        config = getattr(m, "config", None)
        if config is not None and hasattr(config, "_attn_implementation"):
            return config
    return None


def _is_attention_output(output: Any) -> bool:
    """A Hugging Face attention output: (attention output, weights (N, heads, Q, K) or None)."""
    return (isinstance(output, tuple) and not hasattr(output, "_fields") and len(output) >= 2
            and isinstance(output[0], torch.Tensor)
            and (output[1] is None or isinstance(output[1], torch.Tensor) and output[1].ndim == 4))


def _part_names(module: nn.Module, output: Any) -> Any:
    for cls, names in _TUPLE_NAMES:
        if isinstance(module, cls):
            return names
    if _is_attention_output(output) and _attention_config(module) is not None:
        return ("out", "weights")
    return None


def _flatten(output: Any, names: Any = None, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """(sub-name, tensor) pairs of a module output; sub-name '' for a plain tensor."""
    if isinstance(output, torch.Tensor):
        yield prefix, output
        return

    def join(sub: str) -> str:
        return f"{prefix}.{sub}" if prefix else sub

    if isinstance(output, dict):
        for key, value in output.items():
            yield from _flatten(value, None, join(str(key)))
    elif dataclasses.is_dataclass(output) and not isinstance(output, type):
        for f in dataclasses.fields(output):
            yield from _flatten(getattr(output, f.name), None, join(f.name))
    elif isinstance(output, tuple) and hasattr(output, "_fields"):  # named tuple
        for key, value in zip(output._fields, output):
            yield from _flatten(value, None, join(key))
    elif isinstance(output, (tuple, list)):
        for i, value in enumerate(output):
            sub = names[i] if isinstance(names, tuple) and i < len(names) else None
            if isinstance(sub, tuple):  # nested names, e.g. LSTM's (h, c)
                yield from _flatten(value, sub, prefix)
            else:
                yield from _flatten(value, None, join(sub if isinstance(sub, str) else str(i)))
    # anything else (None, ints, strings) carries no activation


def replace_part(output: Any, module: nn.Module, sub: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``module``'s ``output`` with its part ``sub`` (named as :func:`capture` names it, e.g.
    ``"h"`` of an LSTM) replaced by ``fn(part)``, the rest as it was; None when the output
    has no such part."""
    found = []

    def walk(value: Any, names: Any, prefix: str) -> Any:
        if isinstance(value, torch.Tensor):
            if prefix == sub:
                found.append(prefix)
                return fn(value)
            return value

        def join(part: str) -> str:
            return f"{prefix}.{part}" if prefix else part

        if isinstance(value, dict):
            return {k: walk(v, None, join(str(k))) for k, v in value.items()}
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # named tuple
            return type(value)(*(walk(v, None, join(k)) for k, v in zip(value._fields, value)))
        if isinstance(value, (tuple, list)):
            parts = []
            for i, v in enumerate(value):
                name = names[i] if isinstance(names, tuple) and i < len(names) else None
                parts.append(walk(v, name, prefix) if isinstance(name, tuple)
                             else walk(v, None, join(name if isinstance(name, str) else str(i))))
            return type(value)(parts)
        return value

    new = walk(output, _part_names(module, output), "")
    return new if found else None


# modules whose outputs put channels right after the batch axis, also when 3-D (N, C, L)
CHANNELS_FIRST = (
    nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
    nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._LPPoolNd, nn.GroupNorm,
    nn.modules.dropout._DropoutNd, nn.Upsample, nn.PixelShuffle, nn.LocalResponseNorm,
)
# modules whose outputs put features on the last axis, whatever their rank
FEATURES_LAST = (
    nn.Linear, nn.Bilinear, nn.Embedding, nn.EmbeddingBag, nn.LayerNorm, nn.RNNBase, nn.RNNCellBase,
    nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.TransformerEncoder,
    nn.TransformerDecoder,
)
REDUCTIONS = ("mean", "max")
Reduce = str | Callable[[torch.Tensor], torch.Tensor] | None

# How an output's axes are laid out once the batch axis is first:
#   "channels"   (N, C, *positions)  units are channels (convolutions, pooling, ...)
#   "last"       (N, *positions, F)  units are the last axis (linear, embeddings, RNN outputs, ...)
#   "attention"  (N, [heads,] Q, K)  weights over keys K for each query Q
#   "stack"      (N, layers, H)      an RNN's final h / c per layer
LAYOUTS = ("channels", "last", "attention", "stack")


def own_batch_axis(module: nn.Module, sub: str) -> int | None:
    """Where ``module`` puts the batch axis in its output part ``sub``, for the modules that
    say so themselves (recurrent layers, attention: ``batch_first``); None for the others,
    whose outputs keep the axis of their input."""
    if isinstance(module, nn.RNNBase):
        if sub in ("h", "c"):
            return 1  # (layers * directions, N, hidden), whatever batch_first says
        return 0 if module.batch_first else 1
    if isinstance(module, nn.MultiheadAttention) and sub == "out":
        return 0 if module.batch_first else 1
    if sub in ("out", "weights") and _attention_config(module) is not None:
        return 0  # Hugging Face: batch first, and the hidden states may come as a keyword
    return None


def batch_axis_of(module: nn.Module, sub: str) -> int:
    """Where the batch axis is in ``module``'s output part ``sub`` by the module alone (0 unless
    it says otherwise); :attr:`Recording.batch_axis` has what a forward showed."""
    axis = own_batch_axis(module, sub)
    return 0 if axis is None else axis


def own_layout(module: nn.Module, sub: str, ndim: int) -> str | None:
    """The layout ``module`` gives its output part ``sub``, or None when it depends on the
    input (element-wise modules such as ReLU keep whatever layout they are given)."""
    if isinstance(module, nn.RNNBase) and sub in ("h", "c"):
        return "stack"
    if sub == "weights" and (isinstance(module, nn.MultiheadAttention) or _attention_config(module) is not None):
        return "attention"
    if isinstance(module, nn.Softmax) and ndim >= 3 and module.dim in (-1, ndim - 1):
        return "attention"
    if isinstance(module, CHANNELS_FIRST):
        return "channels"
    if isinstance(module, FEATURES_LAST):
        return "last"
    return None


def default_layout(ndim: int) -> str:
    return "channels" if ndim >= 4 else "last"


def reduce_batch_first(t: torch.Tensor, how: str, layout: str) -> torch.Tensor:
    """``mean`` or ``max`` of a batch-first tensor over its positions: space or time for
    ``channels`` and ``last`` layouts (keeping the unit axis), the queries for
    ``attention`` (keeping heads and keys: the attention each key receives), nothing
    for ``stack``. (N, D) stays as is."""
    if t.ndim <= 2 or layout == "stack":
        return t
    if layout == "attention":
        dims: tuple[int, ...] = (t.ndim - 2,)
    elif layout == "channels":
        dims = tuple(range(2, t.ndim))
    else:
        dims = tuple(range(1, t.ndim - 1))
    return t.mean(dims) if how == "mean" else t.amax(dims)


class UnseenWrite(CaptureError, ModelError):
    """A recorded tensor changed in place by a write the source scan did not find."""


class Recording:
    """What one :func:`capture` block recorded."""

    def __init__(self, layers: list[str]):
        self.layers = layers
        self.calls: dict[str, list[torch.Tensor]] = {}
        self.grads: dict[str, list[torch.Tensor | None]] = {}  # filled by backward, per call
        self.layer_of: dict[str, str] = {}  # output name -> the layer that produced it
        self.batch_axis: dict[str, int] = {}  # output name -> axis of the batch in its recorded tensors
        self.source_axis: dict[str, int] = {}  # output name -> axis of the batch in the model's own output
        self.layout: dict[str, str] = {}  # output name -> one of LAYOUTS (axes once batch-first)
        self._versions: dict[str, list[int]] = {}
        self._without_grad: list[str] = []
        self._on_clear: list = []
        self._shared: dict[int, list[tuple[str, int]]] = {}  # storage -> records not copied (copy-on-write)
        self.ambiguous: set[str] = set()  # outputs whose batch axis was a guess between equal lengths

    def _add(self, layer: str, name: str, tensor: torch.Tensor, batch_axis: int) -> int:
        try:
            self.calls[name].append(tensor)
        except KeyError:
            self.calls[name], self._versions[name], self.grads[name] = [tensor], [], []
            self.layer_of.setdefault(name, layer)
            self.batch_axis.setdefault(name, batch_axis)
        self._versions[name].append(tensor._version)
        self.grads[name].append(None)
        return len(self.calls[name]) - 1

    def clear(self) -> None:
        """Forget the recorded tensors (names and layouts stay), e.g. between batches."""
        self._check_unchanged()
        self._shared.clear()
        self.calls.clear()
        self.grads.clear()
        self._versions.clear()
        self._without_grad.clear()
        while self._on_clear:
            self._on_clear.pop()()

    def outputs_of(self, layer: str) -> list[str]:
        """Output names recorded for ``layer`` (itself, or its sub-names for tuple outputs)."""
        return [n for n, owner in self.layer_of.items() if owner == layer]

    @staticmethod
    def _by_call(per_name: dict[str, list]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, tensors in per_name.items():
            if len(tensors) == 1:
                if tensors[0] is not None:
                    out[name] = tensors[0]
            else:
                out.update({f"{name}:{i}": t for i, t in enumerate(tensors) if t is not None})
        return out

    def entries(self) -> Iterator[tuple[str, str, torch.Tensor]]:
        """(activation name, output name, tensor) for every recorded call, in order."""
        for name, tensors in self.calls.items():
            if len(tensors) == 1:
                yield name, name, tensors[0]
            else:
                for i, t in enumerate(tensors):
                    yield f"{name}:{i}", name, t

    @property
    def activations(self) -> dict[str, torch.Tensor]:
        """``{name: tensor}``; a module called k > 1 times gives ``name:0`` ... ``name:k-1``."""
        return self._by_call(self.calls)

    @property
    def gradients(self) -> dict[str, torch.Tensor]:
        """Gradients of the recorded outputs (``grads=True``), named like :attr:`activations`;
        filled when a backward pass through them has run."""
        return self._by_call(self.grads)

    def count(self, name: str) -> int:
        """How many times output ``name`` was recorded."""
        return len(self.calls.get(name, ()))

    def _check_unchanged(self) -> None:
        for name, tensors in self.calls.items():
            for i, (t, v) in enumerate(zip(tensors, self._versions[name])):
                if t._version != v:
                    where = name if len(tensors) == 1 else f"{name}:{i}"
                    raise UnseenWrite(
                        f"activation {where!r} was modified in place after it was recorded, by a write interp did "
                        "not see coming (in code it could not read or did not follow, through .data or a numpy "
                        "view); the model is at fault: record again with interp.capture(..., watch=True) "
                        "(interp.record and interp.collect do so by themselves), copies with clone=True, or write "
                        "that step out of place")

    def __repr__(self) -> str:
        return f"Recording({len(self.calls)} outputs from {len(self.layers)} layers)"


def check_reduce(reduce: Reduce) -> None:
    """An InputError unless ``reduce`` is None, one of REDUCTIONS or a function."""
    if reduce is None or callable(reduce) or reduce in REDUCTIONS:
        return
    raise InputError(f"reduce must be None, one of {', '.join(map(repr, REDUCTIONS))}, or a function "
                     f"tensor -> tensor; got {reduce!r}")


_NEED_WEIGHTS, _AVERAGE = 4, 6  # positions of need_weights / average_attn_weights in MHA.forward


def _attention_pre_hook(owner: int, wanted: dict[int, list]):
    """Forward pre-hook on nn.MultiheadAttention: ask for per-head weights (callers such as
    nn.TransformerEncoderLayer pass need_weights=False) and remember, in ``wanted``, what
    the caller asked for, so :func:`_caller_view` can hand exactly that back."""
    def pre_hook(module, args, kwargs):
        if threading.get_ident() != owner:
            return None
        args = list(args)
        asked = []
        for index, key, default, value in ((_NEED_WEIGHTS, "need_weights", True, True),
                                           (_AVERAGE, "average_attn_weights", True, False)):
            if len(args) > index:
                asked.append(args[index])
                args[index] = value
            else:
                asked.append(kwargs.get(key, default))
                kwargs[key] = value
        wanted.setdefault(id(module), []).append(tuple(asked))
        return tuple(args), kwargs
    return pre_hook


def _caller_view(module: nn.Module, output, wanted: dict[int, list]):
    """The output the caller of nn.MultiheadAttention asked for, from the per-head one."""
    stack = wanted.get(id(module))
    if not stack:
        return None
    need, average = stack.pop()
    out, weights = output
    if not need:
        return out, None
    return out, (weights.mean(dim=1) if average and weights is not None and weights.ndim == 4 else weights)


_EAGER_LOCK = threading.Lock()
_EAGER: dict[int, tuple[int, list]] = {}  # id(config) -> (captures holding it eager, what to put back)


def _attention_settings(config) -> list[tuple[Any, str, Any]]:
    """(config, attribute, value) that say which attention implementation ``config`` and its
    sub-configs run: what setting ``_attn_implementation`` changes (its setter recurses)."""
    settings, todo, seen = [], [config], set()
    while todo:
        c = todo.pop()
        if id(c) in seen:
            continue
        seen.add(id(c))
        key = "_attn_implementation_internal" if "_attn_implementation_internal" in vars(c) else "_attn_implementation"
        settings.append((c, key, getattr(c, key, None)))
        todo.extend(s for k in getattr(c, "sub_configs", None) or () if (s := getattr(c, k, None)) is not None)
    return settings


@contextlib.contextmanager
def _eager_attention(configs: list) -> Iterator[None]:
    """Hugging Face configs set to the "eager" attention implementation (the one that
    computes the weights) for the ``with`` body, then put back, also on error. Counted
    per config, so captures that overlap, in one thread or several, put back the
    user's setting when the last of them ends."""
    held = []
    try:
        for config in configs:
            with _EAGER_LOCK:
                count, saved = _EAGER.get(id(config), (0, None))
                _EAGER[id(config)] = (count + 1, saved or _attention_settings(config))
                held.append(config)
                if not count and config._attn_implementation != "eager":
                    config._attn_implementation = "eager"
        yield
    finally:
        with _EAGER_LOCK:
            for config in held:
                count, saved = _EAGER.pop(id(config))
                if count > 1:
                    _EAGER[id(config)] = (count - 1, saved)
                else:
                    for c, key, value in saved:
                        setattr(c, key, value)


class _BatchAxes:
    """Where the batch axis is in each tensor a forward produces, learned while it runs.

    The batch size comes from the model's own inputs (batch first, as every analysis
    takes them). A module's output keeps the batch axis of the tensor it was given when
    that axis keeps its size (a Linear on a time-major (time, batch, hidden) tensor gives
    (time, batch, classes)); recurrent layers and attention say where theirs is
    (``batch_first``); a transpose or reshape of a known tensor (``tokens.t()``) is found
    by the stride of its batch axis. Only where none of this applies is the axis the one
    axis as long as the batch. So a time-major output is found as such even when time
    and batch have the same length."""

    def __init__(self):
        self.batch: int | None = None
        self.known: dict[tuple[int, int], tuple] = {}  # (data_ptr, numel) -> (tensor's weakref, batch stride, certain)

    def start(self, args: tuple, kwargs: dict) -> None:
        """A forward of the model begins: its inputs set the batch size and have axis 0."""
        tensors = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
        if not tensors:  # inputs nested in a dict or a list
            tensors = [t for t in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if not tensors or tensors[0].ndim == 0:
            return
        self.batch, self.known = tensors[0].shape[0], {}
        for t in tensors:
            if t.ndim and t.shape[0] == self.batch:
                self._remember(t, 0)

    def _remember(self, t: torch.Tensor, axis: int, certain: bool = True) -> None:
        if t.numel():  # a weak reference: memory freed and reused by another tensor is not taken for this one
            self.known[(t.data_ptr(), t.numel())] = (weakref.ref(t), t.stride(axis), certain)

    def _lookup(self, t: torch.Tensor) -> tuple[int, bool] | None:
        """(axis, certain) of a tensor in known memory (itself, or a transpose or reshape of it)."""
        found = self.known.get((t.data_ptr(), t.numel()))
        if found is None or found[0]() is None:
            return None
        _, stride, certain = found
        strides = t.stride()
        if t.ndim and t.shape[0] == self.batch and strides[0] == stride and (
                t.ndim == 1 or strides[1] != stride or t.shape[1] != self.batch):  # batch first: the usual case
            return 0, certain
        axes = [i for i, (n, s) in enumerate(zip(t.shape, strides)) if n == self.batch and s == stride]
        return (axes[0], certain) if len(axes) == 1 else None

    def of(self, module: nn.Module, sub: str, t: torch.Tensor, args: tuple) -> tuple[int, bool]:
        """The batch axis of ``module``'s output part ``sub`` (``t``), given its arguments, and
        whether it is certain (False: several axes are as long as the batch and nothing told
        them apart, here or upstream; the first was taken, and :func:`probe_batch_axes` can
        settle it)."""
        axis = own_batch_axis(module, sub)
        if self.batch is None:  # the model's own forward was not seen (a submodule called alone)
            return (0 if axis is None else axis), True
        certain = True
        if axis is None:
            found = self._lookup(t)  # a view of a known tensor (a transpose inside the module)
            if found is None and args and isinstance(args[0], torch.Tensor):
                given = self._lookup(args[0])
                if given is not None and given[0] < t.ndim and t.shape[given[0]] == args[0].shape[given[0]]:
                    found = given
            if found is not None:
                axis, certain = found
        if axis is None:
            sized = [i for i, n in enumerate(t.shape) if n == self.batch]
            axis = sized[0] if sized else 0
            certain = len(sized) <= 1
        if axis < t.ndim and t.shape[axis] == self.batch:
            self._remember(t, axis, certain)
        return axis, certain


def probe_batch_axes(model: nn.Module, x, layers: LayerSpec = None) -> dict[str, int]:
    """The batch axis of every recorded output of ``layers``, found by running ``model`` on two
    and on three copies of the first sample of ``x``: the axis whose length follows the
    batch (the others keep theirs). What settles outputs whose batch axis the forward alone
    cannot tell, e.g. a time-major tensor made by a sum or a stack with as many steps as
    samples. Outputs that do not grow with the batch are left out."""
    inputs = as_inputs(x, model, at_least_2d=False)
    shapes = []
    for k in (2, 3):
        rows = torch.zeros(k, dtype=torch.long)
        try:
            rec = recording(model, lambda: inputs.rows(rows).call(model), layers, batch_axes={})  # noqa: B023 - run here
        except ModelRaised:  # a forward that fixes its batch size: nothing to learn from other sizes
            return {}
        shapes.append({name: [tuple(t.shape) for t in tensors] for name, tensors in rec.calls.items()})
    axes = {}
    for name, two in shapes[0].items():
        three = shapes[1].get(name)
        if three is None or len(three) != len(two) or len(two[0]) != len(three[0]):
            continue
        grown = [i for i, (a, b) in enumerate(zip(two[0], three[0])) if (a, b) == (2, 3)]
        same = all(a == b for i, (a, b) in enumerate(zip(two[0], three[0])) if i not in grown)
        if len(grown) == 1 and same:
            axes[name] = grown[0]
    return axes


def _protected_writes(rec: Recording):
    """Copy-on-write of recorded tensors: before the forward writes in place into memory a
    recorded tensor lives in (``ReLU(inplace=True)`` after a recorded batch-norm, ``out +=
    identity``), that record is replaced by a copy, so it keeps the values the layer gave."""
    def before_write(target: torch.Tensor) -> None:
        if not rec._shared:
            return
        entries = rec._shared.pop(storage_of(target), None)
        for name, index in entries or ():
            t = rec.calls[name][index]
            if t._version == rec._versions[name][index]:
                rec.calls[name][index] = copy = t.clone()
                rec._versions[name][index] = copy._version
    return before_write


@contextlib.contextmanager
def capture(model: nn.Module, layers: LayerSpec = None, *, reduce: Reduce = None,
            grads: bool = False, enable_grad: bool = False, clone: bool | None = None,
            attention_weights: bool = True, track_layout: bool = False,
            batch_axes: dict[str, int] | None = None, watch: bool | None = None) -> Iterator[Recording]:
    """Record the outputs of the chosen layers of ``model`` during the ``with`` body.

    ``layers``: ``None`` (every leaf module), a module path, a glob pattern
    (``"features.*"``), an ``nn.Module`` subclass, or a list mixing them.
    ``reduce``: keep only a summary of each output, batch axis first: ``"mean"`` or
    ``"max"`` over positions (see :func:`reduce_batch_first`), or a function given the
    batch-first tensor and returning a batch-first tensor.
    ``grads``: also record the gradient of each output when a backward pass runs
    through it (implies ``enable_grad``); read them from ``rec.gradients``.
    ``enable_grad``: run the body with autograd on (default: under ``torch.no_grad()``).
    ``clone``: copy every output as it is recorded (``True``); by default (``None``) a
    record is copied only when the forward is about to write into it in place
    (``ReLU(inplace=True)``, ``out += identity``), so it keeps the layer's values;
    ``False`` copies nothing and reports a changed record at exit. Writes in forward
    code are watched where the source of the forwards shows any
    (:func:`interp.inplace.may_write_in_place`); ``watch=True`` watches every forward.
    ``attention_weights``: record the per-head weights of selected ``nn.MultiheadAttention``
    modules as ``<path>.weights``, also when the caller asked for none; the caller still
    gets what it asked for. Selected Hugging Face attention modules record theirs the same
    way: their config's ``_attn_implementation`` is "eager" during the block (the whole
    model then runs eager attention, with the same outputs) and is put back on exit.
    ``track_layout``: learn each output's layout (``rec.layout``) also for element-wise
    modules that follow convolutions, by watching every leaf module until the first
    ``rec.clear()`` (on by itself with ``reduce="mean"`` / ``"max"``); without it the
    layout is inferred from the module type and the rank alone.

    ``rec.batch_axis`` says where each output's batch axis is (1 for a time-major
    recurrent output and the layers applied to it), learned from the model's inputs as
    the forward runs (see :class:`_BatchAxes`); ``reduce`` moves it first. Where several
    axes are as long as the batch and the forward does not tell them apart, the first is
    taken and the output is listed in ``rec.ambiguous`` (with a warning when ``reduce``
    used it): :func:`record` and :func:`interp.collect` then settle it with
    :func:`probe_batch_axes`, as ``batch_axes={output: axis}`` does when you know it.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"capture needs an nn.Module; got {type(model).__name__}")
    check_reduce(reduce)
    start_memory_reuse()
    modules = module_names(model)
    leaves = leaf_names(model, modules)
    names = leaves if layers is None else select_layers(model, layers, modules)
    do_clone = bool(clone) and reduce is None  # a reduction is a new tensor already
    # copy-on-write, where something may write into a record: a module with inplace=True (seen before
    # it runs), or forward code whose source writes in place (out += identity; every operation watched)
    in_place_modules = [m for m in modules.values() if m.__dict__.get("inplace") is True]
    # (a reduction may be a view of the output: a 2-D output's mean over no positions is itself)
    watch = clone is None and bool(watch or may_write_in_place(modules.values()))
    copy_on_write = clone is None and (watch or bool(in_place_modules))
    ours = unwatched if watch else (lambda fn: fn)  # interp's own hooks skip the watch
    rec = Recording(names)
    given_axes = dict(batch_axes or {})
    handles, trackers = [], []
    owner = threading.get_ident()  # forwards run by other threads (e.g. a server's) are not ours
    tracking = [isinstance(reduce, str) or track_layout]
    watching = [True]  # batch axes of every leaf, until the first clear()
    axes = _BatchAxes()
    seen_layouts: dict[tuple, tuple] = {}  # (data_ptr, shape) of outputs seen -> (their weakref, layout)
    wanted: dict[int, list] = {}  # nn.MultiheadAttention -> what its callers asked for, per call
    configs = [modules[n] for n in names] if attention_weights else []
    configs = list({id(c): c for c in map(_attention_config, configs) if c is not None}.values())

    def layout_of(module: nn.Module, sub: str, t: torch.Tensor, args: tuple) -> str:
        ndim = t.ndim
        lay = own_layout(module, sub, ndim)
        if lay is None and args and isinstance(args[0], torch.Tensor) and args[0].shape == t.shape:
            seen = seen_layouts.get((args[0].data_ptr(), tuple(args[0].shape)))  # element-wise: inherit
            lay = seen[1] if seen is not None and seen[0]() is not None else None
        lay = lay or default_layout(ndim)
        if tracking[0]:
            seen_layouts[(t.data_ptr(), tuple(t.shape))] = (weakref.ref(t), lay)
        return lay

    def keep(layer: str, name: str, module: nn.Module, sub: str, output: torch.Tensor, args: tuple) -> None:
        # an output's batch axis: given, or learned on its first call (with every leaf watched) and kept
        axis = rec.source_axis.get(name)
        if name in given_axes:
            axis = given_axes[name]
            if axis < output.ndim:
                axes._remember(output, axis)
        elif axis is None or watching[0]:
            axis, certain = axes.of(module, sub, output, args)
            if not certain:
                rec.ambiguous.add(name)
            rec.source_axis.setdefault(name, axis)
        if tracking[0] or name not in rec.layout:
            rec.layout[name] = layout_of(module, sub, output, args)
        t = output.detach()
        if reduce is not None:
            t = _reduced(t, axis, name)
            axis = 0
        elif do_clone:
            t = t.clone()
        index = rec._add(layer, name, t, axis)
        if copy_on_write and t.numel():
            rec._shared.setdefault(storage_of(t), []).append((name, index))
        if grads:
            if output.requires_grad:
                output.register_hook(_grad_hook(name, index, axis))
            else:
                rec._without_grad.append(name)

    def _reduced(t: torch.Tensor, axis: int, name: str) -> torch.Tensor:
        t = t.movedim(axis, 0)
        try:
            if isinstance(reduce, str):
                return reduce_batch_first(t, reduce, rec.layout[name])
            out = reduce(t)
        except Exception as exc:  # a user's function: say where it failed
            raise InputError(f"reduce failed on output {name!r} of shape {tuple(t.shape)} (batch first): "
                             f"{type(exc).__name__}: {exc}; expected a function tensor -> tensor") from exc
        if not isinstance(out, torch.Tensor) or out.ndim == 0 or out.shape[0] != t.shape[0]:
            raise InputError(f"reduce on output {name!r} must return a tensor with the batch axis "
                             f"({t.shape[0]}) first; got {type(out).__name__} "
                             f"{tuple(out.shape) if isinstance(out, torch.Tensor) else ''}")
        return out.detach()

    def _grad_hook(name: str, index: int, axis: int):
        def store(grad: torch.Tensor) -> None:
            g = grad.detach()
            rec.grads[name][index] = g if reduce is None else _reduced(g, axis, name)
        return store

    def make_hook(layer: str, module: nn.Module):
        attention = attention_weights and isinstance(module, nn.MultiheadAttention)

        @ours
        def hook(_module, args, output):
            if threading.get_ident() != owner:
                return None
            if isinstance(output, torch.Tensor):
                keep(layer, layer, module, "", output, args)
                return None
            for sub, t in _flatten(output, _part_names(module, output)):
                keep(layer, _sub_name(layer, sub, modules), module, sub, t, args)
            return _caller_view(module, output, wanted) if attention else None
        return hook

    @ours
    def track(module, args, output) -> None:
        if threading.get_ident() != owner:
            return
        for sub, t in _flatten(output, _part_names(module, output)):
            axes.of(module, sub, t, args)
            if tracking[0]:
                layout_of(module, sub, t, args)

    @ours
    def start(_module, args, kwargs) -> None:
        if threading.get_ident() == owner:
            axes.start(args, kwargs)

    def stop_tracking() -> None:
        tracking[0] = watching[0] = False
        seen_layouts.clear()
        while trackers:
            trackers.pop().remove()

    grad_mode = contextlib.nullcontext() if (enable_grad or grads) else torch.no_grad()
    protect = _protected_writes(rec)
    writes = watch_writes(protect) if watch else contextlib.nullcontext()

    @ours
    def before_in_place(_module, args) -> None:
        if threading.get_ident() == owner and args and isinstance(args[0], torch.Tensor):
            protect(args[0])

    try:
        handles.append(model.register_forward_pre_hook(start, with_kwargs=True))
        handles.extend(m.register_forward_pre_hook(before_in_place) for m in in_place_modules if copy_on_write)
        for name in names:
            module = modules[name]
            if attention_weights and isinstance(module, nn.MultiheadAttention):
                handles.append(module.register_forward_pre_hook(_attention_pre_hook(owner, wanted),
                                                                with_kwargs=True))
            handles.append(module.register_forward_hook(make_hook(name, module)))
        chosen = set(names)
        for leaf in leaves:
            if leaf not in chosen:
                trackers.append(modules[leaf].register_forward_hook(track))
        rec._on_clear.append(stop_tracking)
        with grad_mode, writes, _eager_attention(configs):
            yield rec
    finally:
        for h in handles + trackers:
            h.remove()
        trackers.clear()
    rec._shared.clear()
    rec._check_unchanged()
    if reduce is not None and rec.ambiguous:
        warnings.warn(f"the batch axis of {', '.join(sorted(rec.ambiguous))} could not be told apart from another "
                      "axis as long as the batch, and the first was reduced over as the batch; record a batch of "
                      "another size, use interp.record or interp.collect (they probe it), or give "
                      "batch_axes={output: axis}", UserWarning, stacklevel=3)
    if grads and rec.calls and len(set(rec._without_grad)) == len(rec.calls):
        raise InputError("grads=True, but no recorded output requires grad; give the input "
                         "requires_grad=True or leave the parameters trainable")


def _sub_name(name: str, sub: str, modules: dict) -> str:
    if not sub:
        return name
    full = f"{name}.{sub}"
    return f"{name}[{sub}]" if full in modules else full  # never shadow a real module path


@contextlib.contextmanager
def intervene(model: nn.Module, layers: LayerSpec, fn: Callable[[str, tuple, Any], Any]) -> Iterator[None]:
    """Let ``fn(layer, args, output)`` see, and optionally replace, the output of each chosen
    layer during the ``with`` body: whatever it returns other than ``None`` is used in place
    of the output. The model's tensors flow through ``fn`` unchanged otherwise (autograd
    included), so analyses can take gradients with respect to a layer's output or feed a
    layer a tensor of their own. Like :func:`capture`: only forwards of the entering thread,
    every hook removed on exit."""
    if not isinstance(model, nn.Module):
        raise InputError(f"intervene needs an nn.Module; got {type(model).__name__}")
    modules = module_names(model)
    with hooked(modules, after={name: fn for name in select_layers(model, layers, modules)}):
        yield


def recording(model: nn.Module, run: Callable[[], Any], layers: LayerSpec = None, **options) -> Recording:
    """``run()`` (a forward of ``model``) under :func:`capture`, for analyses that run the model
    themselves: a write the source scan did not show is caught by the recordings' version
    counters, and the run is done again with every forward of the model's classes watched
    (:func:`interp.inplace.watch_always`)."""
    try:
        with capture(model, layers, **options) as rec:
            run()
    except UnseenWrite:
        if watched(model):
            raise  # watched, and still unseen: .data or a numpy view
        watch_always(model)
        with capture(model, layers, **options) as rec:
            run()
    return rec


def record(model: nn.Module, x, layers: LayerSpec = None, **options) -> Recording:
    """Run the model once on ``x`` (a tensor, or a tuple or dict of inputs: see
    :mod:`interp.inputs`) under :func:`capture` and return the recording."""
    inputs = as_inputs(x, model, at_least_2d=False)
    check_model(model, inputs, "record")
    refuse_batch_statistics(model, "recording")
    with blame(model, inputs, "record"):
        rec = recording(model, lambda: inputs.copy().call(model), layers, **options)  # not into the caller's input
        if rec.ambiguous and "batch_axes" not in options:
            known = probe_batch_axes(model, inputs, layers)
            rec = recording(model, lambda: inputs.copy().call(model), layers, batch_axes=known, **options)
    return rec


__all__ = ["capture", "record", "intervene", "hooked", "Recording", "select_layers", "module_names", "leaf_names",
           "replace_part", "check_reduce", "batch_axis_of", "own_batch_axis", "probe_batch_axes", "recording",
           "UnseenWrite", "reduce_batch_first", "REDUCTIONS", "LAYOUTS"]
