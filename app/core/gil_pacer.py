"""Let other threads have the GIL during a long read in a worker thread.

A thread that drops and retakes the GIL many times a millisecond (torch.load: every tensor it
rebuilds calls C++ that lets the GIL go for a few microseconds) starves a thread waiting for it:
each drop wakes the waiter, the reader has taken the GIL back before the waiter runs, and as the
waiter was woken rather than timed out, it starts a new switch interval instead of asking the
reader to drop the GIL. With 100k tensors a waiting thread got the GIL once in 100-250 ms.
``Pacer()`` called from such a loop sleeps ``PAUSE_S`` every ``PERIOD_S``: long enough for a
woken waiter to take the GIL. Each pause costs a niced worker on a busy machine more than its
length (it waits for a core again): every 20 ms, not every few. On the main thread (the command
line) it does nothing.
"""
from __future__ import annotations

import threading
import time

#: how often a worker gives the GIL away, and for how long (a woken thread takes it in ~50 us)
PERIOD_S = 0.02
PAUSE_S = 0.0005


class Pacer:
    """Call it often (each tensor, each chunk); it sleeps briefly once per ``PERIOD_S``."""

    __slots__ = ("due", "active")
    #: pauses made by every pacer (tests count them)
    total = 0

    def __init__(self) -> None:
        self.due = time.monotonic() + PERIOD_S
        self.active = threading.current_thread() is not threading.main_thread()

    def __call__(self) -> None:
        if self.active and time.monotonic() >= self.due:
            time.sleep(PAUSE_S)
            Pacer.total += 1
            self.due = time.monotonic() + PERIOD_S
