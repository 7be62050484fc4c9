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

Written here, not taken from a library: PyTorch has no hook on in-place writes. A
``TorchFunctionMode`` costs a few microseconds per operation (5% of a capture of the
zoo CNN, measured), so it is only entered where :func:`may_write_in_place` finds an
in-place write in the source of the model's forwards (``out += identity`` in
torchvision's blocks); in-place *modules* are seen by their flag, before they run.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import re
import textwrap
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
        if _WRITES.get(func, "?") is not None or "out" in kwargs:  # the common case: known not to write
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


def unwatched(fn: Callable) -> Callable:
    """``fn`` run with :func:`watch_writes` (and any torch function mode) off: for the hooks
    and rewritten forwards of interp itself, whose operations are never the user's in-place
    writes, and which would otherwise pay the mode's cost on every operation."""
    disabled = torch._C.DisableTorchFunction

    def run(*args, **kwargs):
        with disabled():
            return fn(*args, **kwargs)
    return run


_WRITE_CALLS = re.compile(r"^[a-z][a-z0-9_]*_$")


class _Writes(ast.NodeVisitor):
    """Finds in-place writes in a function's source: ``x += y``, ``x[i] = v``, ``x.add_(y)``,
    ``torch.relu_(x)``, ``f(..., inplace=True)``, ``f(..., out=y)``; and names the functions and
    ``self.<method>`` it calls (to look into them too)."""

    def __init__(self):
        self.found = False
        self.calls: set[str] = set()
        self.methods: set[str] = set()

    def visit_AugAssign(self, node):
        self.found = True

    def visit_Assign(self, node):
        if any(isinstance(t, ast.Subscript) for t in node.targets):
            self.found = True
        self.generic_visit(node)

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Attribute):
            if _WRITE_CALLS.match(f.attr) and f.attr not in _NOT_WRITES:
                self.found = True
            if isinstance(f.value, ast.Name) and f.value.id == "self":
                self.methods.add(f.attr)
        elif isinstance(f, ast.Name):
            if _WRITE_CALLS.match(f.id):
                self.found = True
            self.calls.add(f.id)
        for k in node.keywords:
            if k.arg == "out" or (k.arg == "inplace" and not (isinstance(k.value, ast.Constant)
                                                               and k.value.value is False)):
                self.found = True
        self.generic_visit(node)


def _function_writes(fn, cls, depth: int, seen: set) -> bool:
    fn = getattr(fn, "__func__", fn)
    if id(fn) in seen:
        return False
    seen.add(id(fn))
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return True  # no source to read: assume it may write
    visitor = _Writes()
    visitor.visit(tree)
    if visitor.found:
        return True
    if depth <= 0:
        return False
    scope = getattr(fn, "__globals__", {})
    for name in visitor.calls:  # module-level helpers the forward calls
        target = scope.get(name)
        if inspect.isfunction(target) and _function_writes(target, None, depth - 1, seen):
            return True
    for name in visitor.methods:  # self.<method>(...), not submodules (they are scanned as classes)
        target = getattr(cls, name, None) if cls is not None else None
        if inspect.isfunction(target) and _function_writes(target, cls, depth - 1, seen):
            return True
    return False


@functools.lru_cache(maxsize=None)
def _class_writes(cls: type) -> bool:
    if cls.__module__.startswith("torch.nn.") or cls.forward is nn.Module.forward:
        return False  # torch's own modules write in place only through their ``inplace`` flag
    return _function_writes(cls.forward, cls, 2, set())


def may_write_in_place(model) -> bool:
    """Whether the forward of some module of ``model`` (its class's forward, a forward set on the
    instance, or a function or method they call, two calls deep) may write in place outside a
    module: ``x += y``, ``x[i] = v``, ``x.add_(y)``, ``inplace=True``, ``out=``. Read from the
    source, once per class; a forward without readable source is assumed to write. In-place
    *modules* (``inplace=True`` flags) are not counted: they are seen by their flag."""
    for m in (model.modules() if isinstance(model, nn.Module) else model):  # a model, or its modules
        own = m.__dict__.get("forward")
        if own is not None and _function_writes(own, type(m), 2, set()):
            return True
        if _class_writes(type(m)):
            return True
    return False


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


__all__ = ["out_of_place", "watch_writes", "unwatched", "may_write_in_place", "written", "storage_of"]
