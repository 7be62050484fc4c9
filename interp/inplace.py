"""In-place operations in a user's forward, made visible to the analyses.

torchvision and most tutorials write ``nn.ReLU(inplace=True)`` and ``out += identity``.
An in-place write changes a tensor after a hook has seen it: a recorded activation
would silently take the next layer's values, LRP's taps would read the wrong tensor,
and autograd refuses writes into the outputs of our own autograd functions. Two
mechanisms, both scoped to one call and undone after it:

- :func:`out_of_place` sets ``inplace=False`` on every module that has it (ReLU,
  Dropout, Hardtanh, ...), so the module returns a new tensor: the same values, computed
  as its out-of-place twin computes them (what LRP's rules need; other threads running
  the model meanwhile get the same values too);
- :func:`watch_writes` calls ``before_write(tensor)`` before every in-place operation
  run by the entering thread (``x += y``, ``x.add_(y)``, ``F.relu(x, inplace=True)``,
  ``x[i] = v``, ``out=``), through a ``TorchFunctionMode``, so an analysis can copy what
  it must keep before it is overwritten (copy-on-write). The forward itself runs
  unchanged: a write is only seen, never rewritten.

Written here, not taken from a library: PyTorch has no hook on in-place writes, and a
``TorchFunctionMode`` costs about 1.5 us per operation (measured), paid only inside
an analysis.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Callable, Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

# in-place methods whose trailing underscore does not mean "writes the tensor's values"
_NOT_WRITES = frozenset({"requires_grad_", "share_memory_", "retain_grad", "register_hook", "_version"})
_AUGMENTED = frozenset({"__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__", "__imod__",
                        "__ipow__", "__iand__", "__ior__", "__ixor__", "__ilshift__", "__irshift__",
                        "__imatmul__", "__setitem__"})
_WRITES: dict = {}  # func -> "first" (writes its first argument), "inplace" (when inplace=True), None


def _kind(func) -> str | None:
    try:
        return _WRITES[func]
    except (KeyError, TypeError):
        pass
    name = getattr(func, "__name__", "")
    if name in _AUGMENTED or (name.endswith("_") and not name.startswith("_") and name not in _NOT_WRITES):
        kind = "first"
    else:
        try:
            kind = "inplace" if "inplace" in inspect.signature(func).parameters else None
        except (TypeError, ValueError):
            kind = None
    try:
        _WRITES[func] = kind
    except TypeError:
        pass
    return kind


def written(func, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The tensor an operation writes in place, or None (also for ``out=`` arguments)."""
    out = kwargs.get("out")
    if isinstance(out, torch.Tensor):
        return out
    kind = _kind(func)
    if kind is None:
        return None
    if kind == "inplace" and not kwargs.get("inplace", False):
        return None
    target = args[0] if args else kwargs.get("input", kwargs.get("self"))
    return target if isinstance(target, torch.Tensor) else None


class _Watch(TorchFunctionMode):
    def __init__(self, before_write: Callable[[torch.Tensor], None]):
        super().__init__()
        self.before_write = before_write

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = written(func, args, kwargs)
        if target is not None:
            self.before_write(target)
        return func(*args, **kwargs)


@contextlib.contextmanager
def watch_writes(before_write: Callable[[torch.Tensor], None]) -> Iterator[None]:
    """Call ``before_write(tensor)`` before each in-place write the entering thread runs in
    the body (torch function modes are per thread: other threads are not watched)."""
    with _Watch(before_write):
        yield


def storage_of(t: torch.Tensor) -> int:
    """An id of the memory ``t`` lives in, shared by all its views."""
    return t.untyped_storage().data_ptr()


@contextlib.contextmanager
def out_of_place(model: nn.Module) -> Iterator[list[str]]:
    """``inplace=False`` on every module of ``model`` that has ``inplace=True``, for the body;
    yields their paths. Restored on exit, also after an error."""
    flipped = [(name, m) for name, m in model.named_modules() if m.__dict__.get("inplace") is True]
    for _, m in flipped:
        m.inplace = False
    try:
        yield [name for name, _ in flipped]
    finally:
        for _, m in flipped:
            m.inplace = True


__all__ = ["out_of_place", "watch_writes", "written", "storage_of"]
