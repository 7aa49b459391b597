"""Histogram and summary statistics of a tensor, or of a module's tensors pooled.

Small inputs are computed at once. Large ones (more than ``SYNC_LIMIT`` elements) are sampled in
a background ``Task`` (the panel says "sampling…" and keeps the old plot meanwhile), the sampled
preview is shown marked approximate, then a second ``Task`` computes the exact statistics; the
range plan of the histogram (its robust range, from a sample) is made in those workers too (and
in another one when the range mode changes), so selecting a big tensor costs the GUI thread
nothing but the paint. Progress repaints are throttled (``progress.show_progress``). Showing
something else cancels them, and a stale result is ignored (a generation counter). ``refresh()``
(after an edit) is throttled, so a burst of edits costs one recomputation.
``show_tensors_later`` (the window's selection) starts all this a turn of the event loop later
(``NextTurn``), so that a click's grid paints first, alone; the note and progress bar keep their
room when hidden and the panel lays out before it paints, so the plot is painted once per result.

What is shown: a histogram over the full range, or over a robust range (0.1–99.9th percentile,
the elements outside counted at the edges) which "auto" picks when a few outliers would squash
the plot into one bar (``rangeCombo``, ``rangeLabel``); integer tensors in integer-aligned bins;
a single element as its value (``scalarValue``); nothing selected as a hint (``statsEmptyHint``).
The bins, log-y and range mode are kept between runs (QSettings).

Signals: ``statsReady(Stats)`` when exact statistics are shown, ``previewReady(Stats)`` for a
preview, ``gotoRequested(tuple)`` with the index of the first NaN/Inf when its count is clicked.
"""
from __future__ import annotations

import pyqtgraph as pg
import torch
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QProgressBar,
                               QSizePolicy, QSpinBox, QStackedWidget, QVBoxLayout, QWidget)

from ...core.stats import COMPLEX_PARTS, Stats, find_first
from ...core.stats_range import ROBUST_QUANTILES, ViewPlan
from .elided_label import ElidedLabel
from .histogram import Histogram
from .kept_setting import kept_setting
from .next_turn import NextTurn
from .stats_table import StatsTable
from ..settings import settings
from ..workers import Task
from .stats_workers import (FADED, SYNC_LIMIT, SYNC_TENSORS, StatsWorkers, _plan, _Planned,
                            gui_thread_torch, plan_view)

__all__ = ["DEFAULT_BINS", "FADED", "StatsPanel", "SYNC_LIMIT", "SYNC_TENSORS", "THROTTLE_MS",
           "gui_thread_torch", "plan_view"]

THROTTLE_MS = 120      # refresh() recomputes at most this often
DEFAULT_BINS = 100
RANGE_TEXTS = {"auto": "Range: auto", "full": "Full range",
               "robust": "{:g}–{:g}th percentile".format(*(100 * q for q in ROBUST_QUANTILES))}
BINS_KEY, LOG_KEY, RANGE_KEY = "histogram/bins", "histogram/logY", "histogram/range"


