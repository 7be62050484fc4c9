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
- Recorded tensors are detached. The body runs under ``torch.no_grad()`` unless
  ``enable_grad=True``. When the model has in-place modules (``inplace=True``)
  outputs are cloned, and any recorded tensor that was changed in place anyway
  is reported at exit instead of being returned wrong.
- Only forwards run by the thread that entered the block are recorded, so a
  model shared with other threads (a web server's) does not leak into it.
- Every hook is removed on exit, also when the body raised; the model's
  parameters and train/eval mode are never touched.

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
from typing import Any, Iterable, Iterator, Sequence, Union

import torch
from torch import nn

from .errors import CaptureError, InputError, UnknownNameError

LayerSpec = Union[str, type, Sequence[Union[str, type]], None]

# readable names of the parts of well-known tuple outputs
_TUPLE_NAMES: list[tuple[type, tuple]] = [
    (nn.LSTM, ("out", ("h", "c"))),
    (nn.GRU, ("out", "h")),
    (nn.RNN, ("out", "h")),
    (nn.MultiheadAttention, ("out", "weights")),
]

ROOT_NAME = "model"


def module_names(model: nn.Module) -> dict[str, nn.Module]:
    """Every module of ``model`` by its path (the root is called ``"model"``)."""
    return {(name or ROOT_NAME): module for name, module in model.named_modules()}


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
            if (isinstance(m, ATOMIC) or next(m.children(), None) is None)
            and not n.startswith(inside_atomic)]


def _is_pattern(s: str) -> bool:
    return any(c in s for c in "*?[")


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
        elif isinstance(spec, str) and _is_pattern(spec):
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


def _part_names(module: nn.Module) -> Any:
    for cls, names in _TUPLE_NAMES:
        if isinstance(module, cls):
            return names
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


class Recording:
    """What one :func:`capture` block recorded."""

    def __init__(self, layers: list[str]):
        self.layers = layers
        self.calls: dict[str, list[torch.Tensor]] = {}
        self.layer_of: dict[str, str] = {}  # output name -> the layer that produced it
        self._versions: dict[str, list[int]] = {}

    def _add(self, layer: str, name: str, tensor: torch.Tensor, clone: bool) -> None:
        t = tensor.detach().clone() if clone else tensor.detach()
        try:
            self.calls[name].append(t)
        except KeyError:
            self.calls[name], self._versions[name] = [t], []
            self.layer_of[name] = layer
        self._versions[name].append(t._version)

    def outputs_of(self, layer: str) -> list[str]:
        """Output names recorded for ``layer`` (itself, or its sub-names for tuple outputs)."""
        return [n for n, owner in self.layer_of.items() if owner == layer]

    @property
    def activations(self) -> dict[str, torch.Tensor]:
        """``{name: tensor}``; a module called k > 1 times gives ``name:0`` ... ``name:k-1``."""
        out: dict[str, torch.Tensor] = {}
        for name, tensors in self.calls.items():
            if len(tensors) == 1:
                out[name] = tensors[0]
            else:
                out.update({f"{name}:{i}": t for i, t in enumerate(tensors)})
        return out

    def count(self, name: str) -> int:
        """How many times output ``name`` was recorded."""
        return len(self.calls.get(name, ()))

    def _check_unchanged(self) -> None:
        for name, tensors in self.calls.items():
            for i, (t, v) in enumerate(zip(tensors, self._versions[name])):
                if t._version != v:
                    where = name if len(tensors) == 1 else f"{name}:{i}"
                    raise CaptureError(
                        f"activation {where!r} was modified in place after it was recorded "
                        f"(e.g. by an in-place op in forward); use capture(..., clone=True)")

    def __repr__(self) -> str:
        return f"Recording({len(self.calls)} outputs from {len(self.layers)} layers)"


@contextlib.contextmanager
def capture(model: nn.Module, layers: LayerSpec = None, *, clone: bool | None = None,
            enable_grad: bool = False) -> Iterator[Recording]:
    """Record the outputs of the chosen layers of ``model`` during the ``with`` body.

    ``layers``: ``None`` (every leaf module), a module path, a glob pattern
    (``"features.*"``), an ``nn.Module`` subclass, or a list mixing them.
    ``clone``: copy each output (default: only when the model has in-place modules).
    ``enable_grad``: run the body with autograd on (default: under ``torch.no_grad()``).
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"capture needs an nn.Module; got {type(model).__name__}")
    modules = module_names(model)
    names = select_layers(model, layers, modules)
    if clone is None:  # clone only when an in-place module could overwrite a recorded output
        clone = any(m.__dict__.get("inplace") is True for m in modules.values())
    do_clone = bool(clone)
    rec = Recording(names)
    handles = []
    owner = threading.get_ident()  # forwards run by other threads (e.g. a server's) are not ours

    def make_hook(name: str, part_names: Any):
        if part_names is None:
            def hook(_module, _args, output):
                if threading.get_ident() != owner:
                    return
                if isinstance(output, torch.Tensor):  # fast path
                    rec._add(name, name, output, do_clone)
                else:
                    for sub, t in _flatten(output):
                        rec._add(name, _sub_name(name, sub, modules), t, do_clone)
        else:
            def hook(_module, _args, output):
                if threading.get_ident() != owner:
                    return
                for sub, t in _flatten(output, part_names):
                    rec._add(name, _sub_name(name, sub, modules), t, do_clone)
        return hook

    grad_mode = contextlib.nullcontext() if enable_grad else torch.no_grad()
    try:
        for name in names:
            module = modules[name]
            handles.append(module.register_forward_hook(make_hook(name, _part_names(module))))
        with grad_mode:
            yield rec
    finally:
        for h in handles:
            h.remove()
    rec._check_unchanged()


def _sub_name(name: str, sub: str, modules: dict) -> str:
    if not sub:
        return name
    full = f"{name}.{sub}"
    return f"{name}[{sub}]" if full in modules else full  # never shadow a real module path


def record(model: nn.Module, x: torch.Tensor, layers: LayerSpec = None, **options) -> Recording:
    """Run ``model(x)`` once under :func:`capture` and return the recording."""
    with capture(model, layers, **options) as rec:
        model(x)
    return rec


__all__ = ["capture", "record", "Recording", "select_layers", "module_names", "leaf_names"]
