"""Dataset-wide capture: ``collect(model, data, layers, store)`` runs a dataset through a
model in batches and streams the chosen layers' activations to an on-disk store.

    col = interp.collect(model, x, layers="features.*", store="cache/", labels=y)
    col["features.0"]          # (n, 16, 8, 8) numpy memmap, read lazily
    col.hit                    # True when a previous call already stored exactly this

``data`` is what the model takes, for the whole dataset: a tensor, a tuple of tensors
(several inputs) or a dict of tensors, each with the samples first; or an iterable of
such batches (a DataLoader). Labels are named, never guessed from position:
``labels=`` a tensor for in-memory data, or the index or key of the labels in each
batch of an iterable (``labels=1`` for a loader of ``(x, y)`` pairs).

Memory is bounded by one batch: each batch's activations are written out and
dropped before the next (writing goes through the page cache, not the process's
memory). A second call with the same model (weights and forward code), layers,
reduction and data is a cache hit and runs no forward pass; changing any of them is
a miss. Every array's content hash is checked on its first read in a process; a
damaged entry is computed again, with a warning. Outputs whose batch axis is not the
first in the model (a time-major LSTM and the layers applied to it) are stored batch
first and labelled with where the model had it (:meth:`Collection.batch_axis`).
Hooks come from :func:`interp.capture`, storage from :mod:`interp.store`; the model's
parameters and train/eval mode are left as they are, and a model whose batch-norms
would use (and update) the statistics of each batch is refused.
"""
from __future__ import annotations

import datetime
import hashlib
import inspect
import itertools
import json
import queue
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ._checks import check_finite, refuse_batch_statistics
from ._io import write_text
from .capture import (
    LayerSpec,
    Reduce,
    UnseenWrite,
    capture,
    check_reduce,
    module_names,
    probe_batch_axes,
    select_layers,
)
from .errors import InputError, StoreError
from .hashing import tensor_fingerprint
from .inplace import watch_always
from .inputs import Inputs, ModelRaised, as_inputs, blamed, check_model
from .memory import start_memory_reuse
from .store import (
    FORMAT_VERSION,
    Damaged,
    Entry,
    Store,
    code_digest,
    file_sha256,
    model_identity,
    output_file,
    stamp,
    trust,
)

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

    def batch_axis(self, output: str) -> int:
        """Where ``output``'s batch axis was in the model (1 for a time-major recurrent output
        and the layers applied to it); the stored array always has the samples first."""
        return int(self.meta["outputs"][output].get("batch_axis", 0))

    def __repr__(self) -> str:
        return (f"Collection({self.meta['model']['name']}, {self.n} samples, {len(self.outputs)} outputs, "
                f"{'hit' if self.hit else 'computed'}, {str(self.path)!r})")


# ----------------------------------------------------------------------------- data

@dataclass
class _Data:
    batches: Iterable[tuple[Inputs, torch.Tensor | None]]
    n: int | None
    fingerprint: str
    labels: torch.Tensor | None  # known up front (tensor data) or None
    inputs: dict                 # names, shapes and dtypes of the inputs (for the metadata)
    first: Inputs | None = None  # the first batch (to probe batch axes on), once known


