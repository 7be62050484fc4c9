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

``key`` hashes everything the arrays depend on (weights, the forward code of every
module class, layers, reduction, data), so changing any of them is a miss, never a
stale hit. Each array's sha256 is taken while it is written and kept in
``meta.json``; the first read of an entry in a process checks every array against
it (about 8 ms per 13 MB), so a damaged entry, even one damaged without changing its
size, is never served: :func:`interp.collect` warns and computes it again. Small results of analyses
(a sensitivity curve, a projection) are one file each, written by
:func:`interp.results.save` (no pickle) and keyed by the model's architecture and
weights and the request (:meth:`Store.result`). An entry is written into a
temporary folder and renamed into place only when complete (rename is atomic), so
an interrupted run leaves nothing a later call could take as finished. A model
folder written by a different architecture under the same name is refused with an
:class:`~interp.errors.StoreError`; an entry whose metadata does not match the key it
sits under, or whose arrays do not match their hashes, is :class:`Damaged`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import results
from ._io import write_text
from .code import functions_of, values_of
from .errors import InterpError, StoreError, UnknownNameError
from .hashing import digest, tensor_bytes, tensor_fingerprint

FORMAT_VERSION = 2  # 2: content hashes per array, the forward code in the key
RESULTS = "results"  # the folder of small results in a model's folder
_SAFE = "-_.:"


def default_root() -> Path:
    """``$INTERP_CACHE``, else ``$XDG_CACHE_HOME/interp``, else ``~/.cache/interp``."""
    if os.environ.get("INTERP_CACHE"):
        return Path(os.environ["INTERP_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "interp"


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    model_class: str
    architecture: str  # hash of module types, parameter/buffer names, shapes, dtypes
    weights: str       # hash of parameter and buffer values
    code: str = ""     # hash of the forward code of every module class


def code_digest(h, code) -> None:
    """Bytecode, constants, names and nested functions of ``code``, into hasher ``h`` (line
    numbers are not in it: moving a function does not change its digest)."""
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            code_digest(h, const)
        else:
            h.update(repr(const).encode())


def forward_code(model: nn.Module) -> str:
    """A hash of the code that runs ``model``: for every module, its class and settings
    (``extra_repr``: a convolution's padding, a LeakyReLU's slope) and the Python functions
    its forward runs (:func:`interp.code.functions_of`: the forward of the class and its
    bases, a forward set on the instance, the methods and helpers it calls, a few calls
    deep) with the plain values they read (class and module constants, the instance's own
    settings). A model whose forward, helpers or settings changed, with the same weights,
    is another model to the store."""
    h = hashlib.sha256()
    for m in model.modules():
        h.update(f"{type(m).__module__}.{type(m).__qualname__}|{m.extra_repr()}|".encode())  # Conv2d's padding
        for fn in functions_of(m):
            code_digest(h, fn.__code__)
            h.update(repr(values_of(m, fn)).encode())
    return h.hexdigest()[:32]


def model_identity(model: nn.Module, name: str | None = None) -> ModelIdentity:
    arch, weights = hashlib.sha256(), hashlib.sha256()
    for path, module in model.named_modules():
        arch.update(f"{path}:{type(module).__qualname__};".encode())
    tensors = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(model.named_buffers(remove_duplicate=False))  # non-persistent buffers too
    for key, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):  # extra state of some modules
            arch.update(f"{key}:{type(value).__name__};".encode())
            weights.update(repr(value).encode())
    for key, value in tensors.items():
        arch.update(f"{key}{tuple(value.shape)}{value.dtype};".encode())
        weights.update(digest(tensor_bytes(value)))
    name = name or type(model).__name__
    return ModelIdentity(name=name, model_class=type(model).__qualname__,
                         architecture=arch.hexdigest()[:32], weights=weights.hexdigest()[:32],
                         code=forward_code(model))


def _folder_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in _SAFE else "_" for c in name).strip(".")
    return cleaned or "model"


def output_file(output: str) -> str:
    """File name of an output's array (module paths may hold characters files should not)."""
    return _folder_name(output) + "-" + hashlib.md5(output.encode()).hexdigest()[:6] + ".bin"


_READ = 4 * 2**20


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 4 MB pieces (hashlib releases the GIL meanwhile)."""
    h = hashlib.sha256()
    buffer = bytearray(_READ)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buffer)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


class Damaged(StoreError):
    """A stored entry that cannot be trusted: its metadata is unreadable or belongs to other
    inputs, or an array's size or content does not match what was written."""


# entries checked in this process: path -> (size, mtime) of each file, so a second read
# of an unchanged entry skips the hashing
_VERIFIED: dict[str, tuple] = {}
_VERIFIED_LOCK = threading.Lock()


