"""Callbacks told about a document's structural changes (Qt-free)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .document import Document


class DocumentEvents:
    """Callbacks told about structural changes (renames, removals, insertions, casts): once per
    change, or once at the end of a ``Document.batch()``. Qt-free: the window connects its
    tree model here."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[["Document"], None]] = []

    def connect(self, callback: Callable[["Document"], None]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable[["Document"], None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, doc: "Document") -> None:
        for callback in list(self._callbacks):
            callback(doc)
