"""The main window: menus, actions, docks, drag-and-drop and the status bar — nothing more.

Decisions (what to open, what a selection shows) live in ``Controller``; the window forwards
gestures to it and shows what its signals say.
"""
from __future__ import annotations

import os
import weakref

import shiboken6
from PySide6.QtCore import QEvent, QModelIndex, Qt, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QMainWindow, QMessageBox, QWidget

from ..core.edits import surgery as _surgery  # noqa: F401  (at start-up: a first Delete
#                                                     must not pay ~40 ms of imports on the GUI thread)
from ..core.model.document import Document
from .compare_flows import CompareFlows
from .controller import Controller, document_summary, openable_path
from .models.tree_model import RESOURCES, NodeRole
from .edit_flows import EditFlows
from .entry_flows import EntryFlows
from .file_watch import FileWatch
from .help_flows import HelpFlows
from .open_flows import OpenFlows
from .param_flows import ParamFlows
from .progress import show_progress
from .prompts import CANCEL, DISCARD, SAVE, Prompts  # noqa: F401  (the answers, as before)
from .save_flows import SaveFlows
from .settings import last_folder, remember_folder, save_layout
from .verify_flows import VerifyFlows
from .window_build import WindowBuild
from .window_views import Views
from .workers import share_the_gil

from .views.drop_overlay import DropOverlay
from .views.tree_panel import FIT_ROWS, ModuleTreePanel  # noqa: F401  (re-exported)
from .views.stats_panel import StatsPanel  # noqa: F401  (re-exported)
from .views.tensor_view import TensorView  # noqa: F401  (re-exported)

OPEN_FILTER = ("Checkpoints (*.pt *.pth *.bin *.ckpt *.safetensors *.index.json *.zip);;"
               "All files (*)")