def _positional_limit(model: nn.Module) -> float:
    """How many positional arguments ``model.forward`` takes (inf with ``*args``)."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return float("inf")
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return float("inf")
    return sum(p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
               for p in params)


def _check_arity(model: nn.Module, inputs: Inputs) -> None:
    if inputs.single or inputs.keys is not None:
        return
    limit = _positional_limit(model)
    if len(inputs.tensors) > limit:
        last = inputs.tensors[-1]
        hint = (" If the last is the labels, name them: collect(model, x, labels=y) (for batches of an iterable, "
                "labels=<their index or key>); collect never takes labels from their position."
                if last.ndim == 1 and not last.is_floating_point() else "")
        raise InputError(f"the data holds {len(inputs.tensors)} tensors, and {type(model).__name__}.forward takes "
                         f"{int(limit)} input{'s' if limit != 1 else ''}: a tuple is the model's inputs, one per "
                         f"argument.{hint}")
    last = inputs.tensors[-1]
    parameter = _positional_parameter(model, len(inputs.tensors) - 1)
    if last.ndim == 1 and not last.is_floating_point() and parameter is not None \
            and parameter.default is not inspect.Parameter.empty:
        warnings.warn(f"the data's last part looks like labels (one integer per sample) and goes to the optional "
                      f"argument {parameter.name!r} of {type(model).__name__}.forward: a tuple is the model's "
                      "inputs; name labels with labels=...", UserWarning, stacklevel=4)


def _positional_parameter(model: nn.Module, index: int):
    try:
        params = [p for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return None
    return params[index] if index < len(params) else None


def _describe_inputs(inputs: Inputs) -> dict:
    return {"names": inputs.names, "shapes": [list(t.shape[1:]) for t in inputs.tensors],
            "dtypes": [str(t.dtype).replace("torch.", "") for t in inputs.tensors]}


def _label_tensor(labels, n: int) -> torch.Tensor:
    try:
        y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"labels must be a tensor or array of one label per sample; got {type(labels).__name__}") \
            from None
    if y.ndim == 0 or len(y) != n:
        raise InputError(f"got {len(y) if y.ndim else 'a single'} label{'s' if y.ndim else ''} for {n} samples; "
                         "expected one label per sample")
    return y.detach().cpu()


def _split_batch(item: Any, labels, model: nn.Module) -> tuple[Inputs, torch.Tensor | None]:
    """One batch of an iterable: the model's inputs, and its labels when ``labels`` names
    them (an index into a tuple or list, or a key into a dict)."""
    y = None
    if labels is not None:
        try:
            if isinstance(item, dict):
                y = item[labels]
                item = {k: v for k, v in item.items() if k != labels}
            elif isinstance(item, (tuple, list)):
                index = labels if labels >= 0 else len(item) + labels
                y = item[index]
                item = [v for i, v in enumerate(item) if i != index]
                item = item[0] if len(item) == 1 else tuple(item)
            else:
                raise TypeError
        except (KeyError, IndexError, TypeError):
            raise InputError(f"labels={labels!r} names no part of a batch of type {type(item).__name__}; expected "
                             "the index of the labels in a tuple batch or their key in a dict batch") from None
    if isinstance(item, list):
        item = tuple(item)
    return as_inputs(item, model, at_least_2d=False), y


def _prepare(model: nn.Module, data: Any, labels, batch_size: int, dataset: str | None) -> _Data:
    if isinstance(data, (torch.Tensor, dict)) or (isinstance(data, tuple) and data
                                                   and all(isinstance(t, torch.Tensor) for t in data)):
        inputs = as_inputs(data, model, at_least_2d=False)
        _check_arity(model, inputs)
        if labels is not None and isinstance(labels, (int, str)):
            raise InputError(f"labels={labels!r} names a part of each batch of an iterable; with data in memory, "
                             "pass the labels themselves (a tensor of one label per sample)")
        n = inputs.batch
        y = _label_tensor(labels, n) if labels is not None else None
        for name, t in zip(inputs.names, inputs.tensors):
            check_finite(t, "data" if inputs.single else f"data {name}")
        parts = list(inputs.tensors) + ([y] if y is not None else [])
        fingerprint = tensor_fingerprint(*parts) + ("" if inputs.single else "|" + "|".join(inputs.names))

        def batches():
            for i in range(0, n, batch_size):
                yield inputs.rows(slice(i, i + batch_size)), None

        return _Data(batches(), n, fingerprint, y, _describe_inputs(inputs), inputs)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        if not dataset:
            raise InputError("data is an iterable of batches, which cannot be fingerprinted without "
                             "reading it: pass dataset='a name for this data' so a later call can "
                             "reuse the store (or pass the inputs as tensors)")
        if labels is not None and not isinstance(labels, (int, str)) or isinstance(labels, bool):
            raise InputError("with an iterable of batches, labels= names where the labels are in each batch (an "
                             f"index or a key); got {type(labels).__name__}")
        n = len(data.dataset) if hasattr(data, "dataset") and hasattr(data.dataset, "__len__") else None
        items = iter(data)
        try:
            first = _split_batch(next(items), labels, model)
        except StopIteration:
            raise InputError("data yielded no samples") from None
        rest = (_split_batch(item, labels, model) for item in items)
        return _Data(itertools.chain([first], rest), n, dataset_key(dataset) + f"|labels={labels!r}", None, {},
                     first[0])
    raise InputError(f"data must be the model's inputs (a tensor, a tuple or a dict of tensors) or an iterable of "
                     f"batches; got {type(data).__name__}")


def _modes(model: nn.Module) -> str:
    """Which modules are in training mode (dropout and batch norm depend on it)."""
    training = [n for n, m in model.named_modules() if m.training]
    if not training:
        return "eval"
    return "train:" + hashlib.blake2b("|".join(training).encode(), digest_size=8).hexdigest()


def dataset_key(name: str) -> str:
    return "named:" + str(name)


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
        code_digest(h, code)
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
        self.hashes: dict[str, Any] = {}  # file -> sha256 of what was written
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
                        data = memoryview(array).cast("B")
                        _write_all(self.files[name], data)
                        self.hashes[name].update(data)
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
                    self.hashes[name] = hashlib.sha256()
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
            *, labels=None, reduce: Reduce = None, batch_size: int = 256, name: str | None = None,
            dataset: str | None = None, sample_ids: Iterable | None = None, refresh: bool = False,
            progress: bool = True) -> Collection:
    """Run ``data`` through ``model`` and store the activations of ``layers``.

    ``data``: the model's inputs for every sample (a tensor, a tuple of tensors for several
    inputs, a dict of tensors), or an iterable of such batches such as a DataLoader (then
    name it with ``dataset=``: an iterable cannot be fingerprinted without reading it).
    ``labels``: one label per sample (a tensor or array) for data in memory, or for an
    iterable the index or key of the labels in each batch (``labels=1`` for ``(x, y)``
    batches); stored beside the activations. ``layers`` and ``reduce`` as for
    :func:`interp.capture`. ``store``: a folder (default :func:`interp.store.default_root`).
    ``name``: how the model is filed in the store (default: its class name). ``refresh``:
    recompute even if stored.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"collect needs an nn.Module; got {type(model).__name__}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer; got {batch_size!r}")
    check_reduce(reduce)
    check_model(model, None, "collect")
    refuse_batch_statistics(model, "activations")
    start_memory_reuse()
    names = select_layers(model, layers, module_names(model))
    prepared = _prepare(model, data, labels, batch_size, dataset)
    store = store if isinstance(store, Store) else Store(store)
    ident = model_identity(model, name)
    ids = None if sample_ids is None else np.asarray(list(sample_ids))
    if ids is not None and ids.dtype == object:
        raise InputError("sample_ids must be numbers or strings")
    identity = {"format": FORMAT_VERSION, "weights": ident.weights, "architecture": ident.architecture,
                "code": ident.code, "training": _modes(model), "layers": names, "reduce": _reduce_key(reduce),
                "data": prepared.fingerprint, "dtype": np.dtype(DTYPE).name,
                "sample_ids": None if ids is None else tensor_fingerprint(torch.from_numpy(
                    np.frombuffer(ids.tobytes(), dtype=np.uint8).copy()))}
    key = hashlib.blake2b(json.dumps(identity, sort_keys=True).encode(), digest_size=12).hexdigest()
    if not refresh:
        try:
            found = store.lookup(ident, key, {"identity": identity})
        except Damaged as damage:
            warnings.warn(f"{damage}; computing it again", RuntimeWarning, stacklevel=2)
            refresh = True
        else:
            if found is not None:
                return Collection(found, hit=True)
    with store.writing(ident, key, replace=refresh) as tmp:
        try:
            meta = _run(model, prepared, names, reduce, tmp, batch_size, progress)
        except UnseenWrite:  # a write the source did not show: watch every forward of this model, again
            watch_always(model)
            meta = _run(model, _prepare(model, data, labels, batch_size, dataset), names, reduce, tmp, batch_size,
                        progress)
        if ids is not None and len(ids) != meta["n"]:
            raise InputError(f"got {len(ids)} sample_ids for {meta['n']} samples")
        if ids is not None:
            np.save(tmp / "sample_ids.npy", ids, allow_pickle=False)
        meta["hashes"] = {f.name: file_sha256(f) for f in (tmp / "labels.npy", tmp / "sample_ids.npy")
                          if f.is_file()}
        meta.update({"identity": identity, "key": key, "batch_size": batch_size,
                     "model": {"name": ident.name, "class": ident.model_class, "weights": ident.weights,
                               "architecture": ident.architecture, "code": ident.code,
                               "training": model.training},
                     "inputs": prepared.inputs,
                     "dataset": dataset, "created": datetime.datetime.now().isoformat(timespec="seconds"),
                     "torch": torch.__version__})
        write_text(tmp / "meta.json", json.dumps(meta, indent=1))
        files = [info["file"] for info in meta["outputs"].values()] + list(meta["hashes"])
        written = stamp(tmp, files)
    trust(store.model_dir(ident) / key, files, written)  # hashed as written: not hashed again to be read
    entry = store.lookup(ident, key, {"identity": identity})
    if entry is None:
        raise StoreError(f"store {str(store.root)!r} did not keep the entry just written; "
                         "is another process deleting it?")
    return Collection(entry, hit=False)


