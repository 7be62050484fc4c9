"""Atomic file writes: write to a temporary file in the target's folder, then rename.

A reader never sees a half-written file, and an interrupted write leaves the old
file (or none) in place. Used for weights, model cards, reports and stores.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import InterpError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InterpError(f"cannot write {str(path)!r}: {exc.strerror or exc}; "
                          "expected a writable folder") from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Atomically create ``path`` with ``writer(tmp_path)`` (for libraries that write files)."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)
