"""Analysis results on disk: ``save(result, path)`` and ``load(path)``, safely.

    interp.results.save(interp.sensitivity(model, x, kind="noise"), "noise.safetensors")
    r = interp.results.load("noise.safetensors")          # a NoiseSensitivity again

The results are frozen dataclasses of tensors and plain values. One safetensors file
holds them: the tensors as tensors (also inside tuples and dicts, as results of
several inputs hold them), everything else as JSON in the file's metadata, with the
result's type and a sha256 of the tensors' bytes, checked on load, so a file damaged
even without changing its size is refused, never read as numbers. Loading never
unpickles: it builds only the result types registered with :func:`register`, from tensors
and JSON values, so a file from anywhere is safe to open (pickle, which ``torch.save`` and
diskcache use, runs code on load). Written atomically. The store keeps small results this
way beside the activations it collects (:meth:`interp.store.Store.result`), so a second
look is instant.

A result type registers itself where it is defined (``@results.register`` in
:mod:`interp.sensitivity`, :mod:`interp.projection`), so this module imports none of the
analyses and sits below them and the store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch

from ._io import write_with
from .errors import InterpError
from .hashing import tensor_bytes

FORMAT = "interp.results/2"  # 2: tensors inside tuples and dicts, a content hash
_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Allow ``save`` and ``load`` to handle ``cls`` (a frozen dataclass of tensors and JSON
    values), under its class name; used as a decorator by the module defining ``cls``."""
    if not (dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen):
        raise TypeError(f"{cls.__name__} is not a frozen dataclass")
    known = _REGISTRY.get(cls.__name__)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(f"a result type named {cls.__name__} is registered already ({known.__module__}."
                        f"{known.__qualname__}); result files name their type by class name alone")
    _REGISTRY[cls.__name__] = cls
    return cls


def _plain(v, field: str, tensors: dict):
    """``v`` as JSON (tuples as lists, tensors inside tuples and dicts as references into
    ``tensors``), or an InterpError naming the field."""
    if isinstance(v, torch.Tensor):
        key = f"{field}/{len(tensors)}"
        # own memory: safetensors refuses tensors that share it (an evaluation's curves share the random one)
        tensors[key] = v.detach().cpu().clone(memory_format=torch.contiguous_format)
        return {_TENSOR: key}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, dict) and all(isinstance(k, str) and not k.startswith("__") for k in v):
        return {k: _plain(i, field, tensors) for k, i in v.items()}
    if isinstance(v, dict) and all(_is_key(k) for k in v):  # e.g. (method, metric) -> values
        return {_ITEMS: [[_plain(k, field, tensors), _plain(i, field, tensors)] for k, i in v.items()]}
    if isinstance(v, (tuple, list)):
        return [_plain(i, field, tensors) for i in v]
    if _REGISTRY.get(type(v).__name__) is type(v):  # a result inside a result (curves of an evaluation)
        return {_RESULT: type(v).__name__,
                "fields": {f.name: _plain(getattr(v, f.name), field, tensors) for f in dataclasses.fields(v)}}
    raise InterpError(f"field {field!r} holds a {type(v).__name__}, which a result file cannot keep; expected "
                      "tensors, numbers, strings, None, registered results, or tuples and dicts of them (keys: "
                      "strings, numbers or tuples of them)")


_TENSOR, _ITEMS, _RESULT = "__tensor__", "__items__", "__result__"


def _is_key(k) -> bool:
    return isinstance(k, (str, int, float, bool)) or (isinstance(k, tuple) and all(map(_is_key, k)))


def _tupled(v, tensors: dict):
    if isinstance(v, dict):
        if set(v) == {_TENSOR}:
            return tensors[v[_TENSOR]]
        if set(v) == {_ITEMS}:
            return {_tupled(k, tensors): _tupled(i, tensors) for k, i in v[_ITEMS]}
        if set(v) == {_RESULT, "fields"}:
            cls = _REGISTRY.get(v[_RESULT])
            if cls is None:
                raise ValueError(f"it holds a result of unknown type {v[_RESULT]!r}")
            return _build(cls, {k: _tupled(i, tensors) for k, i in v["fields"].items()})
        return {k: _tupled(i, tensors) for k, i in v.items()}
    return tuple(_tupled(i, tensors) for i in v) if isinstance(v, list) else v


def _build(cls, values: dict):
    """``cls(**values)`` when the names match its fields (defaults may be left out)."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    missing = [n for n in names if n not in values and dataclasses.MISSING is _default_of(cls, n)]
    if missing or set(values) - names:
        raise ValueError(f"fields {sorted(set(values) ^ names)} do not match {cls.__name__}")
    return cls(**values)


def _content_hash(tensors: dict) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key]
        h.update(f"{key}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(tensor_bytes(t))
    return h.hexdigest()


def save(result, path: str | os.PathLike) -> Path:
    """Write ``result`` (a registered result type) to ``path`` as safetensors."""
    from safetensors.torch import save_file

    name = type(result).__name__
    if _REGISTRY.get(name) is not type(result):
        raise InterpError(f"cannot save a {name}; expected one of {', '.join(sorted(_REGISTRY))}")
    tensors, plain = {}, {}
    for f in dataclasses.fields(result):
        v = getattr(result, f.name)
        if isinstance(v, torch.Tensor):
            tensors[f.name] = v.detach().cpu().contiguous()
        else:
            plain[f.name] = _plain(v, f.name, tensors)
    meta = {"format": FORMAT, "type": name, "fields": json.dumps(plain), "sha256": _content_hash(tensors)}
    return write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load(path: str | os.PathLike):
    """The result saved at ``path``; an InterpError if it is not a readable result file."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k).clone() for k in f.keys()}  # own memory, not a map of the file
    except FileNotFoundError:
        raise InterpError(f"no result file at {str(path)!r}") from None
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise InterpError(f"{str(path)!r} is not a readable result file ({exc}); expected a file written by "
                          "interp.results.save") from None
    cls = _REGISTRY.get(meta.get("type", ""))
    if meta.get("format") != FORMAT or cls is None:
        raise InterpError(f"{str(path)!r} is not an interp result file (format {meta.get('format')!r}, type "
                          f"{meta.get('type')!r}); expected format {FORMAT!r}")
    if meta.get("sha256") != _content_hash(tensors):
        raise InterpError(f"{str(path)!r} holds a damaged {cls.__name__}: its tensors do not match the hash they "
                          "were saved with")
    try:
        plain = {k: _tupled(v, tensors) for k, v in json.loads(meta["fields"]).items()}
        tensors = {k: v for k, v in tensors.items() if "/" not in k}
        return _build(cls, {**plain, **tensors})
    except (ValueError, TypeError, KeyError) as exc:
        raise InterpError(f"{str(path)!r} holds a damaged {cls.__name__}: {exc}") from None


def _default_of(cls, name: str):
    f = cls.__dataclass_fields__[name]
    return f.default if f.default is not dataclasses.MISSING else (
        f.default_factory if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)


__all__ = ["save", "load", "register", "FORMAT"]
