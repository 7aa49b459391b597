"""Help menu and the desktop shortcuts users expect: About, Keyboard Shortcuts, Ctrl+F, Ctrl+Y.

About and the shortcut list are non-modal boxes opened with ``open()`` (tests and users keep the
window alive behind them). The shortcut list is read from the window's own actions, so it never
goes stale.
"""
from __future__ import annotations

import os
import platform

import PySide6
import torch
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QMessageBox

from .. import __version__

#: redo answers the platform's key and both common ones (Ctrl+Shift+Z and Ctrl+Y)
REDO_KEYS = (QKeySequence.StandardKey.Redo, "Ctrl+Shift+Z", "Ctrl+Y")


def about_text() -> str:
    docs = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "docs")
    where = docs if os.path.isdir(docs) else "the docs/ folder of the source distribution"
    return (f"<b>paramedit {__version__}</b><br>A desktop editor for PyTorch model parameters."
            f"<br><br>torch {torch.__version__} · PySide6 {PySide6.__version__} · "
            f"Qt {PySide6.QtCore.qVersion()} · Python {platform.python_version()}"
            f"<br>Licence: MIT<br><br>Documentation: {where}")


def shortcut_lines(actions) -> list[tuple[str, str]]:
    """(keys, what) for every action with a shortcut, in menu order, without duplicates."""
    out, seen = [], set()
    for action in actions:
        keys = " or ".join(k.toString(QKeySequence.NativeText) for k in action.shortcuts()
                           if not k.isEmpty())
        text = action.text().replace("&", "").rstrip("…").rstrip(".")
        if keys and (keys, text) not in seen:
            seen.add((keys, text))
            out.append((keys, text))
    return out


class HelpFlows(QObject):
    """The Help menu, Ctrl+F (the tree's filter) and the Redo shortcuts.

    Parameters
    ----------
    views
        The window's views (``window_views.Views``): the tree's filter; the window's menu bar,
        actions, and the parent of its boxes.
    """

    def __init__(self, views):
        super().__init__(views.window)
        self.views = views
        self.window = views.window
        self.box: QMessageBox | None = None
        w = self.window
        redo = []
        for key in REDO_KEYS:
            seq = QKeySequence(key)
            if not seq.isEmpty() and seq not in redo:
                redo.append(seq)
        w.actionRedo.setShortcuts(redo)
        if w.actionQuit.shortcut().isEmpty():  # the platform names no Quit key
            w.actionQuit.setShortcut(QKeySequence("Ctrl+Q"))
        self.find = QShortcut(QKeySequence.StandardKey.Find, w, self.focus_filter)
        self.find.setContext(Qt.WindowShortcut)
        self.actionAbout = QAction("&About paramedit", w, objectName="actionAbout")
        self.actionAbout.triggered.connect(self.about)
        self.actionShortcuts = QAction("&Keyboard Shortcuts", w, objectName="actionShortcuts")
        self.actionShortcuts.triggered.connect(self.shortcuts)
        menu = w.menuBar().addMenu("&Help")
        menu.addActions([self.actionShortcuts, self.actionAbout])

    def focus_filter(self) -> None:
        editor = self.views.tree.filter
        editor.setFocus(Qt.ShortcutFocusReason)
        editor.selectAll()

    def _show(self, title: str, text: str, name: str) -> QMessageBox:
        if self.box is not None:
            self.box.close()
        self.box = QMessageBox(QMessageBox.Information, title, text, QMessageBox.Close, self.window)
        self.box.setObjectName(name)
        self.box.setTextFormat(Qt.RichText)
        self.box.open()
        return self.box

    def about(self) -> QMessageBox:
        return self._show("About paramedit", about_text(), "aboutBox")

    def shortcuts(self) -> QMessageBox:
        lines = shortcut_lines(self._menu_actions())
        lines.append((self.find.key().toString(QKeySequence.NativeText), "Filter names"))
        rows = "".join(f"<tr><td><b>{keys}</b>&nbsp;&nbsp;</td><td>{what}</td></tr>"
                       for keys, what in lines)
        return self._show("Keyboard shortcuts", f"<table>{rows}</table>", "shortcutsBox")

    def _menu_actions(self):
        out = []
        for menu_action in self.window.menuBar().actions():
            menu = menu_action.menu()
            if menu is not None:
                out.extend(a for a in menu.actions() if not a.isSeparator())
        return out
