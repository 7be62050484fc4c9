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
in-place write in the source of what the model's forwards run (``out += identity`` in
torchvision's blocks; :mod:`interp.code` follows methods, helpers and ``super()``);
in-place *modules* are seen by their flag, before they run. A write the source does not
show (compiled code) is still caught afterwards, by the tensors' version counters: the
analyses that run the model themselves then run it again with every forward watched,
and :func:`watch_always` remembers the class.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import re
import textwrap
import weakref
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .code import functions_of, instance_reads, names_of

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
_OPERATOR_WRITES = frozenset({"iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow", "iand", "ior",
                              "ixor", "ilshift", "irshift", "imatmul", "iconcat", "setitem"})


_CONTAINER_CALLS = frozenset({"list", "dict", "set", "collections.OrderedDict", "OrderedDict",
                              "collections.defaultdict", "defaultdict"})


def _is_container(value: ast.expr) -> bool:
    """Whether ``value`` always makes a Python list, dict or set (``[]``, ``[None] * n``,
    ``{}``, a comprehension, ``list(...)``), never a tensor."""
    if isinstance(value, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)):
        return True
    if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Mult):
        return isinstance(value.left, ast.List) or isinstance(value.right, ast.List)
    if isinstance(value, ast.Call):
        return ast.unparse(value.func) in _CONTAINER_CALLS
    return False


def _containers(tree: ast.AST) -> set[str]:
    """The names every binding of which (in this source) is a Python container: ``steps[t] = h``
    on such a name fills a list slot, where ``x[i] = v`` on a tensor writes into it."""
    verdict: dict[str, bool] = {}

    def bind(target, container: bool) -> None:
        for node in ast.walk(target):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):  # not ``steps`` of steps[s] = h
                verdict[node.id] = verdict.get(node.id, True) and container and node is target

    def assign(target, value) -> None:
        if (isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List))
                and len(target.elts) == len(value.elts)):  # outs, names = [], {}
            for t, v in zip(target.elts, value.elts):
                assign(t, v)
        else:
            bind(target, _is_container(value))

    # ``**kwargs`` is always a dict (``kwargs["input_ids"] = ids`` fills it)
    keywords = {id(f.args.kwarg) for f in ast.walk(tree)
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and f.args.kwarg is not None}
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and id(node) in keywords:
            verdict[node.arg] = verdict.get(node.arg, True)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                assign(t, node.value)
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)):
            bind(node.target, node.value is not None and _is_container(node.value))
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            bind(node.target, False)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            bind(node.optional_vars, False)
        elif isinstance(node, ast.arg):
            verdict[node.arg] = False
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            verdict.update(dict.fromkeys(node.names, False))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            verdict.update({(a.asname or a.name).split(".")[0]: False for a in node.names})
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            verdict[node.name] = False
        elif isinstance(node, ast.ExceptHandler) and node.name:
            verdict[node.name] = False
    return {name for name, container in verdict.items() if container}


class _Writes(ast.NodeVisitor):
    """Finds in-place writes in a function's source: ``x += y``, ``x[i] = v``, ``x.add_(y)``,
    ``torch.relu_(x)``, ``operator.iadd(x, y)``, ``f(..., inplace=True)``, ``f(..., out=y)``.
    Filling a slot of a name only ever bound to a list or dict (``steps = [None] * t; ...;
    steps[s] = h``, as hand-written RNNs do), and ``outs += [h]`` on one, are not writes."""

    def __init__(self, containers: set[str] = frozenset()):
        self.found = False
        self.containers = containers

    def _container(self, target) -> bool:
        return isinstance(target, ast.Name) and target.id in self.containers

    def visit_AugAssign(self, node):
        if not self._container(node.target):
            self.found = True
        self.generic_visit(node)

    def visit_Assign(self, node):
        if any(isinstance(t, ast.Subscript) and not self._container(t.value) for t in node.targets):
            self.found = True
        self.generic_visit(node)

    def visit_Attribute(self, node):
        if isinstance(node.value, ast.Name) and node.value.id == "operator" and node.attr in _OPERATOR_WRITES:
            self.found = True
        self.generic_visit(node)

    def visit_Name(self, node):
        if node.id in _OPERATOR_WRITES:  # from operator import iadd
            self.found = True

    def visit_Call(self, node):
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if _WRITE_CALLS.match(name) and name not in _NOT_WRITES:
            self.found = True
        for k in node.keywords:
            if k.arg == "out" or (k.arg == "inplace" and not (isinstance(k.value, ast.Constant)
                                                               and k.value.value is False)):
                self.found = True
        self.generic_visit(node)


_SCANNED: dict = {}  # code object -> whether its source writes in place


def _function_writes(fn) -> bool:
    code = fn.__code__
    if code not in _SCANNED:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        except (OSError, TypeError, SyntaxError, IndentationError):
            _SCANNED[code] = True  # no source to read (a lambda in a notebook, compiled code): assume it writes
        else:
            visitor = _Writes(_containers(tree))
            visitor.visit(tree)
            _SCANNED[code] = visitor.found
    return _SCANNED[code]


