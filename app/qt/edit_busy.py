"""While an edit, undo or redo runs on a worker (``EditStack.busyChanged``), nothing the user can
do may touch the document: every action of the window is disabled (menus and shortcuts), the
tree and the grid take no input and do not paint (a paint would read the tensors the worker is
changing), drops are refused, and the status bar's progress bar runs.
Enabled states come back as they were; the flows then update them from the edit's outcome.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication


class EditBusy(QObject):
    """Blocks the window of ``views`` (``window_views.Views``) while ``edits`` (an ``EditStack``)
    runs a step in the background."""

    def __init__(self, views, edits):
        super().__init__(views.window)
        self.views = views
        self.window = views.window
        self.edits = edits
        self._saved: dict[QAction, bool] = {}
        self._widgets: list = []
        self._drops = False
        edits.busyChanged.connect(self.set_busy)
        # QUndoStack re-enables its Undo / Redo actions when it moves (after its undo() started
        # the work): disable them again, after the stack's own slots.
        for signal in (edits.stack.canUndoChanged, edits.stack.canRedoChanged):
            signal.connect(self._keep_blocked)

    @property
    def busy(self) -> bool:
        return bool(self._saved) or bool(self._widgets)

    def set_busy(self, busy: bool) -> None:
        w = self.window
        if busy:
            self._saved = {a: a.isEnabled() for a in w.findChildren(QAction)}
            for a in self._saved:
                a.setEnabled(False)
            self._widgets = [x for x in (self.views.tree.view, self.views.grid) if x.isEnabled()]
            for x in self._widgets:
                x.setUpdatesEnabled(False)  # no paint reads a tensor the worker is changing
                x.setEnabled(False)
            self._drops = w.acceptDrops()
            w.setAcceptDrops(False)
            w.set_busy(True)  # the progress bar, indeterminate: an edit reports no progress
            QApplication.setOverrideCursor(Qt.BusyCursor)
            w.statusBar().showMessage("Editing …")
            return
        saved, self._saved = self._saved, {}
        for a, enabled in saved.items():
            a.setEnabled(enabled)
        widgets, self._widgets = self._widgets, []
        for x in widgets:
            x.setEnabled(True)
            x.setUpdatesEnabled(True)
        w.setAcceptDrops(self._drops)
        w.set_busy(False)
        QApplication.restoreOverrideCursor()
        w.statusBar().clearMessage()

    def _keep_blocked(self, _can: bool) -> None:
        if self._saved:
            for a in (self.window.actionUndo, self.window.actionRedo):
                self._saved[a] = a.isEnabled()
                a.setEnabled(False)
