"""Drag and drop with real QDragEnterEvent / QDropEvent objects sent through QApplication."""
from __future__ import annotations

import os

import torch
from PySide6.QtCore import Qt, QUrl
from PySide6.QtWidgets import QMessageBox

from app.qt import main_window as mw
from app.qt.controller import openable_path
from tests.helpers.qt import drag_enter, drop, mime_for, tree_rows, wait_for_document
from tests.qt.test_main_window import Nothing


def test_dropping_a_checkpoint_opens_it(qtbot, demo_window, tied_file):
    path, sd = tied_file
    assert drop(demo_window, mime_for([path]))
    doc = wait_for_document(qtbot, demo_window, path)
    assert doc.names() == list(sd)
    names = {full for full, _ in tree_rows(demo_window.tree_model)}
    assert set(sd) <= names and "rgnet" not in names
    assert torch.equal(doc.tensor("embed.weight"), sd["embed.weight"])


def test_text_only_drag_is_refused(demo_window):
    assert not drag_enter(demo_window, mime_for(text="/some/path.pt"))


def test_two_unrelated_files_are_refused(demo_window, tied_file, other_file):
    assert not drag_enter(demo_window, mime_for([tied_file[0], other_file[0]]))


def test_missing_file_and_remote_url_are_refused(demo_window, tmp_path):
    assert not drag_enter(demo_window, mime_for([tmp_path / "missing.pt"]))
    remote = mime_for()
    remote.setUrls([QUrl("https://example.com/model.safetensors")])
    assert not drag_enter(demo_window, remote)


def test_shards_of_one_checkpoint_open_their_folder(qtbot, demo_window, sharded_folder):
    folder, tensors = sharded_folder
    shards = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".safetensors"))
    assert len(shards) == 3
    assert openable_path(shards) == folder
    assert drop(demo_window, mime_for(shards))
    doc = wait_for_document(qtbot, demo_window, folder)
    assert doc.format == "safetensors-sharded" and doc.names() == list(tensors)


def test_a_folder_drop_opens_the_folder(qtbot, window, sharded_folder):
    folder, tensors = sharded_folder
    assert drop(window, mime_for([folder]))
    assert set(wait_for_document(qtbot, window, folder).names()) == set(tensors)


def test_shards_mixed_with_a_stranger_are_refused(demo_window, sharded_folder, tmp_path):
    folder, _ = sharded_folder
    stranger = os.path.join(folder, "notes.pt")
    torch.save({"x": torch.ones(1)}, stranger)
    shard = next(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".safetensors"))
    assert not drag_enter(demo_window, mime_for([shard, stranger]))


def test_corrupt_drop_keeps_the_open_document(qtbot, window, tied_file, corrupt_file):
    path, sd = tied_file
    window.open_path(path)
    doc = wait_for_document(qtbot, window, path)
    rows_before = tree_rows(window.tree_model)
    window.select_name("body.0.weight")
    assert drop(window, mime_for([corrupt_file]))
    qtbot.waitUntil(lambda: window.error_box is not None and window.error_box.isVisible(),
                    timeout=10_000)
    box = window.findChild(QMessageBox, "loadErrorBox")
    assert "corrupt.pt" in box.text()
    assert "corrupt.pt" in window.statusBar().currentMessage()
    assert window.controller.document is doc
    assert tree_rows(window.tree_model) == rows_before
    assert window.tree_view.currentIndex().data(Qt.UserRole) == "body.0.weight"
    assert torch.equal(doc.tensor("body.0.weight"), sd["body.0.weight"])
    assert "tied.pt" in window.windowTitle()
    box.close()
    qtbot.waitUntil(lambda: window.error_box is None)


def test_drop_on_unsaved_edits_can_be_cancelled(qtbot, demo_window, tied_file, monkeypatch):
    doc = demo_window.controller.document
    demo_window.controller.undo_stack.push(Nothing("edit"))
    demo_window.prompts.answer(save_changes=mw.CANCEL)
    drop(demo_window, mime_for([tied_file[0]]))
    qtbot.wait(100)
    assert demo_window.controller.document is doc and not demo_window.controller.is_loading


def test_a_file_dropped_on_the_histogram_opens_too(qtbot, demo_window, tied_file):
    """pyqtgraph's view accepts drops itself; the window must still get files dropped there."""
    import pyqtgraph as pg
    plot = demo_window.findChild(pg.PlotWidget, "histogramPlot")
    assert drop(plot.viewport(), mime_for([tied_file[0]]))
    wait_for_document(qtbot, demo_window, tied_file[0])
    assert not drag_enter(plot.viewport(), mime_for(text="just text"))
