"""Histogram and summary statistics of a tensor, or of a module's tensors pooled.

Small inputs are computed at once. Large ones (more than ``SYNC_LIMIT`` elements) show a sampled
preview at once, marked approximate, while the exact statistics are computed by a background
``Task``; showing something else cancels it, and a stale result is ignored. ``refresh()`` (after
an edit) is throttled, so a burst of edits costs one recomputation.

Signals: ``statsReady(Stats)`` when exact statistics are shown, ``previewReady(Stats)`` for a
preview, ``gotoRequested(tuple)`` with the index of the first NaN/Inf when its count is clicked.
"""
from __future__ import annotations

from contextlib import nullcontext

import pyqtgraph as pg
import torch
from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QProgressBar, QSizePolicy,
                               QSpinBox, QVBoxLayout, QWidget)

from ...core.stats import (COMPLEX_PARTS, Stats, compute_stats, compute_stats_many,
                            distinct_elements, find_first, preview_stats, preview_stats_many)
from ...core.threads import one_thread
from .histogram import Histogram
from .stats_table import StatsTable
from ..workers import Task

SYNC_LIMIT = 1 << 20   # elements computed on the GUI thread (a few ms); more go to a Task
SYNC_TENSORS = 64      # and at most this many tensors: a module of 100k tensors goes to a Task
THROTTLE_MS = 120      # refresh() recomputes at most this often
DEFAULT_BINS = 100


# Small previews on the GUI thread run with torch's thread count as it is: setting it there
# would change it for the whole process. Workers run single-threaded (``one_thread``).
gui_thread_torch = nullcontext


