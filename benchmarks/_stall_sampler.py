"""Where the GUI thread is while it is blocked: a thread samples its stack every few ms once the
stall probe has not ticked for ``after_ms``, and counts the stacks (a poor man's profiler of the
stalls only, C calls shown by the Python line that made them)."""
from __future__ import annotations

import collections
import sys
import threading
import time
import traceback


class StallSampler:
    def __init__(self, probe, after_ms: float = 40.0, every_ms: float = 3.0, depth: int = 14):
        self.probe, self.after, self.every, self.depth = probe, after_ms / 1000, every_ms / 1000, depth
        self.gui = threading.main_thread().ident
        self.counts: collections.Counter[tuple[str, ...]] = collections.Counter()
        self.label = ""  # the action running now, set by the caller
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            if time.monotonic() - self.probe.last_tick < self.after:
                continue
            frame = sys._current_frames().get(self.gui)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)[-self.depth:]
            self.counts[(self.label,) + tuple(
                f"{_short(f.filename)}:{f.lineno} {f.name}" for f in stack)] += 1

    def report(self, top: int = 8) -> str:
        lines = []
        for stack, n in self.counts.most_common(top):
            lines.append(f"{n * self.every * 1000:.0f} ms blocked during {stack[0]}:")
            lines += ["    " + s for s in stack[1:]]
        return "\n".join(lines)


def _short(path: str) -> str:
    for mark in ("/app/", "/tests/", "/site-packages/", "/lib/python"):
        if mark in path:
            return path[path.index(mark) + 1:]
    return path
