"""What the GUI thread did in an action's longest stretch without a probe tick: an event filter
on the application logs each event it delivers (with the GUI thread's CPU clock) and the probe's
ticks; the CPU between one event and the next is charged to the first (its handler, and what the
slot it ran did until the next event). Slow; for ``bench_soak.py --explain`` only.

A sampling profiler would not do: a thread samples the GUI thread only when it gets the GIL,
which is when the GUI thread has dropped it, in Qt's C++ (painting, layout) — never in the slot.
"""
from __future__ import annotations

import time

import shiboken6
from PySide6.QtCore import QEvent, QObject

TICK = -1


def _describe(obj) -> str:
    if not shiboken6.isValid(obj):
        return "(deleted since)"
    name = obj.objectName()
    parent = obj.parent() if isinstance(obj, QObject) else None
    if (not name or name.startswith("qt_")) and parent is not None:
        return f"{type(obj).__name__}{f' {name}' if name else ''} in {type(parent).__name__}" \
               f"{f' {parent.objectName()}' if parent.objectName() else ''}"
    return f"{type(obj).__name__} {name}".rstrip()


class EventLog(QObject):
    """Install with ``app.installEventFilter``; ``begin()`` before an action, ``end(label)``
    after it keeps its longest CPU stretch between ticks; ``worst`` holds the ``keep`` worst."""

    def __init__(self, probe, keep: int = 5):
        super().__init__()
        self.keep, self.worst = keep, []  # (cpu ms, label, [(ms, event, receiver), ...])
        self._log: list[tuple[float, int, object]] = []
        self._on = False
        plain = probe._tick

        def tick():
            if self._on:
                self._log.append((time.thread_time(), TICK, None))
            plain()
        probe._timer.timeout.disconnect()
        probe._timer.timeout.connect(tick)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if self._on:
            self._log.append((time.thread_time(), int(event.type()), obj))
        return False

    def begin(self) -> None:
        self._log.clear()
        self._on = True

    def end(self, label: str) -> None:
        self._on = False
        log, self._log = self._log, []
        if len(log) < 2:
            return
        bounds = [i for i, e in enumerate(log) if e[1] == TICK] + [len(log) - 1]
        best, start = (0.0, 0, 0), 0
        for i in bounds:
            if log[i][0] - log[start][0] > best[0]:
                best = (log[i][0] - log[start][0], start, i)
            start = i
        cpu, a, b = best
        events = [((log[k + 1][0] - log[k][0]) * 1000, log[k][1], log[k][2]) for k in range(a, b)]
        events = sorted((e for e in events if e[1] != TICK), key=lambda e: -e[0])[:6]
        named = [(ms, QEvent.Type(kind).name, _describe(obj)) for ms, kind, obj in events]
        self.worst = sorted(self.worst + [(cpu * 1000, label, named)], key=lambda w: -w[0])
        del self.worst[self.keep:]

    def report(self) -> str:
        lines = []
        for cpu, label, events in self.worst:
            lines.append(f"  {label}: {cpu:.0f} ms of GUI-thread CPU between two ticks; most:")
            lines += [f"      {ms:5.1f} ms  {kind:16} {who}" for ms, kind, who in events]
        return "\n".join(lines)
