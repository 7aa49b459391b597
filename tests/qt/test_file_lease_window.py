"""The window leases the files it shows: a training loop's ``torch.save`` to the open path waits
for the reads in flight, and from the moment it asks, the window reads nothing more of it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from app.core.model import file_lease
from app.core.model.document import Document
from app.qt.file_watch import KEEP
from tests.helpers.qt import wait_for_document

pytestmark = pytest.mark.skipif(not file_lease.available(), reason="Linux file leases")


@pytest.fixture
def opened(qtbot, window, tmp_path):
    path = str(tmp_path / "ckpt.pt")
    torch.save({f"layer{i}.weight": torch.randn(32, 32) for i in range(3)}, path)
    window.open_path(path)
    doc = wait_for_document(qtbot, window, path)
    qtbot.waitUntil(lambda: window.tensor_view.name == "layer0.weight")
    return window, doc, os.path.abspath(path)


def test_the_open_file_is_leased_and_given_up_with_the_document(qtbot, window, opened):
    window, doc, path = opened
    assert path in file_lease.held()
    window.open_document(Document.from_object({"w": torch.ones(2)}), "other")
    qtbot.waitUntil(lambda: window.controller.document is not doc)
    assert path not in file_lease.held()


def test_another_process_rewriting_the_file_is_let_through_and_nothing_more_is_read(
        qtbot, opened):
    window, doc, path = opened
    asked = []
    window.prompts.answer(file_changed=lambda paths, what: asked.append(what) or KEEP)
    writer = subprocess.run([sys.executable, "-c", "import sys, torch; "
                             "torch.save({'x': torch.zeros(3)}, sys.argv[1])", path], timeout=60)
    assert writer.returncode == 0  # nothing was reading: the lease was given up at once
    qtbot.waitUntil(lambda: doc.files.breaking == {path})  # (before the truncation: core tests)
    window.select_name("layer2.weight")  # never read: asked about, then unavailable
    assert asked == ["read"]
    assert "layer2.weight" in doc.unavailable
    assert path not in file_lease.held()  # working from what was read: no file to lease


def test_the_lease_keeper_is_started_by_the_loading_worker(qtbot, window, tmp_path):
    """Its process start (~40 ms) is not the GUI thread's to wait for."""
    with file_lease._lock:
        if file_lease._child is not None:  # a keeper left by an earlier test: a fresh start
            file_lease._child.kill()
            file_lease._child.wait()
    path = str(tmp_path / "ckpt.pt")
    torch.save({"w": torch.ones(3)}, path)
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    qtbot.waitUntil(lambda: os.path.abspath(path) in file_lease.held())
    assert file_lease.started_by not in (None, "MainThread")
