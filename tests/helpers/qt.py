"""Driving the window in GUI tests: real drag-and-drop events, waiting for a load, tree rows."""
from __future__ import annotations

import os

from PySide6.QtCore import QMimeData, QModelIndex, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication


def mime_for(paths=(), text=None) -> QMimeData:
    mime = QMimeData()
    if paths:
        mime.setUrls([QUrl.fromLocalFile(os.fspath(p)) for p in paths])
    if text is not None:
        mime.setText(text)
    return mime


def drag_enter(widget, mime: QMimeData) -> bool:
    """Send a real drag-enter event; True when the widget accepts the drag."""
    event = QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(widget, event)
    return event.isAccepted()


def drop(widget, mime: QMimeData) -> bool:
    """A drag-enter followed by a drop, as Qt delivers them; True when the drop was taken."""
    if not drag_enter(widget, mime):
        return False
    event = QDropEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(widget, event)
    return event.isAccepted()


def wait_for_document(qtbot, window, path, timeout=10_000):
    def loaded():
        doc = window.controller.document
        assert doc is not None and doc.path == os.fspath(path)
        assert window.tree_model.rowCount() > 0
    qtbot.waitUntil(loaded, timeout=timeout)
    return window.controller.document


def tree_rows(model, parent=None):
    """(full name, displayed name) of every row below ``parent``, depth first."""
    parent = parent or QModelIndex()
    out = []
    for r in range(model.rowCount(parent)):
        index = model.index(r, 0, parent)
        out.append((index.data(Qt.UserRole), index.data()))
        out += tree_rows(model, index)
    return out
