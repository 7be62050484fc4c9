"""The subjects a dashboard serves, by name: given ones, and ones made when first picked.

The dashboard reads only :class:`interp.Subject` objects, whoever made them. A subject
can be handed ready (``serve([subject])``) or as a :class:`Lazy` one, made on first
use: the CLI lists the zoo's models that way, so starting the dashboard does not load
eight models to show one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from interp.errors import InputError, UnknownNameError
from interp.subject import Subject
from interp.subject import subjects as checked


@dataclass(frozen=True)
class Lazy:
    """A subject made on first use: its name, a one-line label for the picker, the maker."""

    name: str
    label: str
    make: Callable[[], Subject]


def describe(subject: Subject) -> str:
    return f"{subject.name}  ·  {subject.task}, {subject.modality}"


class Catalog:
    """Subjects by name, in the order given (names unique)."""

    def __init__(self, items):
        items = list(items)
        ready = [s for s in items if not isinstance(s, Lazy)]
        if ready:
            checked(ready)  # Subjects only, names unique
        names = [s.name for s in items]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InputError(f"subject names must be unique; {', '.join(dup)} appear more than once")
        if not items:
            raise InputError("the dashboard needs at least one subject to show")
        self._items = {s.name: s for s in items}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self._items)

    def label(self, name: str) -> str:
        item = self._items[name]
        return item.label if isinstance(item, Lazy) else describe(item)

    def get(self, name: str) -> Subject:
        """The subject ``name`` (made now if it was lazy); UnknownNameError otherwise."""
        item = self._items.get(name) if isinstance(name, str) else None
        if item is None:
            raise UnknownNameError("subject", name, self._items)
        if isinstance(item, Lazy):
            with self._lock:
                item = self._items[name]
                if isinstance(item, Lazy):
                    made = item.make()
                    self._items[name] = item = made
        return item


__all__ = ["Catalog", "Lazy", "describe"]
