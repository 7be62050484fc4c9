"""Plain numpy helpers every figure builder shares: results as arrays, and colour bounds.

Builders take tensors or arrays alike (results hold tensors, tests and users pass
arrays); :func:`as_array` makes one of either, detached and on the CPU, so no builder
branches on the type.
"""

from __future__ import annotations

import numpy as np


def as_array(x) -> np.ndarray:
    """``x`` (a tensor, an array, or anything numpy takes) as a numpy array, off the graph."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def color_bound(v: np.ndarray) -> float:
    """The half-width of a colour scale centred on zero for ``v``: its largest finite
    magnitude, or 1.0 when it has none (all zero, empty or not finite)."""
    finite = np.abs(v[np.isfinite(v)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


__all__ = ["as_array", "color_bound"]
