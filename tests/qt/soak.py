"""Random user actions in a real window on a real checkpoint, for the soak test and
``benchmarks/bench_soak.py``: select tensors and modules, edit, undo/redo, rename, delete, cast,
open again, save. Seeded: a failure replays."""
from __future__ import annotations

import gc
import os
import random
import re
import sys
import time
import weakref

import torch
from PySide6.QtCore import QElapsedTimer, QTimer
from PySide6.QtWidgets import QApplication
from torch import nn

from app.core.edits.values import FillEdit
from app.core.errors import UserError
from app.core.edits.surgery import CastEdit, DeleteEdit, RenameEdit

#: A hang detector, not a timing target: only work that never ends takes this long, even on a
#: loaded machine (speed is measured by benchmarks/bench_soak.py, never asserted here).
HANG_S = 600


def soak_checkpoint(path: str, width: int = 256, depth: int = 8) -> str:
    """A training checkpoint (model, Adam state, scalars) of a small MLP with batch norms."""
    torch.manual_seed(0)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, width)).sum().backward()
    opt.step()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, path)
    return path


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class StallProbe:
    """The longest gap between ticks of a 5 ms QTimer: how long the GUI thread was blocked.
    ``window_ms`` is the longest since the last ``mark()`` (one action's); ``window_cpu_ms`` the
    most CPU the GUI thread used between two ticks (a loaded machine stretches the wall gaps)."""

    def __init__(self, interval_ms: int = 5):
        self.interval, self.longest_ms, self.window_ms = interval_ms, 0.0, 0.0
        self.window_cpu_ms = 0.0
        self._cpu = time.thread_time()
        self.last_tick = time.monotonic()
        self._clock = QElapsedTimer()
        self._timer = QTimer()
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._clock.start()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def mark(self) -> None:
        self.window_ms = self.window_cpu_ms = 0.0

    def _tick(self) -> None:
        self.last_tick, cpu = time.monotonic(), time.thread_time()
        self.window_cpu_ms = max(self.window_cpu_ms, (cpu - self._cpu) * 1000)
        self._cpu = cpu
        gap = float(self._clock.restart() - self.interval)
        self.longest_ms = max(self.longest_ms, gap)
        self.window_ms = max(self.window_ms, gap)


_counting: list = []  # [the soak told of exceptions raised in slots, the hook before ours]


def _count_slot_errors(soak) -> None:
    """An exception raised in a slot is printed by PySide through ``sys.excepthook``, never
    raised to the caller: the latest soak counts it (and it is still printed)."""
    if not _counting:
        _counting[:] = [soak, sys.excepthook]

        def hook(kind, value, tb):
            _counting[0].errors.append(f"in a slot: {kind.__name__}: {value}")
            _counting[1](kind, value, tb)
        sys.excepthook = hook
    _counting[0] = soak


