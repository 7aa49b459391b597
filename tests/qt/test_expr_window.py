"""The edit dialog on a file opened from disk (memory-mapped), through the real window.

PySide6 replaces ``builtins.__import__``; an expression evaluated with a custom ``__builtins__``
aborted the whole process (``libshiboken: builtins has no "__orig_import__"``) as soon as torch
imported lazily while reading a mapped tensor. A process abort cannot be caught by pytest, so the
window test runs in a child pytest and the parent checks that it passed.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit

from tests.helpers.qt import wait_for_document
from tests.qt.driving import child, click_ok, open_dialog, retype

CHILD = "PARAMEDIT_EXPR_WINDOW_CHILD"


def _pick_data(combo: QComboBox, data) -> None:
    i = combo.findData(data)
    assert i >= 0
    combo.setCurrentIndex(i)


@pytest.mark.skipif(not os.environ.get(CHILD), reason="runs in a child process (see below)")
def test_mask_and_expression_on_a_mapped_file_in_the_window(qtbot, window, tmp_path):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(40, 30, generator=g) * 6
    path = tmp_path / "model.pt"
    torch.save({"enc.weight": w, "enc.bias": torch.zeros(40)}, path)
    window.show()
    qtbot.waitExposed(window)
    window.open_path(str(path))
    wait_for_document(qtbot, window, str(path))
    assert window.select_name("enc.weight")
    dialog = open_dialog(qtbot, window, window.actionEdit, "editDialog")
    _pick_data(child(dialog, QComboBox, "operation"), "expr")
    qtbot.keyClicks(child(dialog, QLineEdit, "expression"), "w * 0")
    qtbot.keyClicks(child(dialog, QLineEdit, "mask"), "w.abs() >= 5")
    expected = torch.where(w.abs() >= 5, torch.zeros(()), w)
    count = int((expected != w).sum())
    qtbot.waitUntil(lambda: dialog.changed_count == count, timeout=10_000)
    assert child(dialog, QLabel, "errorLabel").text() == ""
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: torch.equal(window.controller.document.tensor("enc.weight"), expected),
                    timeout=10_000)
    window.actionUndo.trigger()
    assert torch.equal(window.controller.document.tensor("enc.weight"), w)
    # the other expression of the issue, as an expression this time
    dialog = open_dialog(qtbot, window, window.actionEdit, "editDialog")
    _pick_data(child(dialog, QComboBox, "operation"), "expr")
    retype(qtbot, child(dialog, QLineEdit, "expression"), "(w.abs() < 0.01) * 1.0")
    qtbot.waitUntil(lambda: dialog.changed_count is not None, timeout=10_000)
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: torch.equal(window.controller.document.tensor("enc.weight"),
                                        (w.abs() < 0.01) * 1.0), timeout=10_000)
    assert torch.load(path, weights_only=True)["enc.weight"].equal(w)  # the file is untouched


def test_edit_dialog_on_a_mapped_file_does_not_abort_the_process():
    env = dict(os.environ, **{CHILD: "1"})
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         f"{os.path.abspath(__file__)}::test_mask_and_expression_on_a_mapped_file_in_the_window"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "1 passed" in out, out[-3000:]


# -- off the GUI thread: Stop and Cancel -------------------------------------------------------

from tests.qt.driving import PoolBlocked  # noqa: E402


def test_apply_and_preview_run_off_the_gui_thread_and_can_be_stopped(qtbot, window):
    from PySide6.QtWidgets import QPushButton, QProgressBar
    from app.core.model.document import Document
    from tests.qt.driving import ok_button
    start = torch.randn(300, 200, generator=torch.Generator().manual_seed(4))
    window.open_document(Document.from_object({"big": start.clone(), "b": torch.zeros(3)}), "t")
    window.show()
    qtbot.waitExposed(window)
    assert window.select_name("big")
    undo_count = window.controller.edits.stack.count()
    dialog = open_dialog(qtbot, window, window.actionEdit, "editDialog")
    _pick_data(child(dialog, QComboBox, "operation"), "expr")
    qtbot.keyClicks(child(dialog, QLineEdit, "expression"), "w * 10")
    qtbot.keyClicks(child(dialog, QLineEdit, "mask"), "w > 0")
    expected = torch.where(start > 0, start * 10, start)
    qtbot.waitUntil(lambda: dialog.changed_count == int((expected != start).sum()), timeout=10_000)
    stop = child(dialog, QPushButton, "stopButton")
    tensor = lambda: window.controller.document.tensor("big")  # noqa: E731

    # Stop an apply: the dialog stays, the window still answers, nothing changed, nothing pushed
    blocked = PoolBlocked()
    qtbot.mouseClick(ok_button(dialog), Qt.LeftButton)
    assert dialog.busy and stop.isVisible() and child(dialog, QProgressBar, "editProgress").isVisible()
    assert not child(dialog, QLineEdit, "expression").isEnabled() and not ok_button(dialog).isEnabled()
    assert window.select_name("b") and window.select_name("big")  # the GUI thread is free
    qtbot.mouseClick(stop, Qt.LeftButton)
    blocked.release()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    assert dialog.isVisible() and "Stopped" in child(dialog, QLabel, "changedLabel").text()
    assert torch.equal(tensor(), start)
    assert window.controller.edits.stack.count() == undo_count

    # Stop a preview
    blocked = PoolBlocked()
    retype(qtbot, child(dialog, QLineEdit, "expression"), "w * 20")
    qtbot.waitUntil(lambda: dialog.busy and stop.isVisible(), timeout=5000)
    qtbot.mouseClick(stop, Qt.LeftButton)
    assert child(dialog, QLabel, "changedLabel").text() == "Preview stopped"
    blocked.release()

    # Cancel the dialog while it applies: it closes once the tensor is as it was
    blocked = PoolBlocked()
    qtbot.waitUntil(lambda: ok_button(dialog).isEnabled(), timeout=5000)
    qtbot.mouseClick(ok_button(dialog), Qt.LeftButton)
    assert dialog.busy
    dialog.buttons.button(dialog.buttons.StandardButton.Cancel).click()
    assert dialog.isVisible()  # not before the worker has finished
    blocked.release()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    assert torch.equal(tensor(), start)
    assert window.controller.edits.stack.count() == undo_count

    # and an apply that runs to the end is one undo step
    dialog = open_dialog(qtbot, window, window.actionEdit, "editDialog")
    _pick_data(child(dialog, QComboBox, "operation"), "expr")
    qtbot.keyClicks(child(dialog, QLineEdit, "expression"), "w * 10")
    qtbot.keyClicks(child(dialog, QLineEdit, "mask"), "w > 0")
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    assert torch.equal(tensor(), expected)
    assert window.controller.edits.stack.count() == undo_count + 1
    window.actionUndo.trigger()
    assert torch.equal(tensor(), start)
    window.actionRedo.trigger()
    assert torch.equal(tensor(), expected)
    # no task of the dialog outlives its run (a kept task would keep what it read)
    from app.qt.dialogs import edit_dialog
    qtbot.waitUntil(lambda: not edit_dialog._keeper.tasks, timeout=10_000)
