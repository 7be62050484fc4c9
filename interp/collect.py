"""Dataset-wide capture: ``collect(model, data, layers, store)`` runs a dataset through a
model in batches and streams the chosen layers' activations to an on-disk store.

    col = interp.collect(model, (x, y), layers="features.*", store="cache/")
    col["features.0"]          # (n, 16, 8, 8) numpy memmap, read lazily
    col.hit                    # True when a previous call already stored exactly this

Memory is bounded by one batch: each batch's activations are written out and
dropped before the next (writing goes through the page cache, not the process's
memory). A second call with the same model weights, layers, reduction and data is
a cache hit and runs no forward pass; changing any of them is a miss. Hooks come
from :func:`interp.capture`, storage from :mod:`interp.store`; the model's
parameters and train/eval mode are left as they are.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ._checks import check_finite, run_model
from ._io import write_text
from .capture import LayerSpec, Reduce, _check_reduce, capture, module_names, select_layers
from .errors import InputError, StoreError
from .store import FORMAT_VERSION, Entry, Store, model_identity, tensor_fingerprint

DTYPE = np.float32


@dataclass(frozen=True)
class Collection:
    """Activations of a dataset, stored on disk. Index it by output name."""

    entry: Entry
    hit: bool  # True: read from the store, no forward pass ran

    @property
    def path(self) -> Path:
        return self.entry.path

    @property
    def meta(self) -> dict:
        return self.entry.meta

    @property
    def outputs(self) -> list[str]:
        return self.entry.outputs

    @property
    def n(self) -> int:
        return self.entry.n

    def __getitem__(self, output: str) -> np.ndarray:
        return self.entry.array(output)

    def __contains__(self, output: str) -> bool:
        return output in self.meta["outputs"]

    @property
    def labels(self) -> np.ndarray | None:
        return self.entry.extra("labels")

    @property
    def sample_ids(self) -> np.ndarray:
        ids = self.entry.extra("sample_ids")
        return ids if ids is not None else np.arange(self.n)

    def layout(self, output: str) -> str:
        """How ``output``'s axes are laid out (see :data:`interp.capture.LAYOUTS`)."""
        return self.meta["outputs"][output]["layout"]

    def channels_first(self, output: str) -> bool:
        """Whether ``output``'s units are its first per-sample axis (channels) or its last."""
        return self.layout(output) == "channels"

    def layer_of(self, output: str) -> str:
        return self.meta["outputs"][output]["layer"]

    def __repr__(self) -> str:
        return (f"Collection({self.meta['model']['name']}, {self.n} samples, {len(self.outputs)} outputs, "
                f"{'hit' if self.hit else 'computed'}, {str(self.path)!r})")


# ----------------------------------------------------------------------------- data

def _split_item(item: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(item, torch.Tensor):
        return item, None
    if isinstance(item, (tuple, list)) and item and isinstance(item[0], torch.Tensor):
        y = item[1] if len(item) > 1 and isinstance(item[1], torch.Tensor) else None
        return item[0], y
    raise InputError(f"each batch must be a tensor or a (inputs, labels, ...) tuple; got {type(item).__name__}")


@dataclass
class _Data:
    batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]]
    n: int | None
    fingerprint: str
    labels: torch.Tensor | None  # known up front (tensor data) or None


def _prepare(data: Any, batch_size: int, dataset: str | None) -> _Data:
    if isinstance(data, torch.Tensor) or (isinstance(data, tuple) and data
                                          and isinstance(data[0], torch.Tensor) and len(data) <= 3):
        x, y = _split_item(data)
        if x.ndim == 0 or len(x) == 0:
            raise InputError(f"data must hold at least one sample; got inputs of shape {tuple(x.shape)}")
        if y is not None and len(y) != len(x):
            raise InputError(f"got {len(y)} labels for {len(x)} inputs")
        check_finite(x, "data")
        fingerprint = tensor_fingerprint(*(t for t in (x, y) if t is not None))  # a name is not enough

        def batches():
            for i in range(0, len(x), batch_size):
                yield x[i:i + batch_size], (y[i:i + batch_size] if y is not None else None)

        return _Data(batches(), len(x), fingerprint, y)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
        if not dataset:
            raise InputError("data is an iterable of batches, which cannot be fingerprinted without "
                             "reading it: pass dataset='a name for this data' so a later call can "
                             "reuse the store (or pass the inputs as one tensor)")
        n = len(data.dataset) if hasattr(data, "dataset") and hasattr(data.dataset, "__len__") else None
        return _Data((_split_item(item) for item in data), n, dataset_key(dataset), None)
    raise InputError(f"data must be a tensor of inputs, an (inputs, labels) tuple, or an iterable of "
                     f"batches; got {type(data).__name__}")


