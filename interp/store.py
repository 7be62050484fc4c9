"""Dataset-wide results on disk: streamed in, memory-mapped out, never half-written.

Format: one folder per entry holding ``meta.json`` and one raw little-endian
array file per recorded output (``<output>.bin``, samples first), read back with
``numpy.memmap``. Chosen over zarr or HDF5 because the access pattern is simple
(append whole batches while collecting; read rows for a sample or columns for a
unit afterwards), raw files need no dependency and no chunk tuning, any numpy
can read them, and writes go through the page cache, so memory stays bounded
whatever the dataset size (page cache is not the writer's RSS).

Layout::

    <root>/<model name>/model.json          which model owns this folder (architecture hash)
    <root>/<model name>/<key>/meta.json     identity: weights hash, layers, data fingerprint, shapes
    <root>/<model name>/<key>/<output>.bin  (n, *shape) float32
    <root>/<model name>/results/<key>.safetensors   a small analysis result (interp.results)

``key`` hashes everything the arrays depend on (weights, layers, reduction, data),
so changing any of them is a miss, never a stale hit. Small results of analyses
(a sensitivity curve, a projection) are one file each, written by
:func:`interp.results.save` (no pickle) and keyed by the model's architecture and
weights and the request (:meth:`Store.result`). An entry is written into a
temporary folder and renamed into place only when complete (rename is atomic), so
an interrupted run leaves nothing a later call could take as finished. A model
folder written by a different architecture under the same name is refused with an
:class:`~interp.errors.StoreError`; so is an entry whose metadata does not match
the key it sits under.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ._io import write_text
from .errors import StoreError

FORMAT_VERSION = 1
RESULTS = "results"  # the folder of small results in a model's folder
_SAFE = "-_.:"


def default_root() -> Path:
    """``$INTERP_CACHE``, else ``$XDG_CACHE_HOME/interp``, else ``~/.cache/interp``."""
    if os.environ.get("INTERP_CACHE"):
        return Path(os.environ["INTERP_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "interp"


_PARALLEL_BYTES = 1 << 20


def _digest(data: memoryview) -> bytes:
    """sha256 of ``data``; above 1 MB as a two-level hash over parts hashed on parallel
    threads (hashlib releases the GIL), so fingerprinting a dataset costs ~2 ms per 10 MB."""
    if data.nbytes <= _PARALLEL_BYTES:
        return hashlib.sha256(data).digest()
    parts = min(4, os.cpu_count() or 1, -(-data.nbytes // _PARALLEL_BYTES))
    step = -(-data.nbytes // parts)
    chunks = [data[i:i + step] for i in range(0, data.nbytes, step)]
    digests: list[bytes] = [b""] * len(chunks)

    def work(i: int) -> None:
        digests[i] = hashlib.sha256(chunks[i]).digest()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, len(chunks))]
    for t in threads:
        t.start()
    work(0)
    for t in threads:
        t.join()
    return hashlib.sha256(b"tree" + b"".join(digests)).digest()


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    t = t.detach().cpu().contiguous()
    return memoryview(t.view(torch.uint8).numpy()) if t.numel() else memoryview(b"")


def tensor_fingerprint(*tensors: torch.Tensor) -> str:
    """A hash of the values, shapes and dtypes of ``tensors``."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(f"{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(_digest(_tensor_bytes(t)))
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    model_class: str
    architecture: str  # hash of module types, parameter/buffer names, shapes, dtypes
    weights: str       # hash of parameter and buffer values


def model_identity(model: nn.Module, name: str | None = None) -> ModelIdentity:
    arch, weights = hashlib.sha256(), hashlib.sha256()
    for path, module in model.named_modules():
        arch.update(f"{path}:{type(module).__qualname__};".encode())
    for key, value in model.state_dict().items():
        arch.update(f"{key}{tuple(value.shape)}{value.dtype};".encode())
        weights.update(_digest(_tensor_bytes(value)))
    name = name or type(model).__name__
    return ModelIdentity(name=name, model_class=type(model).__qualname__,
                         architecture=arch.hexdigest()[:32], weights=weights.hexdigest()[:32])


def _folder_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in _SAFE else "_" for c in name).strip(".")
    return cleaned or "model"


def output_file(output: str) -> str:
    """File name of an output's array (module paths may hold characters files should not)."""
    return _folder_name(output) + "-" + hashlib.md5(output.encode()).hexdigest()[:6] + ".bin"


class Entry:
    """A complete stored entry: its metadata and its arrays, memory-mapped read-only."""

    def __init__(self, path: Path, meta: dict):
        self.path = Path(path)
        self.meta = meta

    @property
    def outputs(self) -> list[str]:
        return list(self.meta["outputs"])

    @property
    def n(self) -> int:
        return int(self.meta["n"])

    def array(self, output: str) -> np.ndarray:
        """``(n, *shape)`` array of ``output``, memory-mapped (nothing is read until used)."""
        info = self.meta["outputs"].get(output)
        if info is None:
            from .errors import UnknownNameError

            raise UnknownNameError("stored output", output, self.outputs)
        shape = (self.n, *info["shape"])
        if self.n == 0 or int(np.prod(shape)) == 0:
            return np.zeros(shape, dtype=info["dtype"])
        return np.memmap(self.path / info["file"], dtype=info["dtype"], mode="r", shape=shape)

    def extra(self, name: str) -> np.ndarray | None:
        path = self.path / f"{name}.npy"
        return np.load(path, allow_pickle=False) if path.is_file() else None


