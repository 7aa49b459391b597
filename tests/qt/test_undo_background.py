"""Issue 9: big edits, and their undo / redo, run on a worker thread (app/qt/undo.py): the GUI
thread returns at once, the window is blocked while the work runs, and undo / redo, the
modified marker, the recipe and the one-line error of a failing edit all stay right.

``PoolBlocked`` holds every thread of the pool, so the edit waits in the queue at a known point
until it is released: no timing is involved."""
from __future__ import annotations

import pytest
import torch
from PySide6.QtWidgets import QMessageBox

from app.core.edits.values import FillEdit
from app.core.model.document import Document
from tests.qt.driving import PoolBlocked


@pytest.fixture
def win(qtbot, window):
    doc = Document.from_object({"x": torch.ones(64, 64), "y": torch.zeros(8)})
    window.open_document(doc, "t.pt")
    window.show()
    qtbot.waitExposed(window)
    assert window.select_name("x")
    window.controller.edits.background_bytes = 1  # every edit that touches a tensor
    return window


def dtype(win, name="x"):
    return win.controller.document.entry(name).dtype


def blocked_run(qtbot, win, gesture):
    """Run ``gesture`` while the pool is held; return what the window looked like meanwhile."""
    edits = win.controller.edits
    pool = PoolBlocked()
    try:
        gesture()  # returns although the work cannot have started
        seen = {"busy": edits.busy, "dtype": dtype(win), "undo": win.actionUndo.isEnabled(),
                "redo": win.actionRedo.isEnabled(), "save": win.actionSaveAs.isEnabled(),
                "cast": win.edit_flows.cast_actions["float16"].isEnabled(),
                "tree": win.tree_view.isEnabled(), "grid": win.tensor_view.isEnabled(),
                "paint": win.tree_view.updatesEnabled() or win.tensor_view.updatesEnabled()}
    finally:
        pool.release()
    qtbot.waitUntil(lambda: not edits.busy, timeout=10_000)
    return seen


def test_a_cast_runs_off_the_gui_thread_and_blocks_the_window(qtbot, win):
    seen = blocked_run(qtbot, win, win.edit_flows.cast_actions["float16"].trigger)
    assert seen["busy"] and seen["dtype"] == torch.float32  # not run yet: the GUI thread is free
    assert not any(seen[k] for k in ("undo", "redo", "save", "cast", "tree", "grid", "paint"))
    assert dtype(win) == torch.float16
    assert win.actionUndo.isEnabled() and win.actionUndo.text().replace("&", "") == \
        "Undo Cast x to float16"
    assert win.tree_view.isEnabled() and win.tensor_view.isEnabled()
    assert win.tree_view.updatesEnabled() and win.tensor_view.updatesEnabled()
    assert win.edit_flows.cast_actions["float32"].isEnabled()
    assert win.isWindowModified()
    assert win.controller.edits.recipe()["steps"] == [{"op": "cast", "target": "x",
                                                       "dtype": "float16"}]
    assert win.tree_model.root is win.controller.document.root  # announced and shown


def x_value(win) -> float:
    return float(win.controller.document.tensor("x")[0, 0])


def test_undo_and_redo_of_a_big_step_run_off_the_gui_thread(qtbot, win):
    edits = win.controller.edits
    assert win.edit_flows.push(FillEdit(["x"], 5.0))
    qtbot.waitUntil(lambda: not edits.busy, timeout=10_000)
    x = win.controller.document.tensor("x")
    seen = blocked_run(qtbot, win, win.actionUndo.trigger)
    assert seen["busy"] and not seen["redo"] and not seen["paint"]
    assert x_value(win) == 1.0 and win.controller.document.tensor("x") is x
    assert not win.isWindowModified() and edits.recipe()["steps"] == []
    assert win.actionRedo.isEnabled() and not win.actionUndo.isEnabled()
    seen = blocked_run(qtbot, win, win.actionRedo.trigger)
    assert seen["busy"] and not seen["undo"]
    assert x_value(win) == 5.0 and win.isWindowModified()
    assert edits.recipe()["steps"] == [{"op": "fill", "target": "x", "value": 5.0}]
    assert edits.stack.index() == 1


def test_the_undo_of_a_cast_puts_the_tensors_back_at_once_and_its_redo_runs_off(qtbot, win):
    edits = win.controller.edits
    win.edit_flows.cast_actions["float16"].trigger()
    qtbot.waitUntil(lambda: not edits.busy, timeout=10_000)
    win.actionUndo.trigger()  # the kept float32 tensors go back: no conversion to wait for
    assert not edits.busy and dtype(win) == torch.float32 and not win.isWindowModified()
    seen = blocked_run(qtbot, win, win.actionRedo.trigger)  # converts again: on the worker
    assert seen["busy"] and seen["dtype"] == torch.float32
    assert dtype(win) == torch.float16 and win.isWindowModified()


def test_a_failing_edit_leaves_the_document_unchanged_and_says_one_line(qtbot, win):
    edits = win.controller.edits
    win.edit_flows.cast_actions["float16"].trigger()
    qtbot.waitUntil(lambda: not edits.busy, timeout=10_000)
    before = win.controller.document.tensor("x").clone()
    pushed = []
    seen = blocked_run(qtbot, win, lambda: pushed.append(
        win.edit_flows.push(FillEdit(["x"], 1e40))))  # too large for float16
    assert pushed == [True] and seen["busy"]
    box = win.findChild(QMessageBox, "editErrorBox")
    assert box is not None and box.isVisible()
    assert box.text() == "x: 1e+40 is too large for float16 (largest is 65504)"
    assert "\n" not in box.text()
    assert torch.equal(win.controller.document.tensor("x"), before)
    assert edits.stack.count() == 1 and edits.stack.index() == 1
    assert len(edits.recipe()["steps"]) == 1
    assert win.actionUndo.isEnabled() and win.tree_view.isEnabled()
    box.close()


def test_small_edits_stay_on_the_gui_thread(qtbot, win):
    edits = win.controller.edits
    edits.background_bytes = 1 << 40
    assert win.edit_flows.push(FillEdit(["y"], 2.0))  # applied before push returns
    assert not edits.busy and torch.equal(win.controller.document.tensor("y"), torch.full((8,), 2.0))
    edits.stack.undo()
    assert torch.equal(win.controller.document.tensor("y"), torch.zeros(8))


def test_a_second_edit_while_one_runs_is_refused(qtbot, win):
    edits = win.controller.edits
    pool = PoolBlocked()
    try:
        win.edit_flows.cast_actions["float16"].trigger()
        error = edits.push(FillEdit(["y"], 1.0))
        assert error is not None and "still running" in str(error)
    finally:
        pool.release()
    qtbot.waitUntil(lambda: not edits.busy, timeout=10_000)
    assert torch.equal(win.controller.document.tensor("y"), torch.zeros(8))
    assert edits.stack.count() == 1


def test_clearing_the_qundostack_clears_the_history_and_keeps_the_recipe(qtbot, win):
    edits = win.controller.edits
    edits.background_bytes = 1 << 40
    assert win.edit_flows.push(FillEdit(["y"], 2.0))
    win.undo_stack.clear()  # as closing a window does
    assert edits.history.edits == [] and edits.memory_used() == 0
    assert edits.recipe()["steps"] == [{"op": "fill", "target": "y", "value": 2.0}]
    assert win.edit_flows.push(FillEdit(["y"], 3.0))
    assert edits.stack.count() == 1 and len(edits.recipe()["steps"]) == 2
    edits.stack.undo()
    assert torch.equal(win.controller.document.tensor("y"), torch.full((8,), 2.0))