def _modes(model: nn.Module) -> str:
    """Which modules are in training mode (dropout and batch norm depend on it)."""
    training = [n for n, m in model.named_modules() if m.training]
    if not training:
        return "eval"
    return "train:" + hashlib.blake2b("|".join(training).encode(), digest_size=8).hexdigest()


def dataset_key(name: str) -> str:
    return "named:" + str(name)


def _code_digest(h, code) -> None:
    """Bytecode, constants, names and nested functions of ``code``, into hasher ``h``."""
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            _code_digest(h, const)
        else:
            h.update(repr(const).encode())


def _reduce_key(reduce: Reduce) -> Any:
    """What a reduction is, for the cache key: its name, or for a function its code
    (bytecode, constants, the names it calls, nested functions) and captured values.
    A callable object without code is keyed by its repr, which is unique per object
    unless the class defines a stable one: then keep that repr telling."""
    if reduce is None or isinstance(reduce, str):
        return reduce
    h = hashlib.blake2b(digest_size=8)
    h.update(getattr(reduce, "__qualname__", type(reduce).__qualname__).encode())
    code = getattr(reduce, "__code__", None)
    if code is not None:
        _code_digest(h, code)
        for cell in getattr(reduce, "__closure__", None) or ():
            h.update(repr(cell.cell_contents).encode())
    else:
        h.update(repr(reduce).encode())
    return "callable:" + h.hexdigest()


# --------------------------------------------------------------------------- writing

def _write_all(f, data: memoryview) -> None:
    """Write every byte (a raw file may take fewer per call); the GIL is released meanwhile."""
    while data.nbytes:
        data = data[f.write(data):]


class _Writer:
    """Writes batch arrays to their files on a background thread (bounded queue), so disk
    writes overlap the next batch's forward pass."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files: dict[str, Any] = {}
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    for name, array in item:
                        _write_all(self.files[name], memoryview(array).cast("B"))
                except BaseException as exc:  # reported by put() / close()
                    self.error = exc

    def _failed(self, exc: BaseException) -> StoreError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return StoreError(f"writing the store entry in {str(self.folder)!r} failed ({reason}); "
                          "free disk space or pass store= another folder")

    def put(self, arrays: list[tuple[str, np.ndarray]]) -> None:
        if self.error is not None:
            raise self._failed(self.error) from self.error
        try:
            for name, _ in arrays:
                if name not in self.files:
                    self.files[name] = open(self.folder / name, "wb", buffering=0)
        except OSError as exc:
            raise self._failed(exc) from exc
        self.queue.put(arrays)

    def close(self, quiet: bool = False) -> None:
        """Finish writing; raise what went wrong unless ``quiet`` (another error is on its way)."""
        self.queue.put(None)
        self.thread.join()
        for f in self.files.values():
            f.close()
        if self.error is not None and not quiet:
            raise self._failed(self.error) from self.error


# ---------------------------------------------------------------------------- collect

def collect(model: nn.Module, data: Any, layers: LayerSpec = None, store: str | Path | Store | None = None,
            *, reduce: Reduce = None, batch_size: int = 256, name: str | None = None,
            dataset: str | None = None, sample_ids: Iterable | None = None, refresh: bool = False,
            progress: bool = True) -> Collection:
    """Run ``data`` through ``model`` and store the activations of ``layers``.

    ``data``: a tensor of inputs, an ``(inputs, labels)`` tuple (labels are stored too),
    or an iterable of batches such as a DataLoader or a list (then name it with
    ``dataset=``: an iterable cannot be fingerprinted without reading it). ``layers`` and
    ``reduce`` as for :func:`interp.capture`. ``store``: a folder (default
    :func:`interp.store.default_root`). ``name``: how the model is filed in the store
    (default: its class name). ``refresh``: recompute even if stored.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"collect needs an nn.Module; got {type(model).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer; got {batch_size!r}")
    _check_reduce(reduce)
    names = select_layers(model, layers, module_names(model))
    prepared = _prepare(data, batch_size, dataset)
    store = store if isinstance(store, Store) else Store(store)
    ident = model_identity(model, name)
    ids = None if sample_ids is None else np.asarray(list(sample_ids))
    if ids is not None and ids.dtype == object:
        raise InputError("sample_ids must be numbers or strings")
    identity = {"format": FORMAT_VERSION, "weights": ident.weights, "architecture": ident.architecture,
                "training": _modes(model), "layers": names, "reduce": _reduce_key(reduce),
                "data": prepared.fingerprint, "dtype": np.dtype(DTYPE).name,
                "sample_ids": None if ids is None else tensor_fingerprint(torch.from_numpy(
                    np.frombuffer(ids.tobytes(), dtype=np.uint8).copy()))}
    key = hashlib.blake2b(json.dumps(identity, sort_keys=True).encode(), digest_size=12).hexdigest()
    if not refresh:
        found = store.lookup(ident, key, {"identity": identity})
        if found is not None:
            return Collection(found, hit=True)
    with store.writing(ident, key, replace=refresh) as tmp:
        meta = _run(model, prepared, names, reduce, tmp, batch_size, progress)
        if ids is not None and len(ids) != meta["n"]:
            raise InputError(f"got {len(ids)} sample_ids for {meta['n']} samples")
        if ids is not None:
            np.save(tmp / "sample_ids.npy", ids, allow_pickle=False)
        meta.update({"identity": identity, "key": key, "batch_size": batch_size,
                     "model": {"name": ident.name, "class": ident.model_class, "weights": ident.weights,
                               "architecture": ident.architecture, "training": model.training},
                     "dataset": dataset, "created": datetime.datetime.now().isoformat(timespec="seconds"),
                     "torch": torch.__version__})
        write_text(tmp / "meta.json", json.dumps(meta, indent=1))
    entry = store.lookup(ident, key, {"identity": identity})
    if entry is None:
        raise StoreError(f"store {str(store.root)!r} did not keep the entry just written; "
                         "is another process deleting it?")
    return Collection(entry, hit=False)


