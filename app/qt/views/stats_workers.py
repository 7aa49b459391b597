"""The stats panel's computing: which inputs are computed on the GUI thread, the sampled preview
and exact statistics in background ``Task``s, the histogram's range plan off the GUI thread, and
a stale result ignored (a generation counter). A mixin of ``stats_panel.StatsPanel``, which holds
the widgets, the signals and the display."""
from __future__ import annotations

from contextlib import nullcontext
from typing import NamedTuple

from ...core.stats import (Stats, compute_stats, compute_stats_many, distinct_elements,
                            preview_stats, preview_stats_many)
from ...core.stats_range import ViewPlan, plan_view
from ...core.threads import one_thread
from ..progress import show_progress
from ..workers import Task

# elements computed on the GUI thread; more go to a Task. At 1 << 20 (a 1024 x 1024 weight) the
# statistics and the range plan took 25-50 ms of GUI-thread CPU (300 ms with the cores busy), most
# of the soak's longest stalls; at 1 << 18 they take a few ms.
SYNC_LIMIT = 1 << 18
SYNC_TENSORS = 64      # and at most this many tensors: a module of 100k tensors goes to a Task
FADED = 0.3            # the opacity of the previous plot while a big tensor is sampled

# Small previews on the GUI thread run with torch's thread count as it is: setting it there
# would change it for the whole process. Workers run single-threaded (``one_thread``).
gui_thread_torch = nullcontext


class StatsWorkers:
    """Starting, cancelling and receiving the panel's workers; mixed into ``StatsPanel``."""

    def _recompute(self) -> None:
        self._cancel()
        self._generation += 1
        self._sampled = False  # True: too big for the GUI thread, the preview is sampled
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
        except (RuntimeError, ValueError, TypeError, MemoryError) as exc:  # never raise in a slot
            self._show_error(exc)
            return
        self._sampled = True
        self._start_preview(gen, tensors, bins, part, single)

    def _start_preview(self, gen: int, tensors: list, bins: int, part, single: bool) -> None:
        """The sampled preview (and its range plan) in a worker; the exact pass follows it."""
        mode = self.range_mode

        def work(progress, cancelled):
            with one_thread():
                stats = (preview_stats(tensors[0], bins, part=part) if single
                         else preview_stats_many(tensors, bins, part=part))
                return gen, stats, _plan(stats, tensors, part, mode, bins), (bins, part, single)
        # bound methods, not closures: a panel deleted meanwhile is then never called
        task = Task(work)
        task.signals.finished.connect(self._on_preview)
        task.signals.failed.connect(self._on_preview_failed)
        self._task = task
        self._set_pending(True, "sampling…")
        self.title.setText(f"{self.label}   (…)")
        self.table.set_stats(None)
        self.range_label.setText("")
        self._dim(True)  # the old plot stays, faded, until the preview replaces it
        self._lay_out_now()
        self._start(task)

    def _on_preview(self, payload) -> None:
        gen, stats, plan, (bins, part, single) = payload
        if gen != self._generation:  # superseded while it ran
            return
        self._task = None
        self._show(stats, plan)
        self._start_exact(gen, list(self.tensors), bins, part, single)

    def _on_preview_failed(self, exc, _traceback: str) -> None:
        if self._task is not None and self.sender() is self._task.signals:
            self._task = None
            self._show_error(exc)

    def _start_exact(self, gen: int, tensors: list, bins: int, part, single: bool) -> None:
        """Exact statistics in a worker, on one thread (chunked passes: see core/threads.py)."""
        mode, plan_here = self.range_mode, len(tensors) <= SYNC_TENSORS

        def work(progress, cancelled):
            with one_thread():
                if single:
                    stats = compute_stats(tensors[0], bins, progress, cancelled, part=part)
                else:
                    stats = compute_stats_many(tensors, bins, progress, cancelled, part=part)
                return gen, stats, _plan(stats, tensors, part, mode, bins) if plan_here else None
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
        gen, stats, plan = payload
        if gen != self._generation:  # superseded while it ran
            return
        self._task = None
        if stats.part is not None:  # many tensors: found complex ones in the worker
            self.part_combo.setVisible(True)
        self._show(stats, plan)

    def _dim(self, on: bool) -> None:
        """Fade the plot: it still shows what was selected before."""
        self.histogram.item.setOpacity(FADED if on else 1.0)  # the scene's own: no widget effect

    def _show_error(self, exc) -> None:
        self._dim(False)
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
        if self._task is not None:
            show_progress(self.progress, done, total)  # a few repaints a second, not hundreds

    def _on_found(self, payload) -> None:
        gen, index = payload
        if gen == self._generation and index is not None:
            self.gotoRequested.emit(index)

    def _plan_in_worker(self, stats: Stats, mode: str, auto: bool) -> None:
        """The range and its exact counts off the GUI thread (many tensors, or many elements)."""
        gen, tensors, part, bins = self._view_generation, list(self.tensors), self.part, self.bins

        def work(progress, cancelled):
            with one_thread():
                plan = plan_view(stats, tensors, part, mode, bins, True, progress, cancelled)
                return gen, stats, plan, auto
        task = Task(work)
        task.signals.finished.connect(self._on_planned)  # bound: never called once deleted
        self._view_task = task
        self._start(task)

    def _on_planned(self, payload) -> None:
        gen, stats, plan, auto = payload
        if gen == self._view_generation:
            self._view_task = None
            self._show_plan(stats, plan, auto, stats.approximate)
            self._lay_out_now()  # the range's words may take another line



class _Planned(NamedTuple):
    """A histogram range plan and the range mode it was made for."""
    mode: str
    plan: ViewPlan


def _plan(stats: Stats, tensors: list, part, mode: str, bins: int) -> "_Planned | None":
    """The range plan of ``stats`` from a sample (None when there is no histogram to plan)."""
    if stats.min is None or stats.max is None or stats.numel == 1:
        return None
    try:
        return _Planned(mode, plan_view(stats, tensors, part, mode, bins))
    except (RuntimeError, ValueError, TypeError, MemoryError):
        return _Planned(mode, ViewPlan("full", stats.min, stats.max, False))  # stats' own stands