class StatsPanel(QWidget):
    gotoRequested = Signal(object)
    statsReady = Signal(object)
    previewReady = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.label = ""
        self.tensors: list[torch.Tensor] = []
        self.current_stats: Stats | None = None
        self._generation = 0
        self._task: Task | None = None
        self._running: set[Task] = set()  # keeps cancelled tasks alive until they end

        self.title = QLabel("", self, objectName="statsTitle")
        # a long tensor name must not set the dock's minimum width (it squeezed the tree to
        # 180 px at 1024 px wide); the label clips instead
        self.title.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.approx_label = QLabel("≈ sampled — computing exact statistics…", self,
                                   objectName="approxLabel")
        self.approx_label.setStyleSheet("color: #a05a00;")
        self.progress = QProgressBar(self, objectName="statsProgress", textVisible=False)
        self.progress.setMaximumHeight(8)
        self.progress.setRange(0, 1000)
        self.plot = pg.PlotWidget(self)
        self.plot.setObjectName("histogramPlot")
        self._style_plot()
        self.histogram = Histogram(self.plot)
        self.bins_spin = QSpinBox(self, objectName="binsSpin", minimum=10, maximum=1000,
                                  value=DEFAULT_BINS, prefix="bins: ", singleStep=10)
        self.bins_spin.setKeyboardTracking(False)
        self.log_check = QCheckBox("Log y", self, objectName="logYCheck")
        self.part_combo = QComboBox(self, objectName="complexPartCombo")
        for part in COMPLEX_PARTS:
            self.part_combo.addItem({"abs": "|z|"}.get(part, part), part)
        self.part_combo.setToolTip("Complex tensors: statistics and histogram of the absolute "
                                   "value, the real part or the imaginary part")
        self.part_combo.setVisible(False)
        self.table = StatsTable(self)

        controls = QHBoxLayout()
        controls.addWidget(self.bins_spin)
        controls.addWidget(self.log_check)
        controls.addWidget(self.part_combo)
        controls.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.approx_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.plot, 1)
        layout.addLayout(controls)
        layout.addWidget(self.table)
        self._set_pending(False)

        self._refresh_timer = QTimer(self, singleShot=True, interval=THROTTLE_MS)
        self._refresh_timer.timeout.connect(self._recompute)
        self.bins_spin.valueChanged.connect(lambda _: self._recompute())
        self.part_combo.currentIndexChanged.connect(lambda _: self._recompute())
        self.log_check.toggled.connect(self.histogram.set_log_y)
        self.table.gotoNan.connect(lambda: self.find_first("nan"))
        self.table.gotoInf.connect(lambda: self.find_first("inf"))

    # -- public API ----------------------------------------------------------------------------
    @property
    def stats_widget(self) -> StatsTable:
        return self.table

    @property
    def is_exact(self) -> bool:
        return self.current_stats is not None and not self.current_stats.approximate

    @property
    def is_busy(self) -> bool:
        return self._task is not None

    @property
    def bins(self) -> int:
        return self.bins_spin.value()

    @property
    def part(self) -> str:
        """For complex tensors: "abs", "real" or "imag"."""
        return self.part_combo.currentData()

    def set_part(self, part: str) -> None:
        self.part_combo.setCurrentIndex(self.part_combo.findData(part))

    def show_tensors(self, label: str, tensors: list[torch.Tensor]) -> None:
        """Statistics of one tensor, or of several pooled (a module's)."""
        self.label = label
        many = len(tensors) > SYNC_TENSORS  # no per-tensor loop on the GUI thread for these
        self.tensors = list(tensors) if many else [t.detach() for t in tensors]
        self.part_combo.setVisible(not many and any(t.is_complex() for t in self.tensors))
        self._refresh_timer.stop()
        self._recompute()

    def clear(self) -> None:
        self._cancel()
        self._refresh_timer.stop()
        self.label, self.tensors, self.current_stats = "", [], None
        self.part_combo.setVisible(False)
        self.title.setText("")
        self.histogram.clear()
        self.table.set_stats(None)
        self._set_pending(False)

    def refresh(self) -> None:
        """The tensors were edited in place: recompute soon (calls in a burst coalesce)."""
        if self.tensors and not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def find_first(self, kind: str) -> None:
        """Emit ``gotoRequested`` with the index of the first NaN (``"nan"``) or Inf element."""
        if len(self.tensors) != 1:
            return
        t, gen = self.tensors[0], self._generation
        if t.numel() <= SYNC_LIMIT:
            with gui_thread_torch():
                index = find_first(t, kind)
            self._on_found((gen, index))
            return
        task = Task(lambda progress, cancelled: (gen, find_first(t, kind, cancelled)))
        task.signals.finished.connect(self._on_found)
        self._start(task)

    # -- computing -----------------------------------------------------------------------------
    def _recompute(self) -> None:
        self._cancel()
        self._generation += 1
        gen, tensors, bins, part = self._generation, list(self.tensors), self.bins, self.part
        if not tensors:
            self.current_stats = None
            self.title.setText(self.label)
            self.histogram.clear()
            self.table.set_stats(None)
            self._set_pending(False)
            return
        single = len(tensors) == 1
        if len(tensors) > SYNC_TENSORS:  # nothing per tensor here: all of it in the worker
            self.title.setText(f"<b>{self.label}</b> &nbsp; ({len(tensors)} tensors)")
            self.histogram.clear()
            self.table.set_stats(None)
            self._start_exact(gen, tensors, bins, part, single)
            self.approx_label.setText(f"computing statistics of {len(tensors):,} tensors…")
            return
        try:
            with gui_thread_torch():
                # what is read: an expanded tensor's distinct elements, a sparse one's values
                total = sum(distinct_elements(t) for t in tensors)
                if total <= SYNC_LIMIT:
                    self._show(compute_stats(tensors[0], bins, part=part) if single
                               else compute_stats_many(tensors, bins, part=part))
                    return
                self._show(preview_stats(tensors[0], bins, part=part) if single
                           else preview_stats_many(tensors, bins, part=part))
        except (RuntimeError, ValueError, TypeError, MemoryError) as exc:  # never raise in a slot
            self._show_error(exc)
            return

        self._start_exact(gen, tensors, bins, part, single)

    def _start_exact(self, gen: int, tensors: list, bins: int, part, single: bool) -> None:
        """Exact statistics in a worker, on one thread (chunked passes: see core/threads.py)."""
        def work(progress, cancelled):
            with one_thread():
                if single:
                    return gen, compute_stats(tensors[0], bins, progress, cancelled, part=part)
                return gen, compute_stats_many(tensors, bins, progress, cancelled, part=part)
        task = Task(work)
        task.signals.finished.connect(self._on_exact)
        task.signals.failed.connect(self._on_failed)
        task.signals.progress.connect(self._on_progress)
        self._task = task
        self._set_pending(True)
        self._start(task)

    def _start(self, task: Task) -> None:
        self._running.add(task)
        task.signals.done.connect(lambda task=task: self._running.discard(task))
        task.start()

    def _cancel(self) -> None:
        for task in list(self._running):
            task.cancel()
        self._task = None

    def _on_exact(self, payload) -> None:
        gen, stats = payload
        if gen != self._generation:  # superseded while it ran
            return
        self._task = None
        if stats.part is not None:  # many tensors: found complex ones in the worker
            self.part_combo.setVisible(True)
        self._show(stats)

    def _show_error(self, exc) -> None:
        self.current_stats = None
        self.histogram.clear()
        self.table.set_stats(None)
        self._set_pending(False)
        self.approx_label.setText(f"no statistics: {str(exc).splitlines()[0] if str(exc) else exc}")
        self.approx_label.setVisible(True)

    def _on_failed(self, exc, _traceback: str) -> None:
        self._task = None
        self._set_pending(False)
        self.approx_label.setText(f"≈ sampled — exact statistics failed: {exc}")
        self.approx_label.setVisible(True)

    def _on_progress(self, done, total) -> None:
        if self._task is not None and total:
            self.progress.setValue(int(1000 * done / total))

    def _on_found(self, payload) -> None:
        gen, index = payload
        if gen == self._generation and index is not None:
            self.gotoRequested.emit(index)

    # -- showing -------------------------------------------------------------------------------
    def _show(self, stats: Stats) -> None:
        self.current_stats = stats
        n = len(self.tensors)
        kind = f"{n} tensors, " if n > 1 else ""
        of = f", {self.part_combo.currentText()}" if stats.part else ""
        self.title.setText(f"<b>{self.label}</b> &nbsp; ({kind}{stats.dtype}{of})")
        self.histogram.set_data(stats.edges, stats.counts)
        self.table.set_stats(stats, can_goto=n == 1)
        self._set_pending(stats.approximate)
        (self.previewReady if stats.approximate else self.statsReady).emit(stats)

    def _set_pending(self, on: bool) -> None:
        if on:
            self.approx_label.setText("≈ sampled — computing exact statistics…")
            self.progress.setValue(0)
        self.approx_label.setVisible(on)
        self.progress.setVisible(on)

    def _style_plot(self) -> None:
        pal = self.palette()
        self.plot.setBackground(pal.color(QPalette.Base))
        fg = pal.color(QPalette.Text)
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setPen(fg)
            axis.setTextPen(fg)
        self.plot.setMinimumHeight(160)
