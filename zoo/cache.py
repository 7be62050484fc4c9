"""Dataset-wide results of zoo entries, kept on disk so a second look is instant.

A result is computed once per (entry weights, what was asked) and written with
:func:`interp.results.save` (safetensors; loading builds only known result types and
never unpickles) to ``<store root>/<model>/results/<key>.safetensors``, the store root
being :func:`interp.store.default_root` (``$INTERP_CACHE``, ``interp dashboard
--cache``). The key hashes the weights' sha256, the test split's fingerprint and the request, so
retrained weights, other data or other settings are a miss, never a stale hit. A file that cannot be read (cut short,
from another version) is computed again and replaced. The dashboard's background jobs
and the reports both come here, so whichever runs first fills the cache for the other.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Callable

from interp import results
from interp.errors import InterpError
from interp.store import default_root, tensor_fingerprint

from . import Entry

VERSION = 3  # bump when a computation behind a cached result changes
_lock = threading.RLock()


def key_of(entry: Entry, request: dict) -> str:
    """The cache key of ``request`` (JSON values) for ``entry``'s weights."""
    identity = {"model": entry.name, "weights": entry.card.get("weights", {}).get("sha256", ""),
                "data": _data_fingerprint(entry), "version": VERSION, "request": request}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _data_fingerprint(entry: Entry) -> str:
    """The test split's fingerprint (results depend on the data as much as on the weights)."""
    key = ("cache", "data")
    if key not in entry.memo:
        entry.memo[key] = tensor_fingerprint(*entry.test)
    return entry.memo[key]


def path_of(entry: Entry, request: dict) -> Path:
    return default_root() / entry.name / "results" / f"{key_of(entry, request)}.safetensors"


def cached(entry: Entry, request: dict):
    """The stored result of ``request``, or None when it was never computed (or cannot be read)."""
    key = ("cache", key_of(entry, request))
    if key in entry.memo:
        return entry.memo[key]
    path = path_of(entry, request)
    if not path.exists():
        return None
    try:
        result = results.load(path)
    except InterpError:  # damaged or from another format: computed again by the caller
        return None
    entry.memo[key] = result
    return result


def result(entry: Entry, request: dict, compute: Callable[[], object]):
    """The result of ``request``: from the cache, else ``compute()`` stored for next time."""
    found = cached(entry, request)
    if found is not None:
        return found
    value = compute()
    with _lock:
        try:
            results.save(value, path_of(entry, request))
        except InterpError:  # a read-only cache folder: the result still serves this process
            pass
        entry.memo[("cache", key_of(entry, request))] = value
    return value


__all__ = ["cached", "result", "key_of", "path_of", "VERSION"]
