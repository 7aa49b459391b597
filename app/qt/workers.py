"""Run core work off the GUI thread: ``Task(fn)`` where ``fn(progress, cancelled)`` is Qt-free.

Results come back to the GUI thread through queued signals. ``cancel()`` makes ``cancelled()``
return True inside ``fn`` (core code raises ``Cancelled``); a cancelled task emits nothing but
``done`` (so callers can clear busy indicators), and ``finished``/``failed`` never fire for it.

Once ``done`` has been delivered, the task disconnects every slot and drops its function: slots
connected by callers (lambdas that capture the task, closures over what it read) would otherwise
keep the task, and all it read, alive for ever — the cycle runs through Qt, out of Python's GC.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback
import warnings
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..core.errors import Cancelled, detached
from ..core.model import file_lease

#: a task sends a progress report when it moved on by a hundredth of the total, or this long after
#: the last one it sent, and always the last one (done == total); the others are dropped: a reader
#: reporting per record queued 200k slot calls on the GUI thread for 100k tensors
PROGRESS_INTERVAL_S = 0.04
PROGRESS_STEP = 0.01

#: the longest a thread keeps the GIL while another asks for it (Python's default: 5 ms). The GUI
#: thread asks again after every Qt call that let it go: behind a worker running Python (a pickle
#: of 100k tensors, a checksum pass over 100k zip records) each ask waited up to 5 ms, and a slot
#: making 30 such calls stalled 150 ms without using the CPU.
GIL_SWITCH_S = 0.001

#: workers' nice value (Linux: each thread has its own): when the GUI thread and a worker both
#: want a core, the GUI thread gets it first (a worker still gets a third of a contended core);
#: added to the process's own. Measured both ways: the soak (the window's own workers: saves,
#: statistics, documents freed) stalled 60-99 ms niced, 77-136 ms not; beside one busy process,
#: opening 100k tensors 28-40 ms niced, 39-62 ms not; idle 31-35 against 24-26 ms. Its cost: with
#: every core busy elsewhere (two busy processes), a niced worker holding the GIL waits for a core
#: while the window waits for the GIL: 94-155 ms (and 13-18 s to open) against 53-84 ms (6-9 s).
WORKER_NICE = 5
_worker = threading.local()


def _yield_the_cpu() -> None:
    """Lower this worker thread's priority, once per thread (it cannot be raised back)."""
    if getattr(_worker, "niced", False) or not sys.platform.startswith("linux"):
        return
    _worker.niced = True
    me = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + WORKER_NICE))
    except OSError:
        pass


def share_the_gil() -> None:
    """Let the GUI thread win the GIL back from busy workers within ``GIL_SWITCH_S``."""
    if sys.getswitchinterval() > GIL_SWITCH_S:
        sys.setswitchinterval(GIL_SWITCH_S)


class TaskSignals(QObject):
    progress = Signal(object, object)  # done, total (may exceed 2**31)
    finished = Signal(object)          # the result
    failed = Signal(object, str)       # the exception, its traceback text
    done = Signal()                    # always last, whatever happened, right after the outcome
    _ended = Signal(object, object)    # from the worker: ("finished" | "failed" | None, payload)

    def __init__(self):
        super().__init__()
        self._ended.connect(self._end)  # queued: emitted by the worker, run on the GUI thread

    def _end(self, kind, payload) -> None:
        """The outcome and ``done`` in one go: a slot of ``finished`` never runs while ``done``
        is still to come (a worker paused between two emits let the GUI thread in between)."""
        if kind == "finished":
            self.finished.emit(payload)
        elif kind == "failed":
            self.failed.emit(*payload)
        del payload
        self.done.emit()

    def release(self) -> None:
        """Disconnect the callers' slots (runs on the GUI thread, after their ``done`` slots).
        ``_ended`` stays: it holds nothing of theirs, and the worker may still be inside its
        ``emit`` (PySide lets go of the GIL there) when this runs."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a signal nobody connected
            for signal in (self.progress, self.finished, self.failed, self.done):
                try:
                    signal.disconnect()
                except (RuntimeError, TypeError):
                    pass


class Task(QRunnable):
    """A cancellable unit of work for ``QThreadPool``. Keep a reference while it runs."""

    def __init__(self, fn: Callable[[Callable[[int, int], None], Callable[[], bool]], Any], *,
                 reads_mapped: bool = True):
        super().__init__()
        self.setAutoDelete(False)
        self._fn = fn
        # whether it may touch memory mapped from a document's file (a rewrite of that file
        # waits for it: ``file_lease``); False for work that only opens, frees or reads by calls
        self._reads_mapped = reads_mapped
        self._cancel = threading.Event()
        self._reported = (float("-inf"), float("-inf"))  # when progress was last sent, and done
        self.signals = TaskSignals()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        fn, self._fn = self._fn, None  # what the function captured goes with it
        _yield_the_cpu()
        kind, payload = None, None
        try:
            with file_lease.reading() if self._reads_mapped else contextlib.nullcontext():
                result = fn(self._progress, self._cancel.is_set)
        except Cancelled:
            pass
        except Exception as exc:  # reported to the GUI thread, which shows it
            if not self._cancel.is_set():
                text = traceback.format_exc()  # the frames go: they hold what the task read
                kind, payload = "failed", (detached(exc), text)
        else:
            if not self._cancel.is_set():
                kind, payload = "finished", result
            del result
        finally:
            del fn
            ended = self.signals._ended
            try:
                ended.emit(kind, payload)
            except RuntimeError:  # the application quit first: nobody is left to tell
                pass
            del payload

    def _progress(self, done: int, total: int) -> None:
        if self._cancel.is_set():
            return
        now, (then, before) = time.monotonic(), self._reported
        if now - then >= PROGRESS_INTERVAL_S or (total and (done >= total or
                                                            done - before >= PROGRESS_STEP * total)):
            self._reported = now, done
            self.signals.progress.emit(done, total)

    def start(self, pool: QThreadPool | None = None) -> "Task":
        # Connected last, so it runs after every slot the caller connected to ``done``.
        self.signals.done.connect(self.signals.release)
        # A bound method, not the runnable: PySide keeps a QRunnable handed to the pool alive
        # for ever, while the wrapper it makes for a callable is freed after the run.
        (pool or QThreadPool.globalInstance()).start(self.run)
        return self
