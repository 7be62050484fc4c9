"""The code a module's forward runs, and the values it reads: what the store hashes into
its key, and what the in-place scan (:func:`interp.inplace.may_write_in_place`) reads.

A forward is rarely one function: torchvision's ResNet calls ``self._forward_impl``, a
subclass calls ``super().forward``, models call helpers of their module or of another
(``ops.fuse(x)``), static methods of helper classes, methods of helper objects kept on
the instance, ``functools.partial`` objects and lambdas. :func:`functions_of` follows
these, a few calls deep, by the names the bytecode uses; submodules are not followed
(each is looked at as a module of its own), nor is torch's own code. Written here
because no library does it: the ``inspect`` module reads one function at a time.
"""

from __future__ import annotations

import functools
import inspect
import sys
import sysconfig
import types
from collections.abc import Iterator

import torch
from torch import nn

DEPTH = 4
_PLAIN = (bool, int, float, complex, str, bytes, type(None))


def _names(code: types.CodeType) -> set[str]:
    """Global and attribute names ``code`` uses, its nested functions' included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _function(value):
    """The Python function behind ``value`` (a function, a bound or static method, a lambda, a
    ``functools.partial``), or None; torch's own functions are not followed (they are the
    library, not the model)."""
    if isinstance(value, functools.partial):
        value = value.func
    value = getattr(value, "__func__", value)
    if not isinstance(value, types.FunctionType):
        return None
    home = getattr(value, "__module__", None) or ""
    return None if home == "torch" or home.startswith("torch.") else value


_LIBRARY_DIRS = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})


def _users_module(module: types.ModuleType | None) -> bool:
    """Whether a Python module is the user's own code, not the standard library or an installed
    package (an editable install of the user's project counts as the user's)."""
    if module is None:
        return True  # defined in code run as it is (a notebook, exec): the user's
    if module.__name__ in sys.builtin_module_names:
        return False
    path = getattr(module, "__file__", None)
    return path is None or not str(path).startswith(_LIBRARY_DIRS)  # no file: made in code, the user's


def _members(value, names: set[str], depth: int = 2) -> list[types.FunctionType]:
    """Functions reached as ``value.name`` (and ``value.name.other``, ``depth`` deep): of a
    Python module, of a class (static and class methods), of a helper object (its class's
    methods); ``helpers.Ops.act`` is a function of a class of a module."""
    if depth <= 0 or isinstance(value, (nn.Module, torch.Tensor)) or isinstance(value, _PLAIN):
        return []
    if inspect.ismodule(value):
        if not _users_module(value):  # a library's (numpy, math, torch): not the model's code
            return []
        found = [getattr(value, n, None) for n in names]
    elif inspect.isclass(value):
        if issubclass(value, nn.Module) or not _users_module(inspect.getmodule(value)):
            return []
        found = [inspect.getattr_static(value, n, None) for n in names]
    else:
        if not _users_module(inspect.getmodule(type(value))):
            return []
        found = [inspect.getattr_static(type(value), n, None) for n in names]
    out = []
    for v in found:
        f = _function(v)
        if f is not None:
            out.append(f)
        elif v is not None and (inspect.isclass(v) or inspect.ismodule(v)):
            out.extend(_members(v, names, depth - 1))
    return out


def _closure(fn: types.FunctionType) -> dict:
    """The variables ``fn`` closes over (a helper module or a constant of the enclosing function)."""
    cells = fn.__closure__ or ()
    out = {}
    for name, cell in zip(fn.__code__.co_freevars, cells):
        try:
            out[name] = cell.cell_contents
        except ValueError:  # an empty cell
            pass
    return out


def functions_of(module: nn.Module, depth: int = DEPTH, instance: bool = True) -> Iterator[types.FunctionType]:
    """The Python functions ``module``'s forward may run besides its submodules' forwards: the
    forward that runs (set on the instance, or its class's), the base classes' methods it
    calls through ``super()``, and, up to ``depth`` calls deep, the methods called on
    ``self`` (``_forward_impl``), module-level functions called by name, functions reached
    as ``some_module.f``, ``SomeClass.static_method``, a helper object's methods, partials;
    with ``instance`` also what the instance keeps (lambdas, helper objects). Each once."""
    cls = type(module)
    forwards = [c.__dict__["forward"] for c in cls.__mro__ if "forward" in c.__dict__ and c is not nn.Module]
    own = _function(module.__dict__.get("forward")) if instance else None
    start = [own] if own is not None else forwards[:1]  # the forward that runs
    seen: set[int] = set()
    frontier = [(f, depth) for f in (_function(s) for s in start) if f is not None]
    while frontier:
        fn, left = frontier.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        yield fn
        if left <= 0:
            continue
        scope = {**fn.__globals__, **_closure(fn)}
        names = _names(fn.__code__) | set(fn.__code__.co_freevars)
        if "super" in names:  # super().forward(x), super().method(x): the base classes' code runs too
            frontier.extend((f, left - 1) for f in (_function(c.__dict__.get(n)) for c in cls.__mro__[1:]
                                                    for n in names if n in c.__dict__) if f is not None)
        for name in names:
            values = [inspect.getattr_static(cls, name, None), scope.get(name)]
            if instance:
                values.append(module.__dict__.get(name))
            for value in values:
                target = _function(value)
                if target is not None:
                    frontier.append((target, left - 1))
                elif value is not None:
                    frontier.extend((f, left - 1) for f in _members(value, names))


def instance_reads(module: nn.Module, names: set[str]) -> bool:
    """Whether the instance keeps, under one of ``names``, something the forward may run (a
    lambda, a helper object, a partial): then its code is the instance's, not the class's."""
    for name in names:
        value = module.__dict__.get(name)
        if value is None or isinstance(value, (nn.Module, torch.Tensor)) or isinstance(value, _PLAIN):
            continue
        if isinstance(value, (tuple, list, dict, set)) and all(isinstance(v, _PLAIN) for v in value):
            continue
        return True
    return False


def names_of(module: nn.Module) -> set[str]:
    """Every name the class-level code of ``module``'s forward uses."""
    out: set[str] = set()
    for fn in functions_of(module, instance=False):
        out |= _names(fn.__code__)
    return out


@functools.lru_cache(maxsize=4096)
def _assigned(code: types.CodeType) -> frozenset:
    """Attribute and global names a function assigns (``self.calls += 1``, ``global n``): its
    state, which it writes, not settings it reads."""
    return frozenset(i.argval for i in _instructions(code) if i.opname in ("STORE_ATTR", "STORE_GLOBAL", "DELETE_ATTR"))


def _instructions(code: types.CodeType):
    import dis

    yield from dis.get_instructions(code)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _instructions(const)


def values_of(module: nn.Module, fn: types.FunctionType) -> list[tuple[str, str]]:
    """Plain values ``fn`` reads by name, which change the forward's result without changing
    its code: class constants (``self.SCALE``), the instance's own settings
    (``self.temperature``), module-level constants (``SCALE``); not what it writes (a call
    counter: state, not a setting)."""
    out = []
    written = _assigned(fn.__code__)
    closure = _closure(fn)
    for name in sorted((_names(fn.__code__) | set(closure)) - written):
        for where, value in (("class", inspect.getattr_static(type(module), name, None)),
                             ("instance", module.__dict__.get(name)), ("global", fn.__globals__.get(name)),
                             ("closure", closure.get(name))):
            if isinstance(value, _PLAIN) and value is not None or (
                    isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value)):
                out.append((f"{where}.{name}", repr(value)))
    return out


@functools.lru_cache(maxsize=4096)
def _called(code: types.CodeType) -> frozenset:
    """Names of the functions ``code`` calls (``F.dropout(...)`` gives ``dropout``)."""
    return frozenset(str(i.argval) for i in _instructions(code)
                     if i.opname in ("LOAD_ATTR", "LOAD_METHOD", "LOAD_GLOBAL", "LOAD_NAME"))


def calls_any(module: nn.Module, names: frozenset | set) -> bool:
    """Whether the code ``module``'s forward runs names any of ``names`` (``dropout`` for a
    ``F.dropout(x, training=self.training)``): read from its bytecode."""
    return any(_called(fn.__code__) & names for fn in functions_of(module))


__all__ = ["functions_of", "values_of", "names_of", "instance_reads", "calls_any", "DEPTH"]