def _run(model: nn.Module, prepared: _Data, names: list[str], reduce: Reduce, folder: Path,
         batch_size: int, progress: bool) -> dict:
    outputs: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    labels: list[torch.Tensor] = []
    n = 0
    start = time.perf_counter()
    writer = _Writer(folder)
    total = None if prepared.n is None else -(-prepared.n // batch_size)
    failed = True
    current: list[Inputs] = [prepared.first]
    try:
        # where each output's batch is, from copies of the first sample (two forwards of 2 and 3 rows):
        # what settles time-major outputs as long as the batch
        _check_arity(model, prepared.first)
        known = probe_batch_axes(model, prepared.first, names)
        with tqdm(total=total, desc="collect", unit="batch", disable=not progress, leave=False) as bar, \
                capture(model, names, reduce=reduce, track_layout=True, batch_axes=known) as rec:
            for inputs, yb in prepared.batches:
                current[:] = [inputs]
                if prepared.n is None:
                    _check_arity(model, inputs)
                    for part, t in zip(inputs.names, inputs.tensors):
                        check_finite(t, f"batch {bar.n}" + ("" if inputs.single else f" {part}"))
                size = inputs.batch
                inputs.copy().call(model)  # a forward may write into its input: not into the caller's data
                arrays = []
                seen = set()
                for out, base, t in rec.entries():
                    seen.add(out)
                    axis = rec.batch_axis[base]
                    t = t.movedim(axis, 0) if axis else t
                    if n == 0 and out not in outputs and out not in skipped:
                        if t.ndim == 0 or t.shape[0] != size:
                            skipped[out] = f"not one row per sample (shape {tuple(t.shape)})"
                            continue
                        if known and base not in known:  # the probe saw it keep its length as the batch grew
                            skipped[out] = f"does not grow with the batch (shape {tuple(t.shape)})"
                            continue
                        outputs[out] = {"layer": rec.layer_of[base], "shape": list(t.shape[1:]),
                                        "dtype": np.dtype(DTYPE).name, "file": output_file(out),
                                        "layout": rec.layout[base], "reduced": reduce is not None,
                                        "batch_axis": rec.source_axis.get(base, axis)}
                    if out in skipped:
                        continue
                    if out not in outputs or t.ndim == 0 or list(t.shape[1:]) != outputs[out]["shape"] \
                            or t.shape[0] != size:
                        lost = " (a batch of one sample lost its batch axis: a squeeze in the forward?)" \
                            if size == 1 or t.ndim == 0 else ""
                        raise InputError(f"output {out!r} has shape {tuple(t.shape)} in this batch of {size} but "
                                         f"{outputs.get(out, {}).get('shape')} per sample before{lost}; collect "
                                         "needs outputs with one fixed-shape row per sample (choose a batch_size "
                                         "that leaves no batch of one)")
                    arrays.append((outputs[out]["file"], np.ascontiguousarray(t.numpy(), dtype=DTYPE)))
                missing = set(outputs) - seen
                if missing:
                    raise InputError(f"outputs {sorted(missing)} were recorded in earlier batches but not "
                                     "in this one; collect needs the same forward path for every batch")
                writer.put(arrays)
                rec.clear()  # after the first batch this also ends layout tracking
                if yb is not None:
                    labels.append(torch.as_tensor(yb).detach().cpu())
                n += size
                bar.update()
        failed = False
    except ModelRaised as raised:
        raise blamed(model, current[0], "collect", raised) from raised.exc
    finally:
        writer.close(quiet=failed)  # an error already on its way is the one to report
    for info in outputs.values():
        info["sha256"] = writer.hashes[info["file"]].hexdigest() if info["file"] in writer.hashes \
            else hashlib.sha256().hexdigest()
    if n == 0:
        raise InputError("data yielded no samples")
    if prepared.labels is not None:
        labels = [prepared.labels]
    if labels:
        np.save(folder / "labels.npy", torch.cat(labels).numpy(), allow_pickle=False)
    return {"n": n, "outputs": outputs, "skipped": skipped, "seconds": round(time.perf_counter() - start, 3),
            "layers": names, "reduce": reduce if reduce is None or isinstance(reduce, str) else "callable"}


__all__ = ["collect", "Collection"]
