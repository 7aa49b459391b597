"""Fixtures for GUI tests: real windows, real checkpoint files, real drag-and-drop events."""
from __future__ import annotations

import os

import pytest
import torch
from PySide6.QtCore import QMimeData, QPoint, QSettings, Qt, QThreadPool, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from tests.checkpoints import save_malicious, save_sharded_safetensors, tied_lm


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory):
    """QSettings (recent files) go to a temporary folder, never the user's."""
    folder = str(tmp_path_factory.mktemp("settings"))
    for fmt in (QSettings.NativeFormat, QSettings.IniFormat):
        QSettings.setPath(fmt, QSettings.UserScope, folder)
    yield


@pytest.fixture
def window(qtbot):
    from app.qt.main_window import MainWindow
    win = MainWindow()
    # qtbot closes its widgets before fixtures finish: a test that ends with unsaved edits must
    # not meet a modal Save / Discard / Cancel box. Tests of the prompt set their own answer.
    win.ask_save_changes = lambda: "discard"
    qtbot.addWidget(win)
    yield win
    win.controller.undo_stack.setClean()  # no save prompt while qtbot closes it
    win.controller.cancel_load()
    QThreadPool.globalInstance().waitForDone(10_000)


@pytest.fixture
def demo_window(window):
    from app.qt.launch import demo_document
    window.open_document(demo_document(), "demo model")
    return window


@pytest.fixture
def tied_file(tmp_path):
    """A torch state_dict with tied embeddings; returns (path, state_dict)."""
    sd = tied_lm().state_dict()
    path = tmp_path / "tied.pt"
    torch.save(sd, path)
    return str(path), sd


@pytest.fixture
def other_file(tmp_path):
    g = torch.Generator().manual_seed(3)
    sd = {"enc.0.weight": torch.randn(6, 5, generator=g), "enc.0.bias": torch.zeros(6),
          "head.weight": torch.randn(2, 6, generator=g)}
    path = tmp_path / "other.pt"
    torch.save(sd, path)
    return str(path), sd


@pytest.fixture
def corrupt_file(tmp_path, tied_file):
    data = open(tied_file[0], "rb").read()
    path = tmp_path / "corrupt.pt"
    path.write_bytes(data[: len(data) // 2])
    return str(path)


@pytest.fixture
def unsafe_file(tmp_path):
    path, marker = tmp_path / "unsafe.pt", tmp_path / "marker"
    save_malicious(str(path), str(marker))
    return str(path), str(marker)


@pytest.fixture
def sharded_folder(tmp_path):
    g = torch.Generator().manual_seed(5)
    tensors = {f"layer.{i}.weight": torch.randn(3, 3, generator=g) for i in range(5)}
    index = save_sharded_safetensors(tensors, str(tmp_path / "sharded"), per_shard=2)
    return os.path.dirname(index), tensors


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
    from PySide6.QtCore import QModelIndex
    parent = parent or QModelIndex()
    out = []
    for r in range(model.rowCount(parent)):
        index = model.index(r, 0, parent)
        out.append((index.data(Qt.UserRole), index.data()))
        out += tree_rows(model, index)
    return out
