"""``NextTurn``: call a function on a later turn of the event loop, after what is pending now
(the paint the caller's changes asked for, and every timer due by then) has run.

Two zero timers, not one, nor a queued call: a queued call runs in the same pass over posted
events as the pending paint, and one zero timer fires in one batch with every other timer due
by then, e.g. right after that paint; the second timer, started from the first, comes after
both, so the caller's work and the paint before it are two short stalls, not one long one.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer


class NextTurn(QObject):
    """``start()`` (again: still once), ``stop()``, ``is_active``; calls ``slot`` once."""

    def __init__(self, slot, parent: QObject):
        super().__init__(parent)
        self._first = QTimer(self, singleShot=True, interval=0)
        self._second = QTimer(self, singleShot=True, interval=0)
        self._first.timeout.connect(self._second.start)
        self._second.timeout.connect(slot)

    @property
    def is_active(self) -> bool:
        return self._first.isActive() or self._second.isActive()

    def start(self) -> None:
        self._second.stop()
        self._first.start()

    def stop(self) -> None:
        self._first.stop()
        self._second.stop()
