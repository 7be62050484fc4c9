"""A model's modules by readable path, patterns over those paths, and the one helper that
registers hooks which change values.

Below :mod:`interp.capture` and :mod:`interp.inputs`, both of which need it: capture
records activations on top of these names, and the input checks run a failing forward
once more with :func:`hooked` to say which module refused the input. Nothing here knows
about recordings, inputs or analyses; :mod:`interp.capture` re-exports
:func:`module_names` and :func:`hooked`, their documented home.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from torch import nn

ROOT_NAME = "model"


def module_names(model: nn.Module) -> dict[str, nn.Module]:
    """Every module of ``model`` by its path (the root is called ``"model"``, or
    ``"(model)"`` when a child is itself called ``model``, as in wrappers)."""
    named = list(model.named_modules())
    root = ROOT_NAME if ROOT_NAME not in model._modules else f"({ROOT_NAME})"
    return {(name or root): module for name, module in named}


def is_pattern(name: str) -> bool:
    """Whether ``name`` is a glob pattern over module paths (holds ``*``, ``?`` or ``[``)."""
    return any(c in name for c in "*?[")


@contextlib.contextmanager
def hooked(modules: dict[str, nn.Module], before: dict[str, Callable] | None = None,
           after: dict[str, Callable] | None = None) -> Iterator[None]:
    """The one place hooks that change values are registered: ``before[name](name, args)``
    may return new positional arguments for module ``name``, ``after[name](name, args,
    output)`` a new output; ``None`` keeps them. Only forwards of the entering thread are
    seen, and every hook is removed on exit."""
    owner = threading.get_ident()

    def make_pre(name, fn):
        def pre_hook(_module, args):
            return fn(name, args) if threading.get_ident() == owner else None
        return pre_hook

    def make_post(name, fn):
        def hook(_module, args, output):
            return fn(name, args, output) if threading.get_ident() == owner else None
        return hook

    handles = []
    try:
        for name, fn in (before or {}).items():
            handles.append(modules[name].register_forward_pre_hook(make_pre(name, fn)))
        for name, fn in (after or {}).items():
            handles.append(modules[name].register_forward_hook(make_post(name, fn)))
        yield
    finally:
        for h in handles:
            h.remove()


__all__ = ["module_names", "is_pattern", "hooked", "ROOT_NAME"]
