"""What a view showed for one sample and one set of options, kept so a second look is instant.

Per-sample results (attribution grids, relevance, a sample's sensitivity) take from a
tenth of a second to several seconds; a user stepping back and forth through samples,
methods or composites asks for the same ones again. :class:`ViewCache` keeps a view's
outputs (figures and texts) as JSON:

- in memory, least recently used first out, within ``MAX_BYTES`` of JSON text per server
  process (whatever the number of users: the results are the model's, shared by everyone);
- on disk beside the model's stored results (``<store root>/<model>/results/``, see
  :mod:`interp.study.cache`), written atomically, read back as JSON (never unpickled),
  within ``MAX_DISK_BYTES`` (1 GB) of view files per store: beyond it the least recently
  used (by modification time, renewed on each read) are deleted.

The key is the model's identity (its architecture and weights), the data's fingerprint,
the subject's metadata (class, feature and token names, ground truth, scaling), the weights
of the parts outside the model's module tree (a GAN's generator) and of its judge,
``VERSION`` of the computations (:data:`interp.study.cache.VERSION`), the view and
everything it was asked (sample, methods, options), so retrained weights, other data or
other names are a miss, never a stale hit. An edited sample (what-if) is kept in memory
only, keyed also by the test sample it came from. The same
request asked twice at once is computed once: the second waits for the first. An error is
not kept: asked again, it is computed again.

Written here rather than taken from ``flask-caching`` or ``diskcache``: both pickle what
they keep (diskcache to disk), and neither keys by the model's weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
from plotly.utils import PlotlyJSONEncoder

from interp._io import write_text
from interp.errors import InterpError
from interp.study import cache

MAX_BYTES = 256 * 2 ** 20  # JSON text kept in memory, per server process
MAX_DISK_BYTES = 2 ** 30  # view files kept on disk per store: the least recently used go first beyond it
PRUNE_EVERY = 16 * 2 ** 20  # bytes written between two looks at the disk's total
SUFFIX = ".view.json"


def _about(subject) -> dict:
    """What a view shows besides the model's outputs on the data: the subject's names and
    metadata (classes, features, vocabulary, ground truth, scaling), and for an edited
    sample which test sample it was and the test set it is judged against."""
    key = ("views", "about")
    if key not in subject.memo:
        from interp.store import tensor_fingerprint

        tensors = [t for t in (subject.truth, *(subject.scaling or ()), getattr(subject, "population", None))
                   if isinstance(t, torch.Tensor)]
        text = json.dumps([subject.classes, subject.features, subject.vocab, subject.task, subject.modality],
                          default=str)
        subject.memo[key] = {"about": hashlib.sha256(text.encode()).hexdigest()[:16]
                             + (tensor_fingerprint(*tensors) if tensors else ""),
                             "edited_from": getattr(subject, "edited_from", None),
                             **({"beside": outside} if (outside := _beside_the_model(subject)) else {})}
    return subject.memo[key]


def _beside_the_model(subject) -> dict:
    """The weights of what a view runs beside the model: parts outside its module tree (a
    GAN's generator beside its discriminator) and the judge labelling generated samples."""
    from interp.store import model_identity

    inside = {id(m) for m in subject.model.modules()}
    beside = {name: part for name, part in (subject.parts or {}).items()
              if isinstance(part, torch.nn.Module) and id(part) not in inside}
    if isinstance(getattr(subject, "judge", None), torch.nn.Module):
        beside["judge"] = subject.judge
    return {name: model_identity(part, name).weights for name, part in sorted(beside.items())}


class ViewCache:
    """View outputs by request: memory (LRU, ``max_bytes``) over disk (the store)."""

    def __init__(self, max_bytes: int = MAX_BYTES, disk: bool = True, max_disk_bytes: int = MAX_DISK_BYTES):
        self.max_bytes = int(max_bytes)
        self.disk = disk
        self.max_disk_bytes = int(max_disk_bytes)
        self._written = PRUNE_EVERY  # the first write looks at what earlier runs left
        self._kept: OrderedDict[str, str] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._busy: dict[str, threading.Lock] = {}
        self.hits = self.misses = self.disk_hits = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, subject, view: str, request: dict, compute: Callable[[], dict]) -> dict:
        """The outputs of ``view`` for ``request`` on ``subject``: kept ones, else
        ``compute()`` (a dict of JSON values and plotly figures) kept for next time. The
        same plain dict (figures as dicts) either way."""
        path, key, disk = self._where(subject, view, request)
        found = self._memory(key)
        if found is not None:
            return json.loads(found)
        with self._lock:
            busy = self._busy.setdefault(key, threading.Lock())
        with busy:  # one computation per request; whoever waited reads its result
            try:
                found = self._memory(key) or (self._read(path) if disk else None)
                if found is None:
                    with self._lock:
                        self.misses += 1
                    found = json.dumps(compute(), cls=PlotlyJSONEncoder)
                    if disk:
                        self._write(path, found)
                self._keep(key, found)
            finally:
                with self._lock:
                    self._busy.pop(key, None)
        return json.loads(found)

    def _where(self, subject, view: str, request: dict) -> tuple[Path, str, bool]:
        """(the file on disk, the key in memory, whether it is kept on disk: an edit is not)."""
        path = cache.path_of(subject, {"view": view, **request, **_about(subject)})
        return path, str(path), self.disk and getattr(subject, "edited_from", None) is None

    def key(self, subject, view: str, request: dict) -> str:
        """The key of ``request``'s outputs: equal keys, equal outputs."""
        return self._where(subject, view, request)[1]

    def find(self, subject, view: str, request: dict) -> dict | None:
        """The kept outputs of ``request`` (memory, then disk), None if they would have to be computed."""
        path, key, disk = self._where(subject, view, request)
        found = self._memory(key)
        if found is None and disk:
            found = self._read(path)
            if found is not None:
                self._keep(key, found)
        return None if found is None else json.loads(found)

    def _memory(self, key: str) -> str | None:
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                self.hits += 1
            return found

    def _keep(self, key: str, text: str) -> None:
        with self._lock:
            if key in self._kept:
                return
            if len(text) > self.max_bytes:  # larger than the whole cache: served, not kept
                return
            self._kept[key] = text
            self._bytes += len(text)
            while self._bytes > self.max_bytes:
                _, old = self._kept.popitem(last=False)
                self._bytes -= len(old)

    def _read(self, path: Path) -> str | None:
        if not self.disk:
            return None
        try:
            text = path.with_suffix(SUFFIX).read_text(encoding="utf-8")
            json.loads(text)  # a damaged file is computed again, never served
        except (OSError, ValueError):
            return None
        with self._lock:
            self.disk_hits += 1
        try:
            os.utime(path.with_suffix(SUFFIX))  # used now: the last to be pruned
        except OSError:
            pass
        return text

    def _write(self, path: Path, text: str) -> None:
        if not self.disk:
            return
        try:
            write_text(path.with_suffix(SUFFIX), text)
        except (InterpError, OSError):  # a read-only store, a full disk: kept in memory only
            return
        with self._lock:
            self._written += len(text)
            due = self._written >= min(PRUNE_EVERY, self.max_disk_bytes // 4 or 1)
            if due:
                self._written = 0
        if due:
            self.prune()

    def prune(self, root: Path | None = None) -> int:
        """Delete the least recently used view files of the store (``root``: the default
        store's) beyond ``max_disk_bytes``, down to 80% of it; returns how many went. Only
        view files: the analyses' own results stay."""
        from interp.store import Store

        root = Path(root) if root is not None else Store().root
        files = []
        for path in root.rglob("*" + SUFFIX):
            try:
                st = path.stat()
            except OSError:  # pruned by another process meanwhile
                continue
            files.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in files)
        if total <= self.max_disk_bytes:
            return 0
        gone = 0
        for _, size, path in sorted(files, key=lambda f: f[0]):
            if total <= 0.8 * self.max_disk_bytes:
                break
            try:
                path.unlink()
            except OSError:
                continue
            total -= size
            gone += 1
        return gone

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._bytes = 0


VIEWS = ViewCache()

__all__ = ["ViewCache", "VIEWS", "MAX_BYTES"]
