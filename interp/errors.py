"""The exceptions users of interp see.

Every error a user can cause (a bad name, a bad shape, a bad file) raises a
subclass of :class:`InterpError`, itself a ``ValueError`` so that code written
against plain Python conventions still catches it. Messages name what was wrong
and what was expected; the CLI prints them as one line, without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InterpError(ValueError):
    """Base class of every error a user of interp can cause."""


class UnknownNameError(InterpError):
    """A model, layer, method or option name that does not exist."""

    def __init__(self, what: str, name: object, valid: Iterable[str], *, hint: str = ""):
        valid = list(valid)
        self.what, self.name, self.valid = what, name, valid
        close = difflib.get_close_matches(str(name), valid, n=5, cutoff=0.5)
        parts = [f"unknown {what} {name!r}"]
        if close:
            parts.append(f"did you mean {', '.join(map(repr, close))}?")
        if len(valid) <= 30:
            parts.append(f"valid: {', '.join(valid) if valid else '(none)'}")
        else:
            parts.append(f"{len(valid)} valid names, e.g. {', '.join(valid[:10])}, ...")
        if hint:
            parts.append(hint)
        super().__init__("; ".join(parts))


class WeightsError(InterpError):
    """A weights file that is missing, truncated, corrupt or does not fit the model."""


class InputError(InterpError):
    """An input tensor of the wrong shape, dtype or with non-finite values."""


class ModelError(InterpError):
    """A model that cannot be analysed as it is: it fails under an analysis although it
    runs on the input (e.g. an in-place write into a tensor the analysis needs), it
    normalises with batch statistics, or it has no values (the meta device). The message
    says what in the model is at fault and what to change."""


class TargetError(InterpError):
    """A target class that is out of range or of the wrong form."""


class CaptureError(InterpError):
    """Recorded activations that cannot be trusted (e.g. modified in place)."""


class StoreError(InterpError):
    """An on-disk store that cannot be written, or holds results of another model or input."""


__all__ = [
    "InterpError",
    "UnknownNameError",
    "WeightsError",
    "InputError",
    "ModelError",
    "TargetError",
    "CaptureError",
    "StoreError",
]