class StatsPanel(StatsWorkers, QWidget):
    gotoRequested = Signal(object)
    statsReady = Signal(object)
    previewReady = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.label = ""
        self.tensors: list[torch.Tensor] = []
        self.current_stats: Stats | None = None
        self._generation = 0
        self._sampled = False
        self._task: Task | None = None
        self._running: set[Task] = set()  # keeps cancelled tasks alive until they end

        # a long tensor name is elided, never widens the dock (the full name is the tooltip)
        self.title = ElidedLabel("", self, objectName="statsTitle")
        bold = QFont(self.title.font())
        bold.setBold(True)
        self.title.setFont(bold)
        self.empty_hint = QLabel("Select a tensor or a module\nto see its histogram and "
                                 "statistics", self, objectName="statsEmptyHint")
        self.empty_hint.setAlignment(Qt.AlignCenter)
        self.empty_hint.setEnabled(False)  # the palette's grey, as the window's own empty hint
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Expanding)
        self.approx_label = QLabel("≈ sampled — computing exact statistics…", self,
                                   objectName="approxLabel")
        self.approx_label.setStyleSheet("color: #a05a00;")
        self.approx_label.setWordWrap(True)  # a long error message wraps, never widens the dock
        self.progress = QProgressBar(self, objectName="statsProgress", textVisible=False)
        self.progress.setMaximumHeight(8)
        self.progress.setRange(0, 1000)
        for w in (self.approx_label, self.progress):  # shown or hidden, the plot keeps its size
            keep = w.sizePolicy()
            keep.setRetainSizeWhenHidden(True)
            w.setSizePolicy(keep)
        self.plot = pg.PlotWidget(self)
        self.plot.setObjectName("histogramPlot")
        self.plot.setMinimumSize(120, 160)
        self.plot.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Expanding)
        self.histogram = Histogram(self.plot)
        self.scalar_label = QLabel(self, objectName="scalarValue")
        self.scalar_label.setAlignment(Qt.AlignCenter)
        self.scalar_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.scalar_label.setWordWrap(True)
        self.scalar_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.view_stack = QStackedWidget(self, objectName="histogramStack")
        self.view_stack.addWidget(self.plot)
        self.view_stack.addWidget(self.scalar_label)
        self.hover_label = QLabel(" ", self, objectName="histogramHover")
        self.hover_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.range_label = QLabel("", self, objectName="rangeLabel")
        self.range_label.setWordWrap(True)
        self.range_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.histogram.hovered.connect(lambda text: self.hover_label.setText(text or " "))
        kept = settings()
        self.bins_spin = QSpinBox(self, objectName="binsSpin", minimum=10, maximum=1000,
                                  value=kept_setting(kept, BINS_KEY, DEFAULT_BINS, int),
                                  prefix="bins: ", singleStep=10)
        self.bins_spin.setKeyboardTracking(False)
        self.bins_spin.setToolTip("Number of bins (integer tensors: one bin per integer while "
                                  "they fit)")
        self.log_check = QCheckBox("Log y", self, objectName="logYCheck")
        self.range_combo = QComboBox(self, objectName="rangeCombo")
        for mode, text in RANGE_TEXTS.items():
            self.range_combo.addItem(text, mode)
        # its longest item must not set the dock's width (the list still shows it whole)
        self.range_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.range_combo.setMinimumContentsLength(11)
        self.range_combo.setToolTip(
            "Auto: the robust range when a few outliers would squash the full range into a bar "
            "or two.\nFull range: min to max.\nPercentiles: the elements outside are counted "
            "at the edges.")
        mode = kept_setting(kept, RANGE_KEY, "auto", str)
        self.range_combo.setCurrentIndex(max(0, self.range_combo.findData(mode)))
        self._view_generation = 0
        self._view_task: Task | None = None
        self.part_combo = QComboBox(self, objectName="complexPartCombo")
        for part in COMPLEX_PARTS:
            self.part_combo.addItem({"abs": "|z|"}.get(part, part), part)
        self.part_combo.setToolTip("Complex tensors: statistics and histogram of the absolute "
                                   "value, the real part or the imaginary part")
        self.part_combo.setVisible(False)
        self.table = StatsTable(self)

        self.controls = QWidget(self, objectName="histogramControls")
        controls = QHBoxLayout(self.controls)
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(self.bins_spin)
        controls.addWidget(self.log_check)
        controls.addWidget(self.range_combo)
        controls.addWidget(self.part_combo)
        controls.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.approx_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.empty_hint, 1)
        layout.addWidget(self.view_stack, 1)
        layout.addWidget(self.hover_label)
        layout.addWidget(self.range_label)
        layout.addWidget(self.controls)
        layout.addWidget(self.table)
        self._set_pending(False)
        self._show_empty(True)

        self._refresh_timer = QTimer(self, singleShot=True, interval=THROTTLE_MS)
        self._refresh_timer.timeout.connect(self._recompute)
        self._later = NextTurn(self._show_taken, self)  # show_tensors_later
        self.bins_spin.valueChanged.connect(lambda _: self._recompute())
        self.part_combo.currentIndexChanged.connect(lambda _: self._recompute())
        self.log_check.toggled.connect(self.histogram.set_log_y)
        self.log_check.setChecked(kept_setting(kept, LOG_KEY, False, bool))
        self.bins_spin.valueChanged.connect(lambda v: settings().setValue(BINS_KEY, v))
        self.log_check.toggled.connect(lambda on: settings().setValue(LOG_KEY, on))
        self.range_combo.currentIndexChanged.connect(self._range_mode_changed)
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
        """Statistics of what is shown are yet to come (``show_tensors_later``, a worker)."""
        return self._task is not None or self._later.is_active

    @property
    def bins(self) -> int:
        return self.bins_spin.value()

    @property
    def part(self) -> str:
        """For complex tensors: "abs", "real" or "imag"."""
        return self.part_combo.currentData()

    @property
    def range_mode(self) -> str:
        """"auto", "full" or "robust" (the percentile range)."""
        return self.range_combo.currentData()

    def set_range_mode(self, mode: str) -> None:
        self.range_combo.setCurrentIndex(self.range_combo.findData(mode))

    def set_part(self, part: str) -> None:
        self.part_combo.setCurrentIndex(self.part_combo.findData(part))

    def show_tensors(self, label: str, tensors: list[torch.Tensor]) -> None:
        """Statistics of one tensor, or of several pooled (a module's)."""
        self._take(label, tensors)
        self._show_taken()

    def show_tensors_later(self, label: str, tensors: list[torch.Tensor]) -> None:
        """As ``show_tensors``, computed (or started in a worker) on a later turn of the event
        loop: a click's grid paints first, alone, and of a burst of clicks only the last's is
        computed. ``label`` and ``tensors`` are the new ones at once, ``is_busy`` is True until
        then, and the old statistics stay meanwhile (as while a big tensor is sampled)."""
        self._take(label, tensors)
        self._later.start()

    def _take(self, label: str, tensors: list[torch.Tensor]) -> None:
        """What is shown from now on; nothing of the old one's may show after this."""
        self._later.stop()
        self._refresh_timer.stop()
        self._cancel()
        self._cancel_view()
        self._generation += 1
        self.label = label
        many = len(tensors) > SYNC_TENSORS  # no per-tensor loop on the GUI thread for these
        self.tensors = list(tensors) if many else [t.detach() for t in tensors]

    def _show_taken(self) -> None:
        self._later.stop()
        many = len(self.tensors) > SYNC_TENSORS
        self._show_empty(False)
        self.part_combo.setVisible(not many and any(t.is_complex() for t in self.tensors))
        self._recompute()

    def clear(self, keep_view: bool = False) -> None:
        """Nothing shown. ``keep_view``: something is shown next (a document just opened selects
        its first tensor): the old plot stays, faded, with the figures blanked, instead of the
        empty hint; hiding the plot and showing it a turn later laid it out and painted it twice."""
        self._later.stop()
        self._cancel()
        self._refresh_timer.stop()
        self.label, self.tensors, self.current_stats = "", [], None
        self.title.setText("")
        self._cancel_view()
        self.table.set_stats(None)
        if keep_view:
            self._dim(True)
            self.range_label.setText(" ")  # one line, as the hover label's: no relayout
            return
        self.part_combo.setVisible(False)
        self.histogram.clear()
        self._set_pending(False)
        self._dim(False)
        self._show_empty(True)

    def refresh(self) -> None:
        """The tensors were edited in place: recompute soon (calls in a burst coalesce)."""
        if self.tensors and not self._refresh_timer.isActive() and not self._later.is_active:
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

    # -- showing -------------------------------------------------------------------------------
    def _show(self, stats: Stats, plan: "_Planned | None" = None) -> None:
        """``plan``: the histogram's range plan made in the worker (None: make it here)."""
        self.current_stats = stats
        n = len(self.tensors)
        kind = f"{n} tensors, " if n > 1 else ""
        of = f", {self.part_combo.currentText()}" if stats.part else ""
        self.title.setText(f"{self.label}   ({kind}{stats.dtype}{of})")
        self._show_empty(False)
        self._dim(False)
        self._show_view(stats, plan)
        self.table.set_stats(stats, can_goto=n == 1)
        self._set_pending(stats.approximate)
        self._lay_out_now()
        (self.previewReady if stats.approximate else self.statsReady).emit(stats)

    def _lay_out_now(self) -> None:
        """The new texts' and rows' sizes now: a layout left for later would come after the
        paint the changes asked for, resize the plot and paint it a second time."""
        self.table.layout().activate()  # its rows first: their heights are the panel's
        self.layout().activate()

    def _show_empty(self, empty: bool) -> None:
        """Nothing selected: one grey hint, no empty axes and no "NaN —" rows."""
        self.empty_hint.setVisible(empty)
        for w in (self.title, self.view_stack, self.hover_label, self.range_label, self.controls,
                  self.table):
            w.setVisible(not empty)

    def _show_view(self, stats: Stats, planned: "_Planned | None" = None) -> None:
        """The histogram (or the value, or why there is none) of what ``stats`` describes;
        ``planned``: its range plan, made in a worker (used while the range mode is the same)."""
        self._cancel_view()
        self.hover_label.setText(" ")
        if stats.numel == 1 and stats.min is not None:
            self.histogram.clear()
            self._show_scalar(f"{stats.min:.10g}", "the single element")
            return
        if stats.min is None or stats.max is None:
            self.histogram.clear()
            self._show_scalar("—", "no elements" if stats.numel == 0
                              else "no finite values (all NaN or Inf)")
            return
        self.view_stack.setCurrentWidget(self.plot)
        for w in (self.controls, self.range_label, self.hover_label):
            w.setVisible(True)
        mode, auto = self.range_mode, self.range_mode == "auto"
        if len(self.tensors) > SYNC_TENSORS:  # nothing per tensor on the GUI thread: a worker
            self.histogram.set_data(stats.edges, stats.counts)  # meanwhile, the full range
            self._say_range("full", stats.min, stats.max, 0, 0, auto, stats.approximate)
            self._plan_in_worker(stats, mode, auto)
            return
        if planned is not None and planned.mode == mode:
            plan = planned.plan
        elif self._sampled:  # another range mode of a big tensor: its plan samples, in a worker
            self.histogram.set_data(stats.edges, stats.counts)  # meanwhile, the full range
            self._say_range("full", stats.min, stats.max, 0, 0, auto, stats.approximate)
            self._plan_in_worker(stats, mode, auto)
            return
        else:
            with gui_thread_torch():
                plan = _plan(stats, self.tensors, self.part, mode, self.bins).plan
        self._show_plan(stats, plan, auto, stats.approximate)
        if plan.counts is not None and plan.counts.approximate and not stats.approximate:
            self._plan_in_worker(stats, mode, auto)  # exact counts over the same edges

    def _show_plan(self, stats: Stats, plan: ViewPlan, auto: bool, approximate: bool) -> None:
        if plan.counts is None:
            self.histogram.set_data(stats.edges, stats.counts)
            self._say_range("full", plan.lo, plan.hi, 0, 0, auto, approximate)
            return
        c = plan.counts
        self.histogram.set_data(c.edges, c.counts, c.below, c.above, plan.integer)
        self._say_range(plan.shown, plan.lo, plan.hi, c.below, c.above, auto,
                        approximate or c.approximate)

    def _show_scalar(self, value: str, what: str) -> None:
        self.scalar_label.setText(f"<div style='font-size:20pt'>{value}</div>"
                                  f"<div style='color:palette(mid)'>{what}</div>")
        self.view_stack.setCurrentWidget(self.scalar_label)
        for w in (self.controls, self.range_label, self.hover_label):
            w.setVisible(False)

    def _say_range(self, shown, lo, hi, below, above, auto, approximate) -> None:
        """Which range is shown, in words (and why, when "auto" chose it)."""
        about = "≈ " if approximate else ""
        if shown == "robust":
            text = (f"{'Outliers: showing ' if auto else ''}{RANGE_TEXTS['robust']}: "
                    f"{lo:.4g} … {hi:.4g}")
            if below or above:
                text += f" ({about}{below:,} below, {about}{above:,} above)"
        else:
            text = f"Full range: {lo:.4g} … {hi:.4g}"
        self.range_label.setText(text)

    def _cancel_view(self) -> None:
        self._view_generation += 1
        if self._view_task is not None:
            self._view_task.cancel()
            self._view_task = None

    def _range_mode_changed(self, _index: int) -> None:
        settings().setValue(RANGE_KEY, self.range_mode)
        if self.current_stats is not None:
            self._show_view(self.current_stats)

    def _set_pending(self, on: bool, text: str = "≈ sampled — computing exact statistics…") -> None:
        if on:
            self.approx_label.setText(text)
            self.progress.setValue(0)
        self.approx_label.setVisible(on)
        self.progress.setVisible(on)

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().changeEvent(event)
        if event.type() == QEvent.PaletteChange:  # a dark palette: a dark plot
            self.histogram.apply_palette(self.palette())

