"""What the GUI thread did in an action's longest stretch without a probe tick: an event filter
on the application logs each event it delivers (with the wall clock and the GUI thread's CPU
clock) and the probe's ticks; the time between one event and the next is charged to the first
(its handler, and what the slot it ran did until the next event). Wall well above CPU: the GUI
thread waited (the GIL, a disk, the scheduler). Slow; for ``bench_soak.py --explain`` only.

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
        self.keep, self.worst = keep, []  # (wall ms, cpu ms, label, [(wall, cpu, event, who)])
        self._log: list[tuple[float, float, int, object]] = []
        self._on = False
        plain = probe._tick

        def tick():
            if self._on:
                self._log.append((time.perf_counter(), time.thread_time(), TICK, None))
            plain()
        probe._timer.timeout.disconnect()
        probe._timer.timeout.connect(tick)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if self._on:
            self._log.append((time.perf_counter(), time.thread_time(), int(event.type()), obj))
        return False

    def begin(self) -> None:
        self._log.clear()
        self._on = True

    def end(self, label: str) -> None:
        self._on = False
        log, self._log = self._log, []
        if len(log) < 2:
            return
        bounds = [i for i, e in enumerate(log) if e[2] == TICK] + [len(log) - 1]
        best, start = (0.0, 0, 0), 0
        for i in bounds:
            if log[i][0] - log[start][0] > best[0]:
                best = (log[i][0] - log[start][0], start, i)
            start = i
        wall, a, b = best
        cpu = log[b][1] - log[a][1]
        events = [((log[k + 1][0] - log[k][0]) * 1000, (log[k + 1][1] - log[k][1]) * 1000,
                   log[k][2], log[k][3]) for k in range(a, b)]
        events = sorted((e for e in events if e[2] != TICK), key=lambda e: -e[0])[:6]
        named = [(w, c, QEvent.Type(kind).name, _describe(obj)) for w, c, kind, obj in events]
        self.worst = sorted(self.worst + [(wall * 1000, cpu * 1000, label, named)],
                            key=lambda w: -w[0])
        del self.worst[self.keep:]

    def report(self) -> str:
        lines = []
        for wall, cpu, label, events in self.worst:
            lines.append(f"  {label}: {wall:.0f} ms between two ticks ({cpu:.0f} ms of GUI-thread "
                         "CPU); the longest after one event (wall, CPU):")
            lines += [f"      {w:5.1f} {c:5.1f} ms  {kind:16} {who}" for w, c, kind, who in events]
        return "\n".join(lines)