class Store:
    """A folder of entries, grouped by model name (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def model_dir(self, identity: ModelIdentity) -> Path:
        return self.root / _folder_name(identity.name)

    def _claim(self, identity: ModelIdentity) -> Path:
        """The model's folder, created if needed; refuses one owned by another architecture."""
        folder = self.model_dir(identity)
        marker = folder / "model.json"
        if marker.is_file():
            try:
                owner = json.loads(marker.read_text())
            except ValueError:
                raise StoreError(f"store folder {str(folder)!r} has a corrupt model.json; "
                                 "delete the folder to start afresh") from None
            if owner.get("architecture") != identity.architecture:
                raise StoreError(
                    f"store folder {str(folder)!r} holds activations of a different model named "
                    f"{identity.name!r} ({owner.get('model_class')}, architecture "
                    f"{str(owner.get('architecture'))[:12]}); this {identity.model_class} has architecture "
                    f"{identity.architecture[:12]}: pass another name=, use another store, or delete "
                    "that folder")
            return folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_text(marker, json.dumps({"name": identity.name, "model_class": identity.model_class,
                                           "architecture": identity.architecture}, indent=2))
        except OSError as exc:
            raise StoreError(f"cannot write to store {str(self.root)!r} ({exc.strerror or exc}); "
                             "expected a writable folder (pass store= another path)") from None
        return folder

    def lookup(self, identity: ModelIdentity, key: str, expected: dict) -> Entry | None:
        """The complete entry for ``key``, or None. ``expected``: metadata fields it must match."""
        path = self.model_dir(identity) / key
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            return None
        if (self.model_dir(identity) / "model.json").is_file():
            self._claim(identity)  # same name, other architecture: refuse before reading
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError:
            raise StoreError(f"store entry {str(path)!r} has corrupt metadata; delete it to recompute") from None
        wrong = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
        if wrong:
            k, (got, want) = next(iter(wrong.items()))
            raise StoreError(f"store entry {str(path)!r} was written for other inputs ({k}: stored "
                             f"{str(got)[:40]!r}, expected {str(want)[:40]!r}); it is never reused: "
                             "delete it, or use another store")
        for info in meta["outputs"].values():
            f = path / info["file"]
            size = meta["n"] * int(np.prod(info["shape"])) * np.dtype(info["dtype"]).itemsize
            if not f.is_file() or f.stat().st_size != size:
                raise StoreError(f"store entry {str(path)!r} is damaged ({info['file']} has the wrong "
                                 "size); delete it to recompute")
        return Entry(path, meta)

    @contextlib.contextmanager
    def writing(self, identity: ModelIdentity, key: str, replace: bool = False) -> Iterator[Path]:
        """A temporary folder to fill; renamed to the entry's place only if the block succeeds.
        ``replace``: an existing entry under ``key`` (even a damaged one) is swapped out."""
        folder = self._claim(identity)
        _remove_stale(folder)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-{os.getpid()}-", dir=folder))
        except OSError as exc:
            raise StoreError(f"cannot write to store {str(self.root)!r} ({exc.strerror or exc}); "
                             "expected a writable folder") from None
        old = None
        try:
            yield tmp
            final = folder / key
            if replace and final.exists():
                old = folder / f".old-{key}-{os.getpid()}-{tmp.name[-8:]}"
                os.rename(final, old)  # aside first: the entry is never half old, half new
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / "meta.json").is_file():  # not a concurrent writer that won
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)

    def result_path(self, identity: ModelIdentity, request: dict) -> Path:
        """Where the result of ``request`` (JSON values: what was computed, on which data)
        for this model is kept."""
        key = hashlib.blake2b(json.dumps({"format": FORMAT_VERSION, "architecture": identity.architecture,
                                          "weights": identity.weights, "request": request},
                                         sort_keys=True, default=str).encode(), digest_size=12).hexdigest()
        return self.model_dir(identity) / RESULTS / f"{key}.safetensors"

    def cached_result(self, identity: ModelIdentity, request: dict):
        """The stored result of ``request``, or None (never computed, or unreadable: cut
        short, another format). A folder owned by another architecture is refused."""
        from . import results
        from .errors import InterpError

        path = self.result_path(identity, request)
        if not path.is_file():
            return None
        if (self.model_dir(identity) / "model.json").is_file():
            self._claim(identity)  # same name, other architecture: refuse before reading
        try:
            return results.load(path)
        except InterpError:
            return None

    def keep_result(self, identity: ModelIdentity, request: dict, value) -> Path:
        """Write ``value`` (an :mod:`interp.results` type) as the result of ``request``, atomically."""
        from . import results

        self._claim(identity)
        return results.save(value, self.result_path(identity, request))

    def result(self, identity: ModelIdentity, request: dict, compute: Callable[[], object]):
        """The result of ``request``: read back, else ``compute()`` and kept."""
        found = self.cached_result(identity, request)
        if found is None:
            found = compute()
            self.keep_result(identity, request, found)
        return found

    def entries(self, identity: ModelIdentity) -> list[Path]:
        folder = self.model_dir(identity)
        return sorted(p for p in folder.iterdir() if (p / "meta.json").is_file()) if folder.is_dir() else []


def _remove_stale(folder: Path) -> None:
    """Temporary folders of runs that died (their process is gone)."""
    for tmp in [*folder.glob(".tmp-*"), *folder.glob(".old-*")]:
        try:
            pid = int(tmp.name.split("-")[2])
            os.kill(pid, 0)
        except (IndexError, ValueError):
            continue
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            continue


__all__ = ["Store", "Entry", "ModelIdentity", "model_identity", "tensor_fingerprint", "default_root",
           "FORMAT_VERSION"]
