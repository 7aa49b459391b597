"""File > Open Recent, kept in QSettings (organisation and application "paramedit").

Written in a worker: a QSettings write syncs to disk (a lock file, a temporary file, two
fdatasyncs: 20 ms of waiting on a busy disk, 1 ms of CPU), which opening a file must not make the
GUI thread wait for. The list this window last wrote is answered from memory meanwhile.
"""
from __future__ import annotations

import os
import threading

from .settings import settings
from .workers import Task


class RecentFiles:
    KEY, LIMIT = "recentFiles", 10

    def __init__(self):
        self._items: list[str] | None = None  # what was last written here (the file may lag)
        self._lock = threading.Lock()         # guards _items
        self._writing = threading.Lock()      # one write at a time: the last one writes last
        self._tasks: set[Task] = set()

    @staticmethod
    def _settings():
        return settings()

    def paths(self) -> list[str]:
        with self._lock:
            if self._items is not None:
                return list(self._items)
        value = self._settings().value(self.KEY, [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [p for p in items if isinstance(p, str)]

    def add(self, path: str) -> None:
        path = os.path.abspath(path)
        items = [path] + [p for p in self.paths() if p != path]
        self._write(items[: self.LIMIT])

    def clear(self) -> None:
        self._write([])

    def last_folder(self) -> str:
        paths = self.paths()
        return os.path.dirname(paths[0]) if paths else os.getcwd()

    def _write(self, items: list[str]) -> None:
        with self._lock:
            self._items = items
        task = Task(self._store, reads_mapped=False)
        self._tasks.add(task)
        task.signals.done.connect(lambda task=task: self._tasks.discard(task))
        task.start()

    def _store(self, _progress, _cancelled) -> None:
        """In the worker: write the newest list (a later write may have replaced this one's)."""
        with self._writing:
            with self._lock:
                items = list(self._items or [])
            s = self._settings()
            if items:
                s.setValue(self.KEY, items)
            else:
                s.remove(self.KEY)
            s.sync()
