"""What the grid and the histogram show while comparing: A (with the reference's histogram
overlaid), B (the reference), or A - B (diverging heatmap, histogram of the difference).

The reference's tensor is read, and the difference computed, in a ``Task``; a result that
arrives after the selection or the mode changed is dropped.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QObject

from ..core.compare.diff import read_entry
from ..core.errors import UserError
from .workers import Task

MODE_A, MODE_B, MODE_DIFF = 0, 1, 2
OVERLAY_PEN = (230, 120, 20)


class CompareViews(QObject):
    def __init__(self, flows):
        super().__init__(flows)
        self.flows = flows
        self.views = flows.views
        self.controller = flows.controller
        self._current: tuple[str, torch.Tensor] | None = None
        self._view_task: Task | None = None
        self._hist_task: Task | None = None
        self._running: set[Task] = set()
        self._build_overlay()
        self.controller.tensorSelected.connect(self._on_tensor_selected)
        self.controller.moduleSelected.connect(self._on_other_selected)
        self.controller.selectionCleared.connect(self._on_other_selected)
        self.views.stats.statsReady.connect(self._on_stats_ready)

    @property
    def result(self):
        return self.flows.result

    @property
    def reference(self):
        return self.flows.reference

    @property
    def mode(self) -> int:
        return self.flows.mode

    def reference_name(self, name: str):
        return self.flows.reference_name(name)

    def _on_done(self, task: Task) -> None:
        self._running.discard(task)

    def _build_overlay(self) -> None:
        item = self.views.stats.histogram.item
        self.overlay = pg.PlotDataItem(np.array([0.0, 1.0]), np.array([0.0]), stepMode="center",
                                       pen=pg.mkPen(OVERLAY_PEN, width=2), name="reference")
        self.overlay.setVisible(False)
        item.addItem(self.overlay)

    def _on_other_selected(self, *_):
        self._current = None
        self.overlay.setVisible(False)

    def _on_tensor_selected(self, name: str, tensor) -> None:
        self.overlay.setVisible(False)
        self._current = (name, tensor)
        if self.result is None or self.mode == MODE_A:
            return
        nb = self.reference_name(name)
        if nb is None:
            self.flows.status(f"{name} has no match in the reference", 5000)
            return
        entry_b, mode = self.reference.entry(nb), self.mode
        label = f"{name}  [{'reference' if mode == MODE_B else 'A − B'}]"

        def work(progress, cancelled):
            b = read_entry(entry_b).detach()
            if mode == MODE_B:
                return b
            if tuple(b.shape) != tuple(tensor.shape):
                raise UserError(f"shapes differ: {list(tensor.shape)} here, {list(b.shape)} "
                                "in the reference")
            if tensor.dtype.is_complex or b.dtype.is_complex:
                raise UserError("A − B is not shown for complex tensors")
            wide = torch.float64 if torch.float64 in (tensor.dtype, b.dtype) else torch.float32
            return tensor.detach().to(wide) - b.to(wide)

        self._start_view(Task(work), name, label, mode)

    def _start_view(self, task: Task, name: str, label: str, mode: int) -> None:
        if self._view_task is not None:
            self._view_task.cancel()
        self._view_task = task
        self._running.add(task)
        task.signals.finished.connect(
            lambda t, task=task: self._on_view_ready(task, name, label, mode, t))
        task.signals.failed.connect(lambda exc, tb, task=task: self._on_view_failed(task, exc))
        task.signals.done.connect(lambda task=task: self._on_done(task))
        task.start()

    def _on_view_ready(self, task: Task, name: str, label: str, mode: int, t) -> None:
        if task is not self._view_task or self._current is None or self._current[0] != name \
                or mode != self.mode:
            return
        self._view_task = None
        view = self.views.grid
        view.show_tensor(label, t)
        view.model.cell_editor = None  # the reference and the difference are not editable
        if mode == MODE_DIFF:
            view.heatmap_check.setChecked(True)
        self.views.stats.show_tensors(label, [t])

    def _on_view_failed(self, task: Task, exc: BaseException) -> None:
        if task is self._view_task:
            self._view_task = None
            self.flows.status(f"Cannot show the reference: {exc}", 8000)

    def _on_stats_ready(self, stats) -> None:
        """A's histogram is shown: overlay the reference's over the same bins. (For a small
        tensor this comes before ``tensorSelected`` reaches this object.)"""
        name = self.views.stats.label
        if self.result is None or self.mode != MODE_A or stats.edges.size < 2:
            return
        nb = self.reference_name(name)
        if nb is None or tuple(self.reference.entry(nb).shape) != tuple(
                self.controller.document.entry(name).shape):
            return
        entry_b, edges = self.reference.entry(nb), np.asarray(stats.edges, dtype=np.float64)

        def work(progress, cancelled):
            b = read_entry(entry_b).detach()
            if b.dtype.is_complex:
                return None
            return histogram_on(b, edges)

        task = Task(work)
        if self._hist_task is not None:
            self._hist_task.cancel()
        self._hist_task = task
        self._running.add(task)
        task.signals.finished.connect(
            lambda counts, task=task: self._on_hist_ready(task, name, edges, counts))
        task.signals.done.connect(lambda task=task: self._on_done(task))
        task.start()

    def _on_hist_ready(self, task: Task, name: str, edges: np.ndarray, counts) -> None:
        if task is not self._hist_task or counts is None or self._current is None \
                or self._current[0] != name or self.mode != MODE_A:
            return
        self._hist_task = None
        with np.errstate(divide="ignore"):
            self.overlay.setData(edges, counts)
        self.overlay.setVisible(True)


def histogram_on(t: torch.Tensor, edges: np.ndarray, chunk: int = 1 << 22) -> np.ndarray:
    """Counts of ``t``'s finite values in the bins ``edges`` (values outside are left out)."""
    lo, hi = float(edges[0]), float(edges[-1])
    counts = torch.zeros(len(edges) - 1, dtype=torch.float64)
    flat = t.reshape(-1)
    if hi <= lo:
        return counts.to(torch.int64).numpy()
    for i in range(0, flat.numel(), chunk):
        x = flat[i:i + chunk].to(torch.float64)
        x = x[torch.isfinite(x)]
        counts += torch.histc(x, bins=len(edges) - 1, min=lo, max=hi)
    return counts.to(torch.int64).numpy()
