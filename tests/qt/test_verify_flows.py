"""The background checksum check of the window (issue 9): after opening, and File > Verify
Checksums; a damaged record is named by its tensor and marked in the tree; a new open or closing
the window cancels a running check."""
from __future__ import annotations

import threading

import pytest
import torch
from PySide6.QtWidgets import QMessageBox

from app.qt.workers import Task
from tests.core.test_verify_names import flip_record
from tests.helpers.qt import wait_for_document


@pytest.fixture
def damaged_file(tmp_path):
    g = torch.Generator().manual_seed(11)
    sd = {"enc.weight": torch.randn(8, 4, generator=g), "enc.bias": torch.randn(8, generator=g),
          "head.weight": torch.randn(3, 8, generator=g)}
    path = str(tmp_path / "damaged.pt")
    torch.save(sd, path)
    member = flip_record(path, "head.weight", sd)
    return path, member


class BlockedPool:
    """Occupies the verify pool's only thread, so a check waits queued until ``release()``."""

    def __init__(self, pool):
        self.event, started = threading.Event(), threading.Semaphore(0)

        def block(_progress, _cancelled):
            started.release()
            self.event.wait(30)
        self.task = Task(block).start(pool)
        assert started.acquire(timeout=30)

    def release(self):
        self.event.set()


def verify_box(window):
    return window.findChild(QMessageBox, "verifyBox")


def test_damaged_record_is_named_and_marked(qtbot, window, damaged_file):
    path, member = damaged_file
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    flows = window.verify_flows
    qtbot.waitUntil(lambda: flows.last is not None and not flows.is_checking, timeout=10_000)
    bad, names = flows.last
    assert bad == [f"{member}: CRC mismatch"]
    assert names == {"head.weight": bad[0]}
    box = verify_box(window)
    assert box is not None and box.isVisible() and not box.isModal()
    assert "head.weight" in box.text() and "enc.weight" not in box.text()
    assert member in box.detailedText()
    model = window.tree_model
    assert "head.weight" in model.notes and "enc.weight" not in model.notes
    index = model.find("head.weight")
    assert "Damaged on disk" in index.data(3)  # Qt.ToolTipRole
    assert flows.progress_bar.isHidden()


def test_clean_file_gives_no_warning(qtbot, window, other_file):
    path, _sd = other_file
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    flows = window.verify_flows
    qtbot.waitUntil(lambda: flows.last is not None and not flows.is_checking, timeout=10_000)
    assert flows.last == ([], {})
    assert verify_box(window) is None
    assert not window.tree_model.notes
    # and on demand, from the menu
    flows.last = None
    assert flows.actionVerify.isEnabled()
    flows.actionVerify.trigger()
    assert flows.is_checking
    qtbot.waitUntil(lambda: flows.last is not None, timeout=10_000)
    assert flows.last == ([], {}) and verify_box(window) is None
    qtbot.waitUntil(lambda: not flows._running, timeout=5_000)  # finished tasks are let go


def test_menu_action_reports_damage_on_demand(qtbot, window, damaged_file):
    path, member = damaged_file
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    flows = window.verify_flows
    qtbot.waitUntil(lambda: verify_box(window) is not None, timeout=10_000)
    verify_box(window).close()
    qtbot.waitUntil(lambda: verify_box(window) is None, timeout=5_000)
    flows.last = None
    window.verify_flows.actionVerify.trigger()
    qtbot.waitUntil(lambda: verify_box(window) is not None, timeout=10_000)
    assert flows.last[1] == {"head.weight": f"{member}: CRC mismatch"}


def test_opening_another_file_cancels_a_running_check(qtbot, window, damaged_file, other_file):
    path, _member = damaged_file
    flows = window.verify_flows
    blocked = BlockedPool(flows.pool)
    try:
        window.open_path(path)
        wait_for_document(qtbot, window, path)
        first = flows.task
        assert first is not None and flows.is_checking  # (its bar shows once it reads)
        window.open_path(other_file[0])
        wait_for_document(qtbot, window, other_file[0])
        assert first.is_cancelled
        second = flows.task
        assert second is not None and second is not first
    finally:
        blocked.release()
    qtbot.waitUntil(lambda: flows.last is not None and not flows.is_checking, timeout=10_000)
    assert flows.last == ([], {})  # the damaged file's check never reported
    flows.pool.waitForDone(10_000)
    assert verify_box(window) is None and not window.tree_model.notes


def test_stop_button_and_closing_the_window_cancel(qtbot, window, damaged_file):
    path, _member = damaged_file
    flows = window.verify_flows
    blocked = BlockedPool(flows.pool)
    try:
        window.open_path(path)
        wait_for_document(qtbot, window, path)
        first = flows.task
        flows.cancel_button.click()
        assert first.is_cancelled and not flows.is_checking
        assert flows.progress_bar.isHidden()
        second = flows.verify()
        window.close()
        assert second.is_cancelled
    finally:
        blocked.release()
    flows.pool.waitForDone(10_000)
    assert flows.last is None and verify_box(window) is None


def test_formats_without_checksums_have_nothing_to_verify(qtbot, window, sharded_folder):
    folder, _tensors = sharded_folder  # safetensors shards: no CRCs to check
    window.open_path(folder)
    wait_for_document(qtbot, window, folder)
    flows = window.verify_flows
    qtbot.waitUntil(lambda: flows.last is not None and not flows.is_checking, timeout=10_000)
    assert flows.last == ([], {}) and verify_box(window) is None
    # the first tensor's read (shown a turn of the event loop after the tree) says "Reading" and
    # clears it when done: not over the answer looked for below
    qtbot.waitUntil(lambda: window.tensor_view.name != "" and window.controller._read_task is None)
    flows.actionVerify.trigger()
    qtbot.waitUntil(lambda: not flows.is_checking, timeout=10_000)
    assert "no checksums" in window.statusBar().currentMessage()
