"""A layer's activations over a dataset, mapped: collected, projected, scored and kept.

    m = interp.layer_projection.project_layer(model, x, "features.4", method="pca", labels=y)
    m.coordinates, m.quality                              # (n, 2) map, and how far to trust it

:func:`project_layer` composes :func:`interp.collect` (the layer's output over the data,
flattened or pooled, in the store) with a :mod:`interp.projection` estimator and
:func:`interp.projection.quality`, and keeps the :class:`~interp.projection.LayerProjection`
in the store (:meth:`interp.store.Store.result`), keyed by the model's weights, the data,
the layer, the method and its parameters, so a second request is read back. It is a
module of its own because it sits above the store and collect, while
:mod:`interp.projection` works on arrays and sits below them.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from .capture import module_names
from .collect import collect
from .errors import InputError, UnknownNameError
from .projection import DEFAULT_K, QUALITY_SAMPLES, LayerProjection, estimator, quality
from .store import Store, model_identity


def project_layer(model: nn.Module, data, layer: str, method: str = "pca", n_components: int = 2,
                  random_state: int | None = 0, *, labels=None, reduce: str | None = None, store=None,
                  name: str | None = None, dataset: str | None = None, k: int | None = None,
                  progress: bool = False, **params) -> LayerProjection:
    """Project ``layer``'s output over ``data`` (the model's inputs, as :func:`interp.collect`
    takes them; ``labels`` as there: they colour nothing here but score the map). ``reduce``: None
    flattens each sample's output, "mean" or "max" pools it over positions (space or
    time) first. ``dataset``: the name of an iterable of batches (as for collect). ``k``:
    neighbours for the quality numbers (default 10, fewer on small sets). Kept in the
    store: the same model, data, layer, method and parameters are read back."""
    est = estimator(method, n_components, random_state, **params)  # names checked before any work
    if reduce not in (None, "mean", "max"):
        raise InputError(f"reduce must be None (flatten), 'mean' or 'max' (pool over positions); got {reduce!r}")
    store = store if isinstance(store, Store) else Store(store)
    module = _module_of(model, layer)
    collection = collect(model, data, [module], store, labels=labels, reduce=reduce, name=name, dataset=dataset,
                         progress=progress)
    n = collection.n
    k = max(1, min(DEFAULT_K, min(n, QUALITY_SAMPLES) // 2 - 1)) if k is None else k
    outputs = [o for o in collection.outputs if o == layer or (module == layer and (
        o.startswith(f"{layer}.") or o.startswith(f"{layer}[")))]
    if len(outputs) != 1:
        raise InputError(f"layer {layer!r} gives {len(outputs)} outputs ({', '.join(outputs)}); name one of them"
                         if outputs else f"{layer!r} recorded nothing; it gave {', '.join(collection.outputs)}")
    output = outputs[0]
    request = {"kind": "projection", "collection": collection.meta["key"], "output": output, "method": method,
               "params": {k_: _plain(v) for k_, v in est.get_params().items()}, "k": k}

    def compute() -> LayerProjection:
        features = np.asarray(collection[output]).reshape(collection.n, -1)
        labels = collection.labels
        start = time.perf_counter()
        coords = est.fit_transform(features)
        seconds = time.perf_counter() - start
        q = quality(features, coords, labels, k=k)
        return LayerProjection(coordinates=torch.from_numpy(np.ascontiguousarray(coords)),
                               labels=None if labels is None else torch.as_tensor(np.asarray(labels)),
                               layer=output, method=method, params=request["params"], reduce=reduce,
                               features=features.shape[1], trustworthiness=q.trustworthiness,
                               agreement_map=q.agreement_map, agreement_original=q.agreement_original, k=q.k,
                               seconds=seconds, scored=q.samples)

    return store.result(model_identity(model, name), request, compute)


def _module_of(model: nn.Module, layer: str) -> str:
    """The module whose output ``layer`` names: itself, or for a part of a tuple output
    ("lstm.h", "lstm[h]") or one call of a module called several times ("relu:1") the
    module it belongs to."""
    modules = module_names(model)
    if layer in modules:
        return layer
    owners = [m for m in modules if any(layer.startswith(f"{m}{sep}") for sep in (".", "[", ":"))]
    if not owners:
        raise UnknownNameError("layer", layer, list(modules))
    return max(owners, key=len)


def _plain(v: Any):
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


__all__ = ["project_layer"]