class Soak:
    """Drives ``window`` with random actions on the checkpoint at ``path``."""

    def __init__(self, window, path: str, out_dir: str, seed: int = 0):
        self.window, self.path, self.out = window, path, os.path.join(out_dir, "soak-out.pt")
        self.rng = random.Random(seed)
        self.errors: list[str] = []      # unexpected failures (not a refused edit)
        self.counts: dict[str, int] = {}
        self.old_docs: list[weakref.ref] = []
        self.slowest: tuple[float, str] = (0.0, "")  # the longest action, run on the GUI thread
        self.probe: StallProbe | None = None          # set to attribute stalls to actions
        self.stall_action = ""                        # the action during the longest stall
        self.stalls: dict[str, list[float]] = {}      # per action: its longest stall, each run
        self.cpu_stalls: dict[str, list[float]] = {}  # per action: the most GUI CPU between ticks
        self.before_action = lambda name: None        # told each action's name before it runs
        self.after_action = lambda name: None         # and once its work has settled
        window.controller.edits.memory_cap = 32 * 1024 ** 2
        _count_slot_errors(self)
        self.actions = [(self.select_tensor, 6), (self.select_module, 3), (self.edit, 4),
                        (self.undo, 3), (self.redo, 2), (self.rename, 1), (self.delete, 1),
                        (self.cast, 1), (self.reopen, 1), (self.save, 1)]

    # -- plumbing -----------------------------------------------------------------------------
    @property
    def doc(self):
        return self.window.controller.document

    def settle(self, timeout: float = HANG_S) -> None:
        """Let queued work finish: loads, saves, reads, statistics, freeing a replaced
        document."""
        w, end = self.window, time.monotonic() + timeout
        QApplication.processEvents()
        while (w.controller.is_loading or w.save_flows.is_saving
               or w.controller._read_task is not None
               or getattr(w.controller, "is_releasing", False)):  # older checkouts: bench --checkout
            if time.monotonic() > end:  # a hang is a failure, never silently skipped
                raise TimeoutError(f"background work still running after {timeout:g} s")
            QApplication.processEvents()
            time.sleep(0.002)
        QApplication.processEvents()

    def open(self) -> None:
        if self.doc is not None:
            self.old_docs.append(weakref.ref(self.doc))
        old = self.doc
        self.window.open_path(self.path)
        end = time.monotonic() + HANG_S
        while self.doc is old or self.window.controller.is_loading:
            if time.monotonic() > end:
                raise TimeoutError(f"{self.path} did not open within {HANG_S} s")
            QApplication.processEvents()
            time.sleep(0.002)
        del old
        self.settle()

    def step(self) -> None:
        funcs, weights = zip(*self.actions)
        action = self.rng.choices(funcs, weights)[0]
        self.counts[action.__name__] = self.counts.get(action.__name__, 0) + 1
        start = time.perf_counter()
        before = self.probe.longest_ms if self.probe is not None else 0.0
        if self.probe is not None:
            self.probe.mark()
        self.before_action(action.__name__)
        action()
        self.slowest = max(self.slowest, (time.perf_counter() - start, action.__name__))
        self.settle()
        self.after_action(action.__name__)
        if self.probe is not None:
            self.stalls.setdefault(action.__name__, []).append(self.probe.window_ms)
            self.cpu_stalls.setdefault(action.__name__, []).append(self.probe.window_cpu_ms)
            if self.probe.longest_ms > before:
                self.stall_action = action.__name__

    def run(self, steps: int | None = None, seconds: float | None = None) -> None:
        end = time.monotonic() + seconds if seconds else None
        n = 0
        while (steps is None or n < steps) and (end is None or time.monotonic() < end):
            self.step()
            n += 1

    def leaked_documents(self) -> int:
        gc.collect()
        return sum(r() is not None and r() is not self.doc for r in self.old_docs)

    def _push(self, edit) -> None:
        error = self.window.edit_flows._push(edit)
        if error is not None and not isinstance(error, UserError):
            self.errors.append(f"{edit.label}: {type(error).__name__}: {error}")

    def _float_names(self) -> list[str]:
        return [n for n, e in self.doc.tensors.items() if e.dtype.is_floating_point]

    # -- actions ------------------------------------------------------------------------------
    def select_tensor(self) -> None:
        names = list(self.doc.tensors)
        if names:
            self.window.select_name(self.rng.choice(names))

    def select_module(self) -> None:
        nodes = [n for n in self.doc.root.walk() if n.entry is None and n.full_name]
        if nodes:
            self.window.select_name(self.rng.choice(nodes).full_name)

    def edit(self) -> None:
        names = self._float_names()
        if names:
            name = self.rng.choice(names)
            self._push(FillEdit([name], round(self.rng.uniform(-1, 1), 3), index="[0]"))

    def undo(self) -> None:
        if self.window.actionUndo.isEnabled():
            self.window.actionUndo.trigger()

    def redo(self) -> None:
        if self.window.actionRedo.isEnabled():
            self.window.actionRedo.trigger()

    def rename(self) -> None:
        names = list(self.doc.tensors)
        if names:
            name = self.rng.choice(names)
            self._push(RenameEdit("^" + re.escape(name) + "$", name + "_r"))

    def delete(self) -> None:
        keys = [k for k in self.doc.entries if k in ("optimizer", "epoch")]
        names = list(self.doc.tensors)
        if keys and self.rng.random() < 0.3:
            self._push(DeleteEdit(self.rng.choice(keys)))
        elif len(names) > 20:
            self._push(DeleteEdit(self.rng.choice(names)))

    def cast(self) -> None:
        names = self._float_names()
        if names:
            dtype = self.rng.choice(["float16", "bfloat16", "float32"])
            self._push(CastEdit(self.rng.choice(names), dtype))

    def reopen(self) -> None:
        self.window.controller.undo_stack.setClean()  # discarding is the point here
        self.open()

    def save(self) -> None:
        w = self.window
        if not w.save_flows.save_to(self.out, "torch", wait=True) and w.save_flows.last_error:
            self.errors.append(f"save: {w.save_flows.last_error}")
