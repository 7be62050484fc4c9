"""Dataset-wide results of zoo entries, kept in the store so a second look is instant.

A thin layer over :meth:`interp.store.Store.result`: the entry's model identity (the
same folder as its collected activations, ``<store root>/<model>/results/``), and a
request made of what was asked, the test split's fingerprint and ``VERSION``. The
store keys the file by the model's architecture and weights and that request, so
retrained weights, other data or other settings are a miss, never a stale hit; an
unreadable file is computed again and replaced. The store root is
:func:`interp.store.default_root` (``$INTERP_CACHE``, ``interp dashboard --cache``).
Results are also kept on the entry in memory. The dashboard's background jobs and the
reports both come here, so whichever runs first fills the cache for the other.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

from interp.errors import InterpError
from interp.store import Store, model_identity, tensor_fingerprint

from . import Entry

VERSION = 3  # bump when a computation behind a cached result changes


def _identity(entry: Entry):
    key = ("cache", "identity")
    if key not in entry.memo:
        entry.memo[key] = model_identity(entry.model, entry.name)
    return entry.memo[key]


def _request(entry: Entry, request: dict) -> dict:
    """``request`` with the test split's fingerprint (results depend on the data as much
    as on the weights) and the version of the computations."""
    key = ("cache", "data")
    if key not in entry.memo:
        entry.memo[key] = tensor_fingerprint(*entry.test)
    return {**request, "data": entry.memo[key], "version": VERSION}


def key_of(entry: Entry, request: dict) -> str:
    """A short key of ``request`` for ``entry`` (e.g. for background jobs)."""
    return path_of(entry, request).stem


def path_of(entry: Entry, request: dict) -> Path:
    return Store().result_path(_identity(entry), _request(entry, request))


def _memo_key(entry: Entry, request: dict) -> tuple:
    return ("cache", hashlib.sha256(json.dumps(_request(entry, request), sort_keys=True, default=str)
                                    .encode()).hexdigest(), str(Store().root))


def cached(entry: Entry, request: dict):
    """The stored result of ``request``, or None when it was never computed (or cannot be read)."""
    key = _memo_key(entry, request)
    if key not in entry.memo:
        found = Store().cached_result(_identity(entry), _request(entry, request))
        if found is None:
            return None
        entry.memo[key] = found
    return entry.memo[key]


def result(entry: Entry, request: dict, compute: Callable[[], object]):
    """The result of ``request``: from memory or the store, else ``compute()`` stored for next time."""
    key = _memo_key(entry, request)
    if key not in entry.memo:
        store, identity, full = Store(), _identity(entry), _request(entry, request)
        value = store.cached_result(identity, full)
        if value is None:
            value = compute()
            try:
                store.keep_result(identity, full, value)
            except InterpError:  # the store cannot be written (e.g. read-only): this process still has it
                pass
        entry.memo[key] = value
    return entry.memo[key]


__all__ = ["cached", "result", "key_of", "path_of", "VERSION"]