def _stamp(path: Path, files: list[str]) -> tuple:
    out = []
    for name in files:
        st = (path / name).stat()
        out.append((name, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


def stamp(path: Path, files) -> tuple:
    """The size, mtime and inode of ``files`` in ``path``: what tells a file changed since."""
    return _stamp(Path(path), sorted(files))


def trust(path: Path, files, written: tuple) -> None:
    """Count ``files`` in ``path`` as checked in this process when they are the ones this
    process just wrote and hashed (their :func:`stamp` is ``written``, taken before they were
    renamed into place): a first read right after a write does not hash them again."""
    if stamp(path, files) == written:
        with _VERIFIED_LOCK:
            _VERIFIED[str(Path(path))] = written


def verify(path: Path, hashes: dict[str, str]) -> None:
    """Check the files of an entry against their sha256 (``{file name: hex digest}``) once per
    process (again when a file changed since); a :class:`Damaged` error names the first that
    differs."""
    path = Path(path)
    stamp = _stamp(path, sorted(hashes))
    with _VERIFIED_LOCK:
        if _VERIFIED.get(str(path)) == stamp:
            return
    names = sorted(hashes)
    workers = min(len(names), os.cpu_count() or 1, 4)
    if workers > 1:  # hashlib releases the GIL: files are hashed side by side
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            digests = dict(zip(names, pool.map(lambda n: file_sha256(path / n), names)))
    else:
        digests = {n: file_sha256(path / n) for n in names}
    for name in names:
        if digests.get(name) != hashes[name]:
            raise Damaged(f"store entry {str(path)!r} is damaged ({name} does not match the hash it was written "
                          "with)")
    with _VERIFIED_LOCK:
        _VERIFIED[str(path)] = stamp


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
        """The complete entry for ``key``, or None. ``expected``: metadata fields it must match.
        An entry that does not match its key, its sizes or its content hashes (checked on the
        first read in a process) raises :class:`Damaged`."""
        path = self.model_dir(identity) / key
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            return None
        if (self.model_dir(identity) / "model.json").is_file():
            self._claim(identity)  # same name, other architecture: refuse before reading
        try:
            meta = json.loads(meta_path.read_text())
            outputs, n = meta["outputs"], int(meta["n"])
        except (ValueError, KeyError, TypeError):
            raise Damaged(f"store entry {str(path)!r} has corrupt metadata") from None
        wrong = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
        if wrong:
            k, (got, want) = next(iter(wrong.items()))
            raise Damaged(f"store entry {str(path)!r} was written for other inputs ({k}: stored "
                          f"{str(got)[:40]!r}, expected {str(want)[:40]!r})")
        hashes = dict(meta.get("hashes", {}))
        for info in outputs.values():
            f = path / info["file"]
            size = n * int(np.prod(info["shape"])) * np.dtype(info["dtype"]).itemsize
            if not f.is_file() or f.stat().st_size != size:
                raise Damaged(f"store entry {str(path)!r} is damaged ({info['file']} has the wrong size)")
            if "sha256" not in info:
                raise Damaged(f"store entry {str(path)!r} has no content hash for {info['file']}")
            hashes[info["file"]] = info["sha256"]
        for name in hashes:
            if not (path / name).is_file():
                raise Damaged(f"store entry {str(path)!r} is damaged ({name} is missing)")
        verify(path, hashes)
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
                                          "weights": identity.weights, "code": identity.code, "request": request},
                                         sort_keys=True, default=str).encode(), digest_size=12).hexdigest()
        return self.model_dir(identity) / RESULTS / f"{key}.safetensors"

    def cached_result(self, identity: ModelIdentity, request: dict):
        """The stored result of ``request``, or None (never computed, or damaged: cut short,
        another format, content that does not match its hash; damage is warned about). A
        folder owned by another architecture is refused."""
        path = self.result_path(identity, request)
        if not path.is_file():
            return None
        if (self.model_dir(identity) / "model.json").is_file():
            self._claim(identity)  # same name, other architecture: refuse before reading
        try:
            return results.load(path)
        except InterpError as exc:
            warnings.warn(f"{exc}; computing it again", RuntimeWarning, stacklevel=3)
            return None

    def keep_result(self, identity: ModelIdentity, request: dict, value) -> Path:
        """Write ``value`` (an :mod:`interp.results` type) as the result of ``request``, atomically."""
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


__all__ = ["Store", "Entry", "Damaged", "stamp", "trust", "ModelIdentity", "model_identity", "forward_code",
           "code_digest", "output_file", "tensor_fingerprint", "file_sha256", "verify", "default_root",
           "FORMAT_VERSION"]
