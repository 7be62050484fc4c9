"""Edited samples (what-if inputs), kept on the server by a key the page holds.

The page's ``current-sample`` store names an edit by key (``{"model", "index", "edit"}``);
the tensor stays here, so a 30-feature row or a 8×8 image does not travel with every
callback, and the edited subject (:func:`interp.study.whatif.edited`) is made once and
keeps its results. The key is a hash of the model, the sample and the edited values, so
two users making the same edit share it and nobody can name another's tensor without
making it. Bounded: the ``MAX_KEPT`` most recently used edits per process.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import torch

from interp.errors import InputError
from interp.study import whatif

MAX_KEPT = 256


class Edits:
    def __init__(self, max_kept: int = MAX_KEPT):
        self.max_kept = max_kept
        self._kept: OrderedDict[str, tuple] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, subject, index: int, x: torch.Tensor) -> str:
        """Check ``x`` as sample ``index`` of ``subject`` edited, keep it; its key."""
        edited = whatif.edited(subject, index, x)  # checked here: a bad edit never gets a key
        data = edited.inputs[0].contiguous()
        digest = hashlib.sha256(f"{subject.name}:{index}:{data.dtype}:{tuple(data.shape)}".encode()
                                + data.numpy().tobytes()).hexdigest()[:24]
        with self._lock:
            if digest not in self._kept:
                self._kept[digest] = (subject.name, index, edited)
            self._kept.move_to_end(digest)
            while len(self._kept) > self.max_kept:
                self._kept.popitem(last=False)
        return digest

    def get(self, key: str, name: str, index: int):
        """The edited subject of ``key``, if it is an edit of sample ``index`` of model ``name``."""
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
        if found is None or found[0] != name or found[1] != index:
            raise InputError("this edit is no longer kept (the server keeps the most recent "
                             f"{self.max_kept}); edit the sample again")
        return found[2]


EDITS = Edits()


def sample_of(catalog, current: dict | None):
    """(subject, index) a per-sample view shows for the page's current sample: the model's
    subject and the sample's index, or an edited sample's one-sample subject and 0."""
    current = current or {}
    subject = catalog.get(current.get("model"))
    index = int(current.get("index", 0))
    key = current.get("edit")
    if not key:
        return subject, index
    return EDITS.get(key, subject.name, index), 0


__all__ = ["Edits", "EDITS", "sample_of", "MAX_KEPT"]