def _run(model: nn.Module, prepared: _Data, names: list[str], reduce: Reduce, folder: Path,
         batch_size: int, progress: bool) -> dict:
    from .store import output_file

    outputs: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    labels: list[torch.Tensor] = []
    n = 0
    start = time.perf_counter()
    writer = _Writer(folder)
    total = None if prepared.n is None else -(-prepared.n // batch_size)
    failed = True
    try:
        with tqdm(total=total, desc="collect", unit="batch", disable=not progress, leave=False) as bar, \
                capture(model, names, reduce=reduce, track_layout=True) as rec:  # hooks on for the whole run
            for xb, yb in prepared.batches:
                if prepared.n is None:
                    check_finite(xb, f"batch {bar.n}")
                if n == 0:
                    run_model(model, xb, "input batch")  # a model refusing the data says so clearly
                else:
                    model(xb)
                arrays = []
                seen = set()
                for out, base, t in rec.entries():
                    seen.add(out)
                    axis = rec.batch_axis[base]
                    t = t.movedim(axis, 0) if axis else t
                    if n == 0 and out not in outputs and out not in skipped:
                        if t.ndim == 0 or t.shape[0] != len(xb):
                            skipped[out] = f"not one row per sample (shape {tuple(t.shape)})"
                            continue
                        outputs[out] = {"layer": rec.layer_of[base], "shape": list(t.shape[1:]),
                                        "dtype": np.dtype(DTYPE).name, "file": output_file(out),
                                        "layout": rec.layout[base], "reduced": reduce is not None}
                    if out in skipped:
                        continue
                    if out not in outputs or list(t.shape[1:]) != outputs[out]["shape"] or t.shape[0] != len(xb):
                        raise InputError(f"output {out!r} has shape {tuple(t.shape)} in this batch but "
                                         f"{outputs.get(out, {}).get('shape')} per sample before; collect "
                                         "needs outputs with one fixed-shape row per sample")
                    arrays.append((outputs[out]["file"], np.ascontiguousarray(t.numpy(), dtype=DTYPE)))
                missing = set(outputs) - seen
                if missing:
                    raise InputError(f"outputs {sorted(missing)} were recorded in earlier batches but not "
                                     "in this one; collect needs the same forward path for every batch")
                writer.put(arrays)
                rec.clear()  # after the first batch this also ends layout tracking
                if yb is not None:
                    labels.append(yb.detach().cpu())
                n += len(xb)
                bar.update()
        failed = False
    finally:
        writer.close(quiet=failed)  # an error already on its way is the one to report
    if n == 0:
        raise InputError("data yielded no samples")
    if prepared.labels is not None:
        labels = [prepared.labels]
    if labels:
        np.save(folder / "labels.npy", torch.cat(labels).numpy(), allow_pickle=False)
    return {"n": n, "outputs": outputs, "skipped": skipped, "seconds": round(time.perf_counter() - start, 3),
            "layers": names, "reduce": reduce if reduce is None or isinstance(reduce, str) else "callable"}


__all__ = ["collect", "Collection"]
