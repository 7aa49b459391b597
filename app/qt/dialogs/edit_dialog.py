"""The edit dialog: set / add / multiply / clamp / expression, with index, mask and a preview.

It takes plain data — the tensors' names and shapes — and three callbacks from whoever opens it
(``build``: spec and targets to an Edit; ``preview``: the edit on a copy of one tensor;
``apply``: the edit itself); it never holds the document. It returns a plain spec and the target
names (``spec()``, ``targets()``, ``make_edit()``). The preview runs the edit on a copy of the
first target, and Apply runs the edit itself, both on a worker thread (``app.qt.workers.Task``): the window stays responsive, Stop (or Cancel) ends either
between torch operations, and a stopped or failed apply leaves the tensors as they were. The
applied edit is handed over in ``applied_edit`` when the dialog is accepted; whoever opened the
dialog pushes it on the undo stack as already applied.
"""
from __future__ import annotations

import fnmatch
import math
from typing import Callable

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Slot
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from ...core.edits.specs import OPERATIONS, PREVIEW_LIMIT, EditSpec, check_shapes
from ...core.errors import Cancelled, UserError
from ..views.histogram_axes import CountAxis, ValueAxis
from ..workers import Task
from .edit_preview_plot import BINS, SPIKE, PreviewPlot, _histograms

__all__ = ["BINS", "EditDialog", "SPIKE", "run_task"]


