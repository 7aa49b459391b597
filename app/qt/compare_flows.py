"""Compare the document with a reference checkpoint (File > Compare With..., or a Shift+drop).

The reference is opened and compared in a ``Task`` (progress and Cancel in the status bar);
the result puts a "Change" column in the tree (colour per row, summed per module, sortable by the
size of the change, filter "only changed"). The comparison toolbar picks what the grid and the
histogram show for the selected tensor (``compare_views``): this document, the reference, or
A - B; and transplants the selected tensor or subtree from the reference.
"""
from __future__ import annotations

import os

import shiboken6
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QMessageBox,
                               QProgressBar, QPushButton, QToolBar)

from ..core.compare.diff import DiffResult, diff_documents
from ..core.errors import UserError
from . import compare_actions
from .progress import show_progress
from .compare_views import MODE_A, MODE_B, MODE_DIFF, CompareViews  # noqa: F401
from .models.compare_columns import SORT_ROLE, ChangeColumn
from .models.tree_model import HEADERS
from .settings import remember_folder
from .workers import Task
from .window_views import Presenter, Views



class CompareFlows(Presenter):
    """The comparison presenter.

    Parameters
    ----------
    views
        The window's views (``window_views.Views``): ``views.tree`` (the Change column,
        sorting, filtering), ``views.grid`` and ``views.stats`` (through ``CompareViews``);
        ``views.window``: the File menu, a tool bar, the status bar, ``fit_docks``,
        ``select_name``, ``dialog_folder``, ``dropped_path`` (Shift+drop).
    controller
        The document and the selection.
    edit_flows
        Pushes transplants and interpolations.
    prompts
        The reference file dialog and the error box.
    status
        ``status(text, timeout_ms)``: a transient message.
    """

    def __init__(self, views: Views, *, controller, edit_flows, prompts, status):
        super().__init__(views, controller=controller, prompts=prompts, status=status, edit_flows=edit_flows)
        self.reference = None              # the reference Document
        self.reference_path: str | None = None
        self.result: DiffResult | None = None
        self.column: ChangeColumn | None = None
        self.stale = False                  # the document was edited since the comparison
        self._task: Task | None = None
        self._running: set[Task] = set()
        self._sort_order = Qt.DescendingOrder
        self.error_box: QMessageBox | None = None

        self.actionCompare = QAction("Compare &With…", self.window)
        self.actionCompare.setObjectName("actionCompare")
        self.actionCompare.setToolTip("Open a reference checkpoint beside this one and compare "
                                      "them tensor by tensor (or Shift+drop a file)")
        self.actionCompare.triggered.connect(self.choose_reference)
        self.actionCloseCompare = QAction("Close Comparison", self.window)
        self.actionCloseCompare.setObjectName("actionCloseCompare")
        self.actionCloseCompare.triggered.connect(self.close_comparison)
        self.actionTransplant = QAction("Transplant from Reference", self.window)
        self.actionTransplant.setObjectName("actionTransplant")
        self.actionTransplant.setToolTip("Copy the selected tensor or subtree from the reference "
                                         "into this document (undoable, recorded)")
        self.actionTransplant.triggered.connect(self.transplant_selection)
        menu = self.window.menuBar().actions()[0].menu()
        menu.insertAction(self.window.actionSave, self.actionCompare)
        menu.insertSeparator(self.window.actionSave)
        self._build_status_widgets()
        self._build_toolbar()
        self.compare_views = CompareViews(self)
        self._update_enabled()

        self.controller.documentChanged.connect(self._on_document_changed)
        self.controller.undo_stack.indexChanged.connect(self._on_edited)
        views.tree.view.header().sectionClicked.connect(self._header_clicked)
        self.window.installEventFilter(self)

    # -- construction -------------------------------------------------------------------------
    def _build_status_widgets(self) -> None:
        bar = self.window.statusBar()
        self.progress_bar = QProgressBar(self.window, objectName="compareProgress")
        self.progress_bar.setMaximumWidth(160)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFormat("comparing %p%")
        self.cancel_button = QPushButton("Cancel", self.window, objectName="cancelCompare")
        self.cancel_button.clicked.connect(self.cancel)
        bar.addPermanentWidget(self.progress_bar)
        bar.addPermanentWidget(self.cancel_button)
        self._set_busy(False)

    def _build_toolbar(self) -> None:
        tb = self.toolbar = QToolBar("Comparison", self.window)
        tb.setObjectName("compareToolBar")
        self.label = QLabel("", tb, objectName="compareLabel")
        self.mode_combo = QComboBox(tb, objectName="compareModeCombo")
        self.mode_combo.addItems(["A: this document", "B: reference", "A − B"])
        self.mode_combo.setToolTip("What the grid and the histogram show for the selected tensor")
        self.only_changed = QCheckBox("Only changed", tb, objectName="onlyChangedCheck")
        self.sort_button = QPushButton("Sort by change", tb, objectName="sortByChange")
        tb.addWidget(self.label)
        tb.addSeparator()
        tb.addWidget(QLabel(" Show: ", tb))
        tb.addWidget(self.mode_combo)
        tb.addWidget(self.only_changed)
        tb.addWidget(self.sort_button)
        tb.addAction(self.actionTransplant)
        self.interpolate_spin = QDoubleSpinBox(tb, objectName="interpolateSpin", minimum=0.0,
                                               maximum=1.0, singleStep=0.1, value=0.5, decimals=3)
        self.interpolate_spin.setPrefix("t = ")
        self.interpolate_button = QPushButton("Interpolate", tb, objectName="interpolateButton")
        self.interpolate_button.setToolTip("W = (1 - t)·W + t·W_reference for every tensor both "
                                           "have with the same shape (t = 0.5: their average)")
        tb.addWidget(self.interpolate_spin)
        tb.addWidget(self.interpolate_button)
        self.interpolate_button.clicked.connect(lambda: self.interpolate(self.interpolate_spin.value()))
        tb.addAction(self.actionCloseCompare)
        self.window.addToolBar(Qt.TopToolBarArea, tb)
        tb.hide()
        self.mode_combo.currentIndexChanged.connect(lambda _: self._reshow())
        self.only_changed.toggled.connect(self._filter_changed)
        self.sort_button.clicked.connect(lambda: self.sort_by_change(Qt.DescendingOrder))

    # -- starting and stopping ------------------------------------------------------------------
    @property
    def is_busy(self) -> bool:
        return self._task is not None

    def choose_reference(self) -> None:
        from .main_window import OPEN_FILTER
        path = self.prompts.open_file("Compare with checkpoint", self.window.dialog_folder(),
                                      OPEN_FILTER)
        if path:
            remember_folder(path)
            self.compare_with(path)

    def compare_with(self, path, rules=()) -> Task | None:
        """Open ``path`` as the reference and compare the document with it, in the background."""
        doc = self.controller.document
        if doc is None:
            self.status("Open a document before comparing", 8000)
            return None
        self.cancel()
        path = os.fspath(path)
        label_a = doc.path or self.controller.title

        def work(progress, cancelled):
            from ..core.formats import load_document
            ref = load_document(path)
            try:
                res = diff_documents(doc, ref, rules=rules, progress=progress,
                                     cancelled=cancelled, a_label=label_a, b_label=path)
            except BaseException:
                ref.close()
                raise
            return ref, res

        task = Task(work)
        self._task = task
        self._running.add(task)
        task.signals.progress.connect(self._on_progress)
        task.signals.finished.connect(lambda out, task=task: self._on_compared(task, doc, path, out))
        task.signals.failed.connect(lambda exc, tb, task=task: self._on_failed(task, path, exc))
        task.signals.done.connect(lambda task=task: self._on_done(task))
        self._set_busy(True)
        self.status(f"Comparing with {path} …")
        return task.start()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
            self._set_busy(False)
            self.status("Comparison cancelled", 5000)

    def close_comparison(self) -> None:
        self.cancel()
        had = self.result is not None
        self.result = self.column = None
        self.stale = False
        self.compare_views.overlay.setVisible(False)
        if self.reference is not None:
            self.reference.close()
            self.reference = self.reference_path = None
        self.toolbar.hide()
        self._update_enabled()
        if had:
            name = self._selected_name()
            proxy = self.views.tree.proxy
            proxy.set_extra_filter(None)
            proxy.sort(-1)
            self.views.tree.view.header().setSortIndicatorShown(False)
            self.views.tree.model.set_extra_column(None)
            self._restore_tree(name)

    # -- task reports ---------------------------------------------------------------------------
    def _set_busy(self, busy: bool) -> None:
        self.progress_bar.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress_bar.setValue(0)

    def _on_progress(self, done, total) -> None:
        show_progress(self.progress_bar, done, total)  # throttled repaints

    def _on_compared(self, task: Task, doc, path: str, out) -> None:
        ref, res = out
        if task is not self._task or doc is not self.controller.document:
            ref.close()
            return
        self._task = None
        self._set_busy(False)
        if self.reference is not None:
            self.reference.close()
        self.reference, self.reference_path, self.result = ref, path, res
        self.column = ChangeColumn(res)
        self.stale = False
        name = self._selected_name()
        self.views.tree.model.set_extra_column(self.column)
        self.views.tree.proxy.setSortRole(SORT_ROLE)
        self._filter_changed(self.only_changed.isChecked())
        self._restore_tree(name)
        self.toolbar.show()
        self._update_label()
        self._update_enabled()
        s = res.to_json()["summary"]
        self.status(
            f"Compared with {os.path.basename(path)}: {s['changed']} changed, {s['equal']} equal, "
            f"{s['only_a']} only here, {s['only_b']} only in the reference", 15000)

    def _on_failed(self, task: Task, path: str, exc: BaseException) -> None:
        if task is not self._task:
            return
        self._task = None
        self._set_busy(False)
        message = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        self.status(f"Cannot compare with {path}: {message}", 15000)
        if self.error_box is not None:
            self.error_box.close()
        box = self.prompts.error("Cannot compare", message, "compareErrorBox")
        box.finished.connect(lambda _=0: setattr(self, "error_box", None))
        self.error_box = box

    def _on_done(self, task: Task) -> None:
        self._running.discard(task)

    def _update_label(self) -> None:
        if self.result is None:
            self.label.setText("")
            return
        s = self.result.to_json()["summary"]
        text = (f"Reference: <b>{os.path.basename(self.reference_path)}</b> — {s['changed']} "
                f"changed, {s['equal']} equal, {s['only_a']} only here, {s['only_b']} only there")
        if s["shape_changed"]:
            text += f", {s['shape_changed']} shape changed"
        if self.stale:
            text += " <i>(edited since compared: compare again to update)</i>"
        self.label.setText(text)
        self.label.setToolTip("\n".join(["Only in the reference:", *self.result.only_b[:50]])
                              if self.result.only_b else "")

    def _update_enabled(self) -> None:
        self.actionCompare.setEnabled(self.controller.document is not None)
        self.actionCloseCompare.setEnabled(self.result is not None)
        self.actionTransplant.setEnabled(self.result is not None)

    # -- the tree -------------------------------------------------------------------------------
    def _selected_name(self) -> str | None:
        node = self.views.tree.current_node()
        return node.full_name if node is not None else None

    def _restore_tree(self, name: str | None) -> None:
        self.views.tree.view.expandToDepth(0)
        if self.column is not None:  # Change right after Name: what a comparison is read for
            header = self.views.tree.view.header()
            header.moveSection(header.visualIndex(len(HEADERS)), 1)
        self.views.tree.fit_columns()
        self.window.fit_docks()  # room for the Change column
        if name is not None:
            self.window.select_name(name)

    def _filter_changed(self, only: bool) -> None:
        column = self.column
        self.views.tree.proxy.set_extra_filter(
            column.is_different if (only and column is not None) else None)
        if only:
            self.views.tree.view.expandAll()

    def sort_by_change(self, order=Qt.DescendingOrder) -> None:
        """Largest change first (or last); modules by the largest change below them."""
        if self.column is None:
            return
        col = len(HEADERS)
        self._sort_order = order
        self.views.tree.proxy.sort(col, order)
        header = self.views.tree.view.header()
        header.setSortIndicatorShown(True)
        header.setSortIndicator(col, order)

    def _header_clicked(self, section: int) -> None:
        if self.column is not None and section == len(HEADERS):
            flip = Qt.AscendingOrder if self._sort_order == Qt.DescendingOrder else Qt.DescendingOrder
            self.sort_by_change(flip)

    # -- acting on the comparison (compare_actions does the work) -------------------------
    def transplant_names(self, node) -> list[str]:
        return compare_actions.transplant_names(self.result, node)

    def transplant_selection(self) -> str | None:
        """Copy the selected tensor / subtree from the reference; returns what was refused."""
        return compare_actions.transplant_selection(self)

    def interpolate(self, t: float) -> str | None:
        """``(1 - t)·W + t·W_ref`` over the matched tensors of equal shape; None when applied."""
        return compare_actions.interpolate(self, t)

    # -- grid and histogram (CompareViews does the work) ---------------------------------------
    @property
    def overlay(self):
        return self.compare_views.overlay

    @property
    def mode(self) -> int:
        """The grid's source (MODE_A, MODE_B, MODE_DIFF); -1 once the window is gone, so that a
        background result arriving after a close is dropped."""
        combo = self.mode_combo
        return combo.currentIndex() if shiboken6.isValid(combo) else -1

    def set_mode(self, mode: int) -> None:
        self.mode_combo.setCurrentIndex(mode)

    def reference_name(self, name: str) -> str | None:
        if self.column is None:
            return None
        key = self.column.key.get(name)
        return self.result.pairs[key][1] if key is not None else None

    def _on_document_changed(self, _doc) -> None:
        self.close_comparison()
        self._update_enabled()

    def _on_edited(self, _index) -> None:
        if self.result is not None and not self.stale:
            self.stale = True
            self._update_label()

    def _reshow(self) -> None:
        """The mode changed: show the selected tensor again (the controller re-emits it)."""
        node = self.controller.current_node
        if node is not None:
            self.controller.select_node(node)

    # -- Shift + drop: compare instead of open --------------------------------------------------
    def eventFilter(self, watched, event) -> bool:
        if watched is self.window and event.type() == QEvent.Drop \
                and event.modifiers() & Qt.ShiftModifier and self.controller.document is not None:
            path = self.window.dropped_path(event.mimeData())
            if path is not None:
                event.acceptProposedAction()
                self.compare_with(path)
                return True
        return super().eventFilter(watched, event)


def compare_for_screenshot(window, path: str, settle) -> None:
    """``screenshot --compare REF``: compare, wait, show the changes largest first."""
    flows = window.compare_flows
    flows.compare_with(path)
    settle()
    if flows.result is None:
        if flows.error_box is not None:
            reason = flows.error_box.text()
            flows.error_box.close()
        else:
            reason = "the comparison did not finish"
        window.close()
        raise UserError(f"--compare {path}: {reason}")
    flows.sort_by_change(Qt.DescendingOrder)
    window.tree_view.expandToDepth(1)
