"""Dataset-wide results of subjects, kept in the store so a second look is instant.

A thin layer over :meth:`interp.store.Store.result`: the subject's model identity (the
same folder as its collected activations, ``<store root>/<name>/results/``), and a
request made of what was asked, the data's fingerprint and ``VERSION``. The
store keys the file by the model's architecture and weights and that request, so
retrained weights, other data or other settings are a miss, never a stale hit; an
unreadable file is computed again and replaced. The store root is
:func:`interp.store.default_root` (``$INTERP_CACHE``, ``interp dashboard --cache``).
Results are also kept on the subject in memory. The dashboard's background jobs and the
reports both come here, so whichever runs first fills the cache for the other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from ..errors import InterpError
from ..store import Store, model_identity, tensor_fingerprint
from ..subject import Subject
from .overview import model

VERSION = 3  # bump when a computation behind a cached result changes


def _identity(subject: Subject):
    key = ("cache", "identity")
    if key not in subject.memo:
        subject.memo[key] = model_identity(model(subject), subject.name)
    return subject.memo[key]


def _request(subject: Subject, request: dict) -> dict:
    """``request`` with the data's fingerprint (results depend on the data as much
    as on the weights) and the version of the computations."""
    key = ("cache", "data")
    if key not in subject.memo:
        subject.memo[key] = tensor_fingerprint(*(t for t in (subject.inputs, subject.labels) if t is not None))
    return {**request, "data": subject.memo[key], "version": VERSION}


def key_of(subject: Subject, request: dict) -> str:
    """A short key of ``request`` for ``subject`` (e.g. for background jobs)."""
    return path_of(subject, request).stem


def path_of(subject: Subject, request: dict) -> Path:
    return Store().result_path(_identity(subject), _request(subject, request))


def _memo_key(subject: Subject, request: dict) -> tuple:
    return ("cache", hashlib.sha256(json.dumps(_request(subject, request), sort_keys=True, default=str)
                                    .encode()).hexdigest(), str(Store().root))


def cached(subject: Subject, request: dict):
    """The stored result of ``request``, or None when it was never computed (or cannot be read)."""
    key = _memo_key(subject, request)
    if key not in subject.memo:
        found = Store().cached_result(_identity(subject), _request(subject, request))
        if found is None:
            return None
        subject.memo[key] = found
    return subject.memo[key]


def result(subject: Subject, request: dict, compute: Callable[[], object]):
    """The result of ``request``: from memory or the store, else ``compute()`` stored for next time."""
    key = _memo_key(subject, request)
    if key not in subject.memo:
        store, identity, full = Store(), _identity(subject), _request(subject, request)
        value = store.cached_result(identity, full)
        if value is None:
            value = compute()
            try:
                store.keep_result(identity, full, value)
            except InterpError:  # the store cannot be written (e.g. read-only): this process still has it
                pass
        subject.memo[key] = value
    return subject.memo[key]


__all__ = ["cached", "result", "key_of", "path_of", "VERSION"]
