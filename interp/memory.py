"""Keep freed CPU memory in the process instead of handing it back to the OS at once.

Why this exists: PyTorch's CPU tensors come from ``malloc``. glibc returns freed
memory at the top of its heap to the OS as soon as it exceeds a trim threshold
of a few MB, so code that keeps many activations alive and then drops them
(``capture``, dataset-wide collection) page-faults all of that memory again on
the next batch. Measured by ``make bench`` on the zoo CNN at batch 256 (2 cores):
recording every leaf costs 1.4-3.3x a plain forward with glibc's defaults (the
spread is the plain forward itself re-faulting a trimmed heap), 1.10x once freed
memory is retained: the hooks themselves are cheap, the page faults are not.

This is a process-wide setting. The library applies it itself, once, the first time
capture, collect or an attribution runs in a process (:func:`start_memory_reuse`),
so a library user gets the speed the ``interp`` command gets; set the environment
variable ``INTERP_MALLOC_DEFAULTS=1`` to keep glibc's defaults. Bounded: at most
``limit_mb`` of freed memory is kept. A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_MAX = 32 * 2**20  # glibc's own ceiling for its dynamic mmap threshold


@functools.lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None  # only glibc has it


def retain_freed_memory(limit_mb: int = 256) -> bool:
    """Let glibc keep up to ``limit_mb`` MB of freed memory for reuse; True if applied."""
    libc = _libc()
    if libc is None:
        return False
    limit = int(limit_mb) * 2**20
    ok = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_MAX) == 1
    ok &= libc.mallopt(_M_TRIM_THRESHOLD, max(limit, _MMAP_MAX)) == 1
    return bool(ok)


OPT_OUT = "INTERP_MALLOC_DEFAULTS"
_started: list[bool] = []


def start_memory_reuse() -> bool:
    """:func:`retain_freed_memory`, once per process, unless ``$INTERP_MALLOC_DEFAULTS`` is set
    (to anything but ``0`` or empty); True if it is on."""
    if not _started:
        opted_out = os.environ.get(OPT_OUT, "") not in ("", "0")
        _started.append(False if opted_out else retain_freed_memory())
    return _started[0]


def retaining() -> bool | None:
    """Whether the library has turned freed-memory retention on in this process (None: no
    analysis has run yet, so it has not decided)."""
    return _started[0] if _started else None


__all__ = ["retain_freed_memory", "start_memory_reuse", "retaining", "OPT_OUT"]
