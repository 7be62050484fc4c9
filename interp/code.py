"""The code a module's forward runs: what the store hashes into its key, and what the
in-place scan (:func:`interp.inplace.may_write_in_place`) reads.

A forward is rarely one function: torchvision's ResNet calls ``self._forward_impl``, a
subclass calls ``super().forward``, models call helpers of their module or of another
(``ops.fuse(x)``) and keep lambdas on the instance. :func:`functions_of` follows these,
a few calls deep, by the names the bytecode uses; submodules are not followed (each is
looked at as a module of its own). Written here because no library does it: the
``inspect`` module reads one function at a time.
"""

from __future__ import annotations

import inspect
import types
from typing import Iterator

from torch import nn

DEPTH = 3


def _names(code: types.CodeType) -> set[str]:
    """Global and attribute names ``code`` uses, its nested functions' included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _function(value):
    """The Python function behind ``value`` (a function, a bound method, a lambda), or None;
    torch's own functions are not followed (they are the library, not the model)."""
    value = getattr(value, "__func__", value)
    if not isinstance(value, types.FunctionType):
        return None
    home = getattr(value, "__module__", None) or ""
    return None if home == "torch" or home.startswith("torch.") else value


def functions_of(module: nn.Module, depth: int = DEPTH) -> Iterator[types.FunctionType]:
    """The Python functions ``module``'s forward may run besides its submodules' forwards: the
    forward that runs (set on the instance, or its class's), the base classes' methods it
    calls through ``super()``, and, up to ``depth`` calls deep, the methods called on ``self``
    (``_forward_impl``), functions and lambdas kept on the instance, module-level functions
    called by name, and functions called as ``some_module.function``. Each once."""
    cls = type(module)
    forwards = [c.__dict__["forward"] for c in cls.__mro__ if "forward" in c.__dict__ and c is not nn.Module]
    own = _function(module.__dict__.get("forward"))
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
        scope = fn.__globals__
        names = _names(fn.__code__)
        if "super" in names:  # super().forward(x), super().method(x): the base classes' code runs too
            frontier.extend((f, left - 1) for f in (_function(c.__dict__.get(n)) for c in cls.__mro__[1:]
                                                    for n in names if n in c.__dict__) if f is not None)
        for name in names:
            for value in (getattr(cls, name, None), module.__dict__.get(name), scope.get(name)):
                target = _function(value)
                if target is not None:
                    frontier.append((target, left - 1))
                elif inspect.ismodule(value):  # some_module.function(...)
                    for attr in _names(fn.__code__):
                        target = _function(getattr(value, attr, None))
                        if target is not None:
                            frontier.append((target, left - 1))


def constants_of(module: nn.Module, fn: types.FunctionType) -> list[tuple[str, str]]:
    """Plain class attributes ``fn`` reads by name (``self.SCALE``): what changes the
    forward's result without changing its code."""
    out = []
    for name in sorted(_names(fn.__code__)):
        value = inspect.getattr_static(type(module), name, None)
        if isinstance(value, (bool, int, float, str, bytes, type(None))) or (
                isinstance(value, tuple) and all(isinstance(v, (bool, int, float, str)) for v in value)):
            out.append((name, repr(value)))
    return out


__all__ = ["functions_of", "constants_of", "DEPTH"]
