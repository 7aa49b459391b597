"""The main window's construction: its views and docks, actions, menus and status bar (a mixin
of ``main_window.MainWindow``, which wires them to the controller and the presenters)."""
from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QProgressBar, QPushButton, QWidget

from .views.stats_panel import StatsPanel
from .views.tensor_view import TensorView
from .views.tree_panel import ModuleTreePanel


class WindowBuild:
    """Builds the window's widgets, docks, actions and menus; mixed into ``MainWindow``."""

    def _build_views(self) -> None:
        self.tensor_view = TensorView(self)
        self.setCentralWidget(self.tensor_view)
        self.tree_panel = ModuleTreePanel(self)
        self.tree_view = self.tree_panel.view
        self.tree_model = self.tree_panel.model
        self.stats_panel = StatsPanel(self)
        self.tree_dock = self._dock("Modules", "treeDock", self.tree_panel, Qt.LeftDockWidgetArea)
        self.stats_dock = self._dock("Statistics", "statsDock", self.stats_panel,
                                     Qt.RightDockWidgetArea)
        self.resizeDocks([self.tree_dock, self.stats_dock], [560, 380], Qt.Horizontal)

    def fit_docks(self) -> None:
        """The tree as wide as its columns, leaving the grid its minimum and the stats a usable
        width; whatever is left goes to the grid."""
        stats = max(self.stats_panel.minimumSizeHint().width(), 250)
        room = self.width() - self.tensor_view.minimumSizeHint().width() - stats - 8
        # the grid is the window's point: the tree takes at most 38% (its columns give way)
        tree = max(300, min(self.tree_panel.preferred_width(), room, int(0.38 * self.width())))
        self.resizeDocks([self.tree_dock, self.stats_dock], [tree, stats], Qt.Horizontal)

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self, objectName=name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                         | QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, name: str, text: str, shortcut=None, slot=None, enabled=True) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if slot is not None:
            action.triggered.connect(slot)
        action.setEnabled(enabled)
        return action

    def _build_actions(self) -> None:
        self.actionOpen = self._action("actionOpen", "&Open…", QKeySequence.Open, self.choose_file)
        self.actionOpenFolder = self._action("actionOpenFolder", "Open &Folder…", None,
                                             self.choose_folder)
        # Save / Edit / Initialize / Export are wired by SaveFlows and EditFlows.
        self.actionSave = self._action("actionSave", "&Save", QKeySequence.Save, enabled=False)
        self.actionSaveAs = self._action("actionSaveAs", "Save &As…", QKeySequence("Ctrl+Shift+S"),
                                         enabled=False)
        self.actionExportRecipe = self._action("actionExportRecipe", "Export &Recipe…",
                                               enabled=False)
        self.actionQuit = self._action("actionQuit", "&Quit", QKeySequence.Quit, self.close)
        self.actionUndo = self.undo_stack.createUndoAction(self, "&Undo")
        self.actionUndo.setObjectName("actionUndo")
        self.actionUndo.setShortcut(QKeySequence.Undo)
        self.actionRedo = self.undo_stack.createRedoAction(self, "&Redo")
        self.actionRedo.setObjectName("actionRedo")
        self.actionRedo.setShortcut(QKeySequence.Redo)
        self.actionEdit = self._action("actionEdit", "&Edit Values…", QKeySequence("Ctrl+E"),
                                       enabled=False)
        self.actionInitialize = self._action("actionInitialize", "&Initialize…",
                                             QKeySequence("Ctrl+I"), enabled=False)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addActions([self.actionOpen, self.actionOpenFolder,
                              self.open_flows.actionOpenWithModel])
        file_menu.addAction(self.verify_flows.actionVerify)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.setObjectName("recentMenu")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addActions([self.actionSave, self.actionSaveAs, self.actionExportRecipe])
        file_menu.addSeparator()
        file_menu.addAction(self.actionQuit)
        edit_menu = self.menuBar().addMenu("&Edit")
        edit_menu.addActions([self.actionUndo, self.actionRedo])
        edit_menu.addSeparator()
        edit_menu.addActions([self.actionEdit, self.actionInitialize])
        self.edit_flows.add_to_menu(edit_menu)
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addActions([self.tree_dock.toggleViewAction(), self.stats_dock.toggleViewAction()])

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.summary_label = QLabel("Nothing open", self, objectName="documentSummary")
        self.progress_bar = QProgressBar(self, objectName="loadProgress")
        self.progress_bar.setMaximumWidth(180)
        self.progress_bar.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel", self, objectName="cancelLoad")
        self.cancel_button.clicked.connect(lambda: self._cancel())
        bar.addPermanentWidget(self.summary_label)
        bar.addPermanentWidget(self.progress_bar)
        bar.addPermanentWidget(self.cancel_button)
        self.set_busy(False)

    def _fill_recent_menu(self) -> None:
        """File > Open Recent, filled as it opens."""
        self.recent_menu.clear()
        recent = self.controller.recent
        for path in recent.paths():
            action = self.recent_menu.addAction(path)
            action.setEnabled(os.path.exists(path))
            action.triggered.connect(lambda _=False, p=path: self.open_path(p))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear", recent.clear)
