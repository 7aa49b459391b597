"""A DCP rank file rewritten while the window shows the folder (issue 15): the watcher sees it,
the window asks before assembling a tensor from it, and its own Ctrl+S is not a change."""
from __future__ import annotations

import os

import torch

from app.qt.file_watch import KEEP
from tests.dcp_make import write_chunked
from tests.helpers.qt import wait_for_document


def test_a_rewritten_rank_file_is_asked_about_before_a_read(qtbot, window, tmp_path):
    tensors = {"a": torch.arange(8.0), "b": torch.arange(8.0) * 2}
    folder = write_chunked(tmp_path / "ck", tensors, ranks=2)
    window.open_path(folder)
    doc = wait_for_document(qtbot, window, folder)
    rank1 = os.path.join(folder, "__1_0.distcp")
    assert rank1 in window.file_watch.watcher.files()
    window.select_name("a")
    qtbot.waitUntil(lambda: window.tensor_view.name == "a")
    assert window.save_flows.save(wait=True)  # Ctrl+S over itself: not news
    assert doc.files_changed() == []
    rank0 = os.path.join(folder, "__0_0.distcp")  # the save wrote one rank's file
    qtbot.waitUntil(lambda: rank0 in window.file_watch.watcher.files())
    asked = []
    window.prompts.answer(file_changed=lambda paths, what: asked.append((paths, what)) or KEEP)
    with open(rank0, "r+b") as f:  # the training job rewrites the rank file in place
        f.truncate(10)
    qtbot.waitUntil(lambda: "changed on disk" in window.statusBar().currentMessage(), timeout=5000)
    window.select_name("b")  # never read (the save read it without keeping it)
    assert asked == [([rank0], "read")]
    assert doc.unavailable == {"b"}
    assert torch.equal(doc.tensor("a"), tensors["a"])