class _Keeper(QObject):
    """Holds running tasks until they are done, even when the dialog that started them is gone
    (a QRunnable must outlive its run). Connected through a bound method, not a closure over the
    task, so nothing keeps a finished task alive."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: dict[QObject, Task] = {}

    def start(self, task: Task) -> Task:
        self.tasks[task.signals] = task
        task.signals.done.connect(self._done)
        return task.start()

    @Slot()
    def _done(self) -> None:
        self.tasks.pop(self.sender(), None)


_keeper: _Keeper | None = None


def run_task(task: Task) -> Task:
    global _keeper
    if _keeper is None:
        _keeper = _Keeper()
    return _keeper.start(task)


class EditDialog(PreviewPlot, QDialog):
    """Set / add / multiply / clamp / expression over one tensor or a module's tensors.

    Parameters
    ----------
    shapes
        The tensors it may edit, in order, with their shapes (checked before any is read).
    title
        What is edited, for the window title and the Target row.
    build
        ``build(spec, targets)``: the core Edit (raises ``UserError`` for a bad spec).
    preview
        ``preview(spec, name, cancelled)``: the core ``Preview`` of the spec on a copy of
        ``name`` (run on a worker thread).
    apply
        ``apply(edit, progress, cancelled)``: run the edit (on a worker thread; a cancelled or
        failed run leaves the tensors as they were).
    module_prefix
        The module's name when a module was selected: a glob then narrows the tensors.
    """

    def __init__(self, shapes: dict[str, tuple], title: str, parent: QWidget | None = None, *,
                 build: Callable, preview: Callable, apply: Callable,
                 module_prefix: str | None = None):
        super().__init__(parent)
        self._build_edit, self._preview_edit, self._apply_edit = build, preview, apply
        self.setObjectName("editDialog")
        self.setWindowTitle(f"Edit {title}")
        self._shapes = dict(shapes)
        self._all_names = list(shapes)
        self._prefix = module_prefix
        self.changed_count: int | None = None  # elements the previewed edit changes
        self.applied_edit = None                # set when Apply has run the edit
        self._generation = 0                    # results of older previews are dropped
        self._preview_task: Task | None = None
        self._apply_task: Task | None = None
        self._close_when_done = False
        self._build(title)
        self._timer = QTimer(self, singleShot=True, interval=150, timeout=self._update_preview)
        for w in (self.value, self.low, self.high, self.expression, self.index, self.mask, self.glob):
            w.textChanged.connect(self._schedule)
        self.operation.currentIndexChanged.connect(self._operation_changed)
        self._operation_changed()

    # -- layout ---------------------------------------------------------------------------------
    def _build(self, title: str) -> None:
        form = QFormLayout()
        self.target_label = QLabel(title)
        self.target_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow("Target:", self.target_label)
        self.glob = self._line("targetGlob", "*weight  (glob over names in the module)")
        self.glob.setVisible(self._prefix is not None)
        if self._prefix is not None:
            form.addRow("Tensors matching:", self.glob)
        self.match_label = QLabel()
        form.addRow("", self.match_label)
        self.operation = QComboBox(objectName="operation")
        for key, text in OPERATIONS.items():
            self.operation.addItem(text, key)
        form.addRow("Operation:", self.operation)
        self.value = self._line("value", "0.0")
        self.low, self.high = self._line("low", "minimum"), self._line("high", "maximum")
        self.expression = self._line("expression", "w * 0.5   or   torch.where(w.abs() < 5, 0, w)")
        self.index = self._line("index", "optional, e.g. [:, 0] or [0:2]")
        self.mask = self._line("mask", "optional, e.g. w.abs() >= 5")
        self._rows = {"value": ("Value:", self.value), "low": ("Minimum:", self.low),
                      "high": ("Maximum:", self.high), "expression": ("w =", self.expression)}
        for label, w in self._rows.values():
            form.addRow(label, w)
        form.addRow("Index:", self.index)
        form.addRow("Only where:", self.mask)
        self._form = form

        self.plot = pg.PlotWidget(axisItems={"left": CountAxis("left"),
                                             "bottom": ValueAxis("bottom")})
        for name in ("left", "bottom"):
            self.plot.getAxis(name).enableAutoSIPrefix(False)
        self.plot.setObjectName("previewPlot")
        self.plot.setMinimumHeight(160)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "value")
        self.plot.setLabel("left", "count")
        self.plot.addLegend(offset=(-10, 10))
        self._after = self.plot.plot(name="after", stepMode="center", fillLevel=0,
                                     brush=(230, 120, 20, 90), pen=pg.mkPen((210, 100, 0), width=2))
        # "before" is drawn over "after": a tall "after" spike never hides it
        self._before = self.plot.plot(name="before", stepMode="center", fillLevel=0,
                                      brush=(120, 120, 120, 70), pen=pg.mkPen((90, 90, 90), width=2))
        self._before.setZValue(1)
        self._spike = pg.TextItem(anchor=(0.5, 0))
        self._spike.setVisible(False)
        self.plot.addItem(self._spike, ignoreBounds=True)
        self._style_preview_plot()
        self.changed_label = QLabel(objectName="changedLabel")
        self.error_label = QLabel(objectName="errorLabel")
        self.error_label.setStyleSheet("color: #b00020")
        self.error_label.setWordWrap(True)
        self.progress = QProgressBar(objectName="editProgress", visible=False)
        self.stop_button = QPushButton("Stop", objectName="stopButton", visible=False)
        self.stop_button.setToolTip("Stop the running preview or edit; nothing is changed")
        self.stop_button.clicked.connect(self.stop)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Apply")
        self.buttons.accepted.connect(self._accept_if_valid)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.plot)
        layout.addWidget(self.changed_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.stop_button)
        layout.addWidget(self.buttons)
        self.resize(520, 560)

    def _line(self, name: str, placeholder: str) -> QLineEdit:
        w = QLineEdit(objectName=name)
        w.setPlaceholderText(placeholder)
        return w

    # -- state ----------------------------------------------------------------------------------
    def spec(self) -> EditSpec:
        return EditSpec(op=self.operation.currentData(), value=self.value.text(),
                        low=self.low.text(), high=self.high.text(), expr=self.expression.text(),
                        index=self.index.text(), mask=self.mask.text())

    def targets(self) -> list[str]:
        pattern = self.glob.text().strip() if self._prefix is not None else ""
        if not pattern:
            return list(self._all_names)
        rel = len(self._prefix) + 1 if self._prefix else 0
        return [n for n in self._all_names
                if fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(n[rel:], pattern)]

    def make_edit(self):
        return self._build_edit(self.spec(), self.targets())

    def _operation_changed(self) -> None:
        op = self.operation.currentData()
        shown = {"set": ["value"], "add": ["value"], "mul": ["value"], "clamp": ["low", "high"],
                 "expr": ["expression"]}[op]
        for key, (_, w) in self._rows.items():
            self._form.setRowVisible(w, key in shown)
        self._schedule()

    def _schedule(self) -> None:
        self._timer.start()

    def _validate(self) -> list[str] | None:
        """The checks that read no tensor (on the GUI thread); the targets, or None."""
        targets = self.targets()
        self.match_label.setText(f"{len(targets)} tensor{'s' if len(targets) != 1 else ''}"
                                 + (f": {', '.join(targets[:3])}{' …' if len(targets) > 3 else ''}"
                                    if targets else ""))
        try:
            if not targets:
                raise UserError("no tensor matches")
            self.make_edit()
            check_shapes(self.spec(), {n: self._shapes[n] for n in targets})
        except UserError as exc:
            self._show_error(str(exc))
            return None
        self.error_label.setText("")
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(self._apply_task is None)
        return targets

    def _show_error(self, message: str) -> None:
        self._clear_after()  # a stale "after" would claim the broken edit's result
        self.changed_label.setText("")
        self.changed_count = None
        self.error_label.setText(message)
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(False)

    def _update_preview(self) -> bool:
        """Validate now and start the preview on a worker; True when the edit can be applied."""
        self._generation += 1
        if self._preview_task is not None:
            self._preview_task.cancel()
            self._preview_task = None
        targets = self._validate()
        if targets is None:
            self._update_busy()
            return False
        name = targets[0]
        self.changed_count = None
        if math.prod(self._shapes[name]) > PREVIEW_LIMIT:
            self._set_plot(None)  # a huge tensor can still be edited, unpreviewed
            self.changed_label.setText(f"no preview for tensors over {PREVIEW_LIMIT:,} elements; "
                                       "the edit is checked when applied")
            self._update_busy()
            return True
        self.changed_label.setText("Previewing …")
        spec, preview, gen, many = self.spec(), self._preview_edit, self._generation, len(targets) > 1

        def work(progress, cancelled):
            try:
                p = preview(spec, name, cancelled)
                return gen, name, many, p.before.numel(), p.changed, _histograms(p.before, p.after), None
            except Cancelled:
                raise
            except Exception as exc:  # shown in the dialog, as one line
                return gen, name, many, 0, None, None, exc
        task = Task(work)
        task.signals.finished.connect(self._preview_finished)
        self._preview_task = run_task(task)
        self._update_busy()
        return True

    @Slot(object)
    def _preview_finished(self, payload) -> None:
        gen, name, many, total, changed, hist, error = payload
        if gen != self._generation:
            return  # superseded while it ran
        self._preview_task = None
        self._update_busy()
        if error is not None:
            self._show_error(str(error) if isinstance(error, UserError)
                             else f"{type(error).__name__}: {error}")
            return
        self._set_plot(hist)
        self.changed_label.setText(f"{changed:,} of {total:,} elements change"
                                   + (f" in {name}" if many else ""))
        self.changed_count = changed

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().changeEvent(event)
        if event.type() == QEvent.PaletteChange:
            self._style_preview_plot()

    # -- applying -------------------------------------------------------------------------------
    def _accept_if_valid(self) -> None:
        self._timer.stop()
        if self._apply_task is not None or self._validate() is None:
            return
        edit, apply = self.make_edit(), self._apply_edit
        if self._preview_task is not None:  # the edit itself is what counts now
            self._preview_task.cancel()
            self._preview_task = None
            self._generation += 1

        def work(progress, cancelled):
            if cancelled():
                raise Cancelled()
            apply(edit, progress, cancelled)
            return edit
        task = Task(work)
        task.signals.progress.connect(self._apply_progress)
        task.signals.finished.connect(self._applied)
        task.signals.failed.connect(self._apply_failed)
        task.signals.done.connect(self._apply_done)
        self._apply_task = task
        self.error_label.setText("")
        self.changed_label.setText("Applying …")
        self.progress.setRange(0, 0)
        self._update_busy()
        run_task(task)

    @Slot(object, object)
    def _apply_progress(self, done, total) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * done / max(total, 1)))

    @Slot(object)
    def _applied(self, edit) -> None:
        self.applied_edit = edit
        self._apply_task = None
        self._close_when_done = False
        self.accept()

    @Slot(object, str)
    def _apply_failed(self, exc, _tb) -> None:
        self._show_error(str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}")

    @Slot()
    def _apply_done(self) -> None:
        if self.applied_edit is not None:
            return
        stopped = self._apply_task is not None and self._apply_task.is_cancelled
        self._apply_task = None
        self._update_busy()
        if self._close_when_done:
            super().reject()
        elif stopped:
            self.changed_label.setText("Stopped; nothing was changed")
            self._validate()

    def stop(self) -> None:
        """Stop the running preview or edit (the edit restores what it had written)."""
        if self._apply_task is not None:
            self._apply_task.cancel()
        if self._preview_task is not None:
            self._preview_task.cancel()
            self._preview_task = None
            self._generation += 1
            self.changed_label.setText("Preview stopped")
            self._update_busy()

    def reject(self) -> None:
        if self._apply_task is not None:  # close once the edit has restored the tensors
            self._close_when_done = True
            self._apply_task.cancel()
            return
        self.stop()
        super().reject()

    @property
    def busy(self) -> bool:
        return self._apply_task is not None or self._preview_task is not None

    def _update_busy(self) -> None:
        applying = self._apply_task is not None
        self.stop_button.setVisible(self.busy)
        self.progress.setVisible(applying)
        for w in (self.operation, self.value, self.low, self.high, self.expression, self.index,
                  self.mask, self.glob):
            w.setEnabled(not applying)
        if applying:
            self.buttons.button(QDialogButtonBox.Ok).setEnabled(False)