_WATCHED: set[type] = set()  # module classes seen writing in place where the source scan did not tell


def watch_always(model: nn.Module) -> None:
    """Watch every forward of ``model``'s own module classes from now on (not torch's, which
    only write through their ``inplace`` flags): one of them was caught writing in place
    where reading its source did not show it (compiled code, say)."""
    own = {type(m) for m in model.modules() if not type(m).__module__.startswith("torch.")}
    _WATCHED.update(own or {type(model)})


def watched(model: nn.Module) -> bool:
    """Whether some module class of ``model`` is watched (see :func:`watch_always`)."""
    return any(type(m) in _WATCHED for m in model.modules())


def _class_key(m: nn.Module) -> tuple:
    return (type(m), tuple(id(c.__dict__["forward"]) for c in type(m).__mro__ if "forward" in c.__dict__))


_BY_CLASS: dict[tuple, tuple[bool, set]] = {}  # class key -> (its code writes, the names its code uses)


def may_write_in_place(model) -> bool:
    """Whether the forward of some module of ``model`` (or of a list of modules) may write in
    place outside a module: ``x += y``, ``x[i] = v``, ``x.add_(y)``, ``inplace=True``, ``out=``,
    ``operator.iadd``. Read from the source of the Python functions each forward runs
    (:func:`interp.code.functions_of`: the forward of the class and its bases, the methods,
    helpers, static methods, partials and lambdas it calls, four calls deep; torch's own
    code is trusted), once per class, and again for an instance that keeps code of its own
    (a forward, a lambda, a helper object); a function without readable source is assumed
    to write, and so is a class :func:`watch_always` was told about. In-place *modules*
    (``inplace=True`` flags) are not counted: they are seen by their flag."""
    modules = model.modules() if isinstance(model, nn.Module) else model
    for m in modules:
        if type(m) in _WATCHED:
            return True
        key = _class_key(m)
        if key not in _BY_CLASS:
            _BY_CLASS[key] = (any(_function_writes(fn) for fn in functions_of(m, instance=False)), names_of(m))
        writes, names = _BY_CLASS[key]
        if writes:
            return True
        own = m.__dict__.get("forward")
        if getattr(own, "interp_own", False):  # a forward of interp's canonizers, run unwatched
            continue
        if (own is not None or instance_reads(m, names)) and _instance_writes(m, names, own):
            return True
    return False


# per module instance: (the objects it keeps under the names its code reads, whether that code writes);
# the same objects, the same code: scanned once, not on every call (a Hugging Face module keeps its config)
_BY_INSTANCE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _instance_writes(m: nn.Module, names: set, own) -> bool:
    token = (id(own), tuple(id(m.__dict__.get(n)) for n in sorted(names)))
    cached = _BY_INSTANCE.get(m)
    if cached is None or cached[0] != token:
        cached = (token, any(_function_writes(fn) for fn in functions_of(m)))  # code of the instance's own
        _BY_INSTANCE[m] = cached
    return cached[1]


class _Saved:
    """A tensor autograd saved for the backward pass, replaced by a copy before it is written."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor


@contextlib.contextmanager
def saved_copy_on_write() -> Iterator[Callable[[torch.Tensor], None]]:
    """Copy-on-write of what autograd saves for the backward pass (a layer's input, kept for
    its weights' gradient, or a convolution's) while the body runs: yields ``before_write``,
    to be called (by :func:`watch_writes`) before each in-place write, which replaces the
    saved tensors in that memory by copies. So ``h = conv(x); h += conv2(h)`` has the
    gradient of its out-of-place twin, where autograd alone refuses it ("modified by an
    inplace operation"). Entered only where writes are watched."""
    held: dict[int, list[_Saved]] = {}

    def pack(t: torch.Tensor) -> _Saved:
        # detached: a saved output keeps no reference to the node that saved it (a cycle
        # through C++ the collector cannot see); autograd re-attaches the graph on unpack
        box = _Saved(t.detach())
        if t.numel():
            held.setdefault(storage_of(t), []).append(box)
        return box

    def unpack(box: _Saved) -> torch.Tensor:
        return box.tensor

    def before_write(target: torch.Tensor) -> None:
        for box in held.pop(storage_of(target), ()):
            box.tensor = box.tensor.clone()

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            yield before_write
    finally:
        # the graph keeps ``pack`` (with each saved tensor's hooks), ``pack`` keeps ``held``,
        # ``held`` keeps tensors of the graph: a cycle through C++ the collector cannot see
        held.clear()


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


__all__ = ["out_of_place", "watch_writes", "saved_copy_on_write", "unwatched", "may_write_in_place", "watch_always",
           "watched", "written",
           "storage_of"]