class MainWindow(WindowBuild, QMainWindow):
    """The window: views, actions, menus; the presenters (``*_flows``) hold the conversations.

    Parameters
    ----------
    controller
        The open document and the selection (a new ``Controller`` by default).
    prompts
        Every question the window asks (``Prompts(self)``, the real dialogs, by default); tests
        pass ``tests.helpers.prompts.FakePrompts`` with scripted answers.
    """

    def __init__(self, controller: Controller | None = None, parent=None,
                 prompts: Prompts | None = None):
        super().__init__(parent)
        share_the_gil()  # workers run Python beside the GUI thread: it gets its turn sooner
        self.setObjectName("mainWindow")
        self.controller = controller or Controller(self)
        self.undo_stack = self.controller.undo_stack
        self._prompts = prompts if prompts is not None else Prompts(self)
        if self._prompts.parent is None:  # made before the window: its boxes belong here
            self._prompts.parent = self
        self.error_box: QMessageBox | None = None
        self._close_pending = False  # closing waits for the edit running on a worker
        self.last_unsafe: tuple[str, list[str]] | None = None  # hook for a "trust this file" flow
        self.setWindowIcon(QIcon(os.path.join(RESOURCES, "paramedit.svg")))
        self._build_views()
        self._build_actions()
        # The presenters get what they use: the views, the controller, the prompts, the status
        # sink; each other only where one needs another's answer.
        views = Views(self, self.tree_panel, self.tensor_view, self.stats_panel)
        deps = dict(controller=self.controller, prompts=self.prompts, status=self.show_status)
        self.open_flows = OpenFlows(views, **deps)
        self.edit_flows = EditFlows(views, **deps)
        self.save_flows = SaveFlows(views, edit_flows=self.edit_flows, **deps)
        self.edit_flows.saving = lambda: self.save_flows.is_saving
        self.edit_flows.extract = self.save_flows.extract
        self.file_watch = FileWatch(views, saving=self.edit_flows.saving, **deps)
        # after OpenFlows: its marks survive the reset
        self.verify_flows = VerifyFlows(views, **deps)
        self._document: Document | None = None  # whose change announcements rebuild the tree
        self._build_menus()
        self._build_status_bar()
        self._connect()
        # after _connect: its views follow the window's
        self.compare_flows = CompareFlows(views, edit_flows=self.edit_flows, **deps)
        self.actionCompare = self.compare_flows.actionCompare
        self.edit_flows.reference = lambda: (self.compare_flows.reference,
                                             self.compare_flows.reference_path)
        # gradients, registration, ties, train/eval
        self.param_flows = ParamFlows(views, edit_flows=self.edit_flows, **deps)
        # scalar entries and safetensors __metadata__
        self.entry_flows = EntryFlows(views, edit_flows=self.edit_flows, **deps)
        self.edit_flows.menu_parts += [lambda menu, _node: self.param_flows.add_to_menu(menu),
                                       self.entry_flows.add_to_menu]
        self.help_flows = HelpFlows(views)  # Help menu, Ctrl+F, Redo on Ctrl+Shift+Z and Ctrl+Y
        self.setAcceptDrops(True)
        self.drop_overlay = DropOverlay(self)  # shown while an openable file is dragged over
        self._route_child_drops()
        self._chain_tab_order()
        self.resize(1400, 900)
        self.update_title()

    # -- construction (the widgets, docks, actions and menus: window_build.py) -----------------
    def _connect(self) -> None:
        c = self.controller
        c.documentChanged.connect(self._on_document_changed)
        c.loadFailed.connect(self._on_load_failed)
        c.unsafeFile.connect(self._on_unsafe_file)
        c.busy.connect(lambda busy: self.set_busy(busy, self.controller.cancel_load))
        c.progress.connect(lambda done, total: show_progress(self.progress_bar, done, total))
        c.status.connect(lambda text: self.statusBar().showMessage(text, 8000))
        c.statusDone.connect(self._status_done)
        c.tensorSelected.connect(self._show_tensor)
        c.moduleSelected.connect(self._show_module)
        c.selectionCleared.connect(self._clear_views)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        self.tree_view.selectionModel().currentRowChanged.connect(self._tree_current_changed)
        self.stats_panel.gotoRequested.connect(self.tensor_view.goto_index)
        self.stats_panel.statsReady.connect(self._stats_ready)
        self.tensor_view.message.connect(lambda text: self.statusBar().showMessage(text, 5000))

    # -- opening ------------------------------------------------------------------------------
    def open_path(self, path, model: str | None = None, model_args: str | None = None,
                  trust: bool = False) -> bool:
        """Load ``path`` in the background (the tree fills when done). False if the user kept
        the current unsaved document."""
        if not self.confirm_discard():
            return False
        self.controller.load(os.fspath(path), model=model, model_args=model_args, trust=trust)
        return True

    def open_document(self, doc: Document, title: str | None = None) -> bool:
        """Show an already-built document (the demo model, a live model)."""
        if not self.confirm_discard():
            return False
        self.controller.set_document(doc, title)
        return True

    @property
    def prompts(self) -> Prompts:
        """Where every question goes; setting it hands the new one to every presenter."""
        return self._prompts

    @prompts.setter
    def prompts(self, prompts: Prompts) -> None:
        if prompts.parent is None:
            prompts.parent = self
        self._prompts = prompts
        for presenter in (self.open_flows, self.edit_flows, self.save_flows, self.file_watch,
                          self.verify_flows, self.compare_flows, self.param_flows,
                          self.entry_flows):
            presenter.prompts = prompts

    def show_status(self, text: str, timeout: int = 0) -> None:
        """The presenters' status sink: a transient message in the status bar."""
        self.statusBar().showMessage(text, timeout)

    def dialog_folder(self) -> str:
        """Where the Open, Save As and Compare dialogs start: the folder the last one ended in."""
        return last_folder(self.controller.recent.last_folder())

    def choose_file(self) -> None:
        path = self.prompts.open_file("Open checkpoint", self.dialog_folder(), OPEN_FILTER)
        if path:
            remember_folder(path)
            self.open_path(path)

    def compare_with(self, path) -> None:
        """Open ``path`` as the reference beside the document and compare (CONTRACT.md)."""
        self.compare_flows.compare_with(path)

    def choose_folder(self) -> None:
        path = self.prompts.open_folder("Open sharded checkpoint folder", self.dialog_folder())
        if path:
            remember_folder(path)
            self.open_path(path)

    def select_name(self, full_name: str) -> bool:
        """Make the tensor or module ``full_name`` current in the tree (expanding to it)."""
        return self.tree_panel.select(full_name)

    # -- unsaved changes ----------------------------------------------------------------------
    def confirm_discard(self) -> bool:
        """True when the current document may be replaced or closed."""
        if not self.controller.is_modified:
            return True
        doc = self.controller.document
        # A live model: the edits are in its tensors already; only a file copy is missing.
        live = doc is not None and doc.module is not None and not doc.path
        choice = self.prompts.save_changes(self.controller.title, live)
        if choice == SAVE:
            return self.save_flows.save(wait=True) and not self.controller.is_modified
        return choice == DISCARD

    def _status_done(self, text: str) -> None:
        """Clear a transient message that no longer holds, but never another one shown since."""
        if self.statusBar().currentMessage() == text:
            self.statusBar().clearMessage()

    def closeEvent(self, event) -> None:
        if self.save_flows.is_saving:
            self.statusBar().showMessage("Wait for the save to finish (or cancel it) before closing")
            event.ignore()
            return
        if self.controller.edits.busy:
            # A step runs on a worker: closing now would drop it unrecorded. Close once it is
            # recorded (the unsaved-changes question then comes as usual).
            if not self._close_pending:
                self._close_pending = True
                self.controller.edits.busyChanged.connect(self._close_after_edit)
            event.ignore()
            self.statusBar().showMessage("Closing once the running edit has finished …")
            return
        if self.confirm_discard():
            self.controller.cancel_load()
            self.verify_flows.cancel()
            self.undo_stack.clear()  # before deletion, while the slots it signals still live
            save_layout(self)
            event.accept()
        else:
            event.ignore()

    def _close_after_edit(self, busy: bool) -> None:
        if busy or not self._close_pending:
            return
        self._close_pending = False
        self.controller.edits.busyChanged.disconnect(self._close_after_edit)
        # busyChanged(False) comes before the step is recorded: close after that, not now
        QTimer.singleShot(0, self.close)

    # -- drag and drop ------------------------------------------------------------------------
    @staticmethod
    def dropped_path(mime) -> str | None:
        if not mime.hasUrls():
            return None
        urls = mime.urls()
        if not urls or not all(u.isLocalFile() for u in urls):
            return None
        return openable_path([u.toLocalFile() for u in urls])

    def dragEnterEvent(self, event) -> None:
        path = self.dropped_path(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            if not self.drop_overlay.isVisible():
                self.drop_overlay.show_for(path)
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dragLeaveEvent(self, event) -> None:
        self.drop_overlay.hide()
        super().dragLeaveEvent(event)

    def _chain_tab_order(self) -> None:
        """Tab follows the layout: filter, its NaN/Inf button, tree, the grid's controls, the grid, the statistics
        (Qt's default order is the order the widgets were made in: grid, tree, statistics)."""
        view = self.tensor_view
        view.grid.setTabKeyNavigation(False)  # Tab leaves the grid; arrows move between cells
        stats = [w for w in self.stats_panel.findChildren(QWidget) if w.focusPolicy() & Qt.TabFocus]
        view.tab_next = stats[0] if stats else None
        QWidget.setTabOrder(self.tree_panel.filter, self.tree_panel.nonfinite_button)
        QWidget.setTabOrder(self.tree_panel.nonfinite_button, self.tree_view)
        QWidget.setTabOrder(self.tree_view, view.precision_spin)
        view._chain_tab_order()

    def _route_child_drops(self) -> None:
        """Children that accept drops themselves (pyqtgraph's QGraphicsView does) would swallow a
        file dragged over them; the window filters their drag events so a file opens anywhere."""
        for widget in self.findChildren(QWidget):
            if widget.acceptDrops():
                widget.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        kind = event.type()
        if kind == QEvent.DragLeave:
            self.drop_overlay.hide()
        elif kind in (QEvent.DragEnter, QEvent.DragMove, QEvent.Drop) \
                and self.dropped_path(event.mimeData()) is not None:
            if kind == QEvent.Drop:
                self.dropEvent(event)
            else:
                self.dragEnterEvent(event)
            return True
        return super().eventFilter(watched, event)

    def dropEvent(self, event) -> None:
        self.drop_overlay.hide()
        path = self.dropped_path(event.mimeData())
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_path(path)

    # -- reactions to the controller ----------------------------------------------------------
    def _on_document_changed(self, doc: Document) -> None:
        if self._document is not None:
            self._document.events.disconnect(self._on_structure_changed)
        self._document = doc
        doc.events.connect(self._on_structure_changed)
        self.summary_label.setText(document_summary(doc))
        self.update_title()
        first = next((n.full_name for n in doc.root.walk() if n.entry is not None), None)
        if not self.controller.owns_document:
            self.tree_panel.show_root(doc.root)
            return self._fitted(doc, first, later=False)
        # read from a file: the tree paints, its columns are fitted, the first tensor shows, each
        # on its own turn; a weak reference: replaced, the document is freed on a worker
        self.tree_panel.show_root(doc.root, then=lambda ref=weakref.ref(doc): self._fitted(ref(), first, True))

    def _fitted(self, doc: Document | None, first: str | None, later: bool) -> None:
        if doc is self.controller.document:  # the tree's columns are fitted: the docks follow
            self.fit_docks()
            if later and first is not None:  # not 0 ms: Qt queues that as a call run at once
                shown = weakref.ref(doc)
                QTimer.singleShot(1, self, lambda: self._select_first(shown(), first))
            else:
                self._select_first(doc, first)

    def _select_first(self, doc: Document | None, name: str | None) -> None:
        """The first tensor of a document just opened, unless something else was chosen since;
        none after all: the statistics panel's place, kept by ``_clear_views``, gets its hint."""
        if doc is self.controller.document and not self.tree_view.currentIndex().isValid() \
                and not (name and self.select_name(name)):
            self.stats_panel.clear()

    def _on_structure_changed(self, doc: Document) -> None:
        """The document announced a structural change (once per batch): rebuild the tree once."""
        if doc is self.controller.document:
            self.tree_panel.show_root(doc.root, fit=False)

    def _on_load_failed(self, message: str) -> None:
        if self.error_box is not None:
            self.error_box.close()
        if self.last_unsafe is not None:  # not broken, only untrusted: offer to trust it
            path, globals_ = self.last_unsafe
            self.last_unsafe = None
            self.open_flows.offer_trust(path, globals_)
            return
        box = self.prompts.error("Cannot open", message, "loadErrorBox")
        box.finished.connect(lambda _=0: setattr(self, "error_box", None))
        self.error_box = box

    def _on_unsafe_file(self, path: str, globals_: list) -> None:
        self.last_unsafe = (path, list(globals_))

    def set_busy(self, busy: bool, cancel=None) -> None:
        """Show (or hide) the status bar's progress bar, indeterminate until the first report,
        and, when ``cancel`` is given, a Cancel button that calls it."""
        self._cancel = cancel if busy and cancel is not None else self.controller.cancel_load
        self.progress_bar.setVisible(busy)
        self.cancel_button.setVisible(busy and cancel is not None)
        if busy:
            self.progress_bar.setRange(0, 0)  # indeterminate until the first progress report

    def _tree_current_changed(self, current: QModelIndex, _previous=None) -> None:
        self.controller.select_node(current.data(NodeRole) if current.isValid() else None)

    def _show_tensor(self, name: str, tensor) -> None:
        self.tensor_view.show_tensor(name, tensor)
        # complex: the panel picks abs/real/imag; later: the grid paints first, on its own
        self.stats_panel.show_tensors_later(name, [tensor])

    def _stats_ready(self, stats) -> None:
        """Exact statistics of the shown tensor give the heatmap its colour scale."""
        if self.stats_panel.label == self.tensor_view.name and stats.min is not None \
                and stats.max is not None:
            self.tensor_view.set_heat_scale(max(abs(stats.min), abs(stats.max)))

    def _show_module(self, name: str, tensors: list) -> None:
        self.tensor_view.clear()
        self.stats_panel.show_tensors_later(name or self.controller.title, tensors)

    def _clear_views(self) -> None:
        self.tensor_view.clear()  # a document coming in shows its first tensor next: no hint meanwhile
        self.stats_panel.clear(keep_view=self.controller.document is not self._document)

    def _clean_changed(self, clean: bool) -> None:
        if shiboken6.isValid(self):  # the stack reports "clean" while a deleted window is torn down
            self.setWindowModified(not clean)

    def update_title(self) -> None:
        """The title: the document's name, with the unsaved-changes marker."""
        title = self.controller.title
        self.setWindowTitle(f"{title}[*] — paramedit" if title else "paramedit[*]")
        self.setWindowModified(self.controller.is_modified)

    def update_summary(self) -> None:
        """The status bar's summary of the document (tensors, parameters, bytes)."""
        self.summary_label.setText(self.controller.summary())
