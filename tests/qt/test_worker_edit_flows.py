"""Issues 9 / 11: what runs on the edit worker through the window. Transplant and interpolate
go through ``EditStack.submit`` like every other edit (the GUI thread returns first); closing the
window while a step runs waits for it to be recorded, then asks about unsaved changes; a failed
undo on the worker says one line and leaves the document, its marks and its title right.

``PoolBlocked`` holds every thread of the pool, so the work waits at a known point."""
from __future__ import annotations

import torch

from app.core.edits.values import FillEdit
from app.core.model.document import Document
from tests.qt.driving import PoolBlocked
from tests.qt.test_compare_flows import compared, pair  # noqa: F401  (the fixture)


def run_blocked(qtbot, window, gesture):
    """``gesture()`` while the pool is held: what it returned and whether the step was busy."""
    edits = window.controller.edits
    pool = PoolBlocked()
    try:
        out = gesture()
        seen = edits.busy
    finally:
        pool.release()
    qtbot.waitUntil(lambda: not edits.busy, timeout=10_000)
    return out, seen


def test_a_big_transplant_runs_off_the_gui_thread(qtbot, window, pair):  # noqa: F811
    flows = compared(qtbot, window, pair)
    _pa, _pb, a, b = pair
    window.controller.edits.background_bytes = 1
    head = window.controller.document.tensor("head.weight")
    assert window.select_name("head.weight")
    pool = PoolBlocked()
    try:
        assert not flows.transplant_selection()  # nothing refused; returns before the copy
        assert window.controller.edits.busy and torch.equal(head, a["head.weight"])
        assert not window.actionUndo.isEnabled()
    finally:
        pool.release()
    qtbot.waitUntil(lambda: not window.controller.edits.busy, timeout=10_000)
    assert torch.equal(head, b["head.weight"])
    assert window.statusBar().currentMessage().startswith("Transplanted 1 tensor(s) in place")
    assert window.actionUndo.text().replace("&", "").startswith("Undo Transplant")
    window.actionUndo.trigger()
    qtbot.waitUntil(lambda: not window.controller.edits.busy, timeout=10_000)
    assert torch.equal(head, a["head.weight"])


def test_a_big_interpolation_runs_off_the_gui_thread(qtbot, window, pair):  # noqa: F811
    flows = compared(qtbot, window, pair)
    _pa, _pb, a, b = pair
    window.controller.edits.background_bytes = 1
    head = window.controller.document.tensor("head.weight")
    out, busy = run_blocked(qtbot, window, lambda: (flows.interpolate(0.5),
                                                    torch.equal(head, a["head.weight"])))
    assert out == (None, True) and busy  # unchanged when the GUI thread got it back
    assert torch.allclose(head, (a["head.weight"] + b["head.weight"]) / 2)
    assert window.statusBar().currentMessage().startswith("Interpolated")
    assert window.controller.edits.recipe()["steps"][0]["op"] == "linear_merge" \
        or len(window.controller.edits.recipe()["steps"]) == 1


def _fill_document(qtbot, window):
    doc = Document.from_object({"x": torch.ones(64, 64), "y": torch.zeros(8)})
    window.open_document(doc, "t.pt")
    window.show()
    qtbot.waitExposed(window)
    window.controller.edits.background_bytes = 1
    return doc


def test_closing_while_an_edit_runs_waits_for_it_then_asks(qtbot, window):
    doc = _fill_document(qtbot, window)
    edits = window.controller.edits
    window.prompts.answer(save_changes="cancel")
    pool = PoolBlocked()
    try:
        assert window.edit_flows.push(FillEdit(["x"], 5.0))
        assert not window.close()  # refused: the step is not recorded yet
        assert window.isVisible() and "once the running edit" in \
            window.statusBar().currentMessage()
        assert not window.prompts.questions("save_changes")
    finally:
        pool.release()
    qtbot.waitUntil(lambda: bool(window.prompts.questions("save_changes")), timeout=10_000)
    # recorded before the question: nothing was lost, and "Cancel" keeps the window open
    assert float(doc.tensor("x")[0, 0]) == 5.0 and edits.stack.count() == 1
    assert edits.recipe()["steps"] and window.isVisible() and window.isWindowModified()
    window.prompts.answer(save_changes="discard")
    assert window.close()


class FailingRevert(FillEdit):
    """A fill whose undo raises half way (after the first tensor went back)."""

    def revert(self, doc) -> None:
        raise RuntimeError("disk on fire\nsecond line of the traceback")


def test_a_failed_undo_on_the_worker_says_one_line_and_keeps_the_document_marked(qtbot, window):
    doc = _fill_document(qtbot, window)
    edits = window.controller.edits
    assert window.edit_flows.push(FailingRevert(["x"], 5.0))
    qtbot.waitUntil(lambda: not edits.busy, timeout=10_000)
    assert edits.memory_used() > 0  # its undo copies the old values back: on the worker
    _out, busy = run_blocked(qtbot, window, window.actionUndo.trigger)
    assert busy
    assert window.prompts.errors == [("editErrorBox", "Undo failed",
                                      "RuntimeError: disk on fire")]
    # the document is as the failed undo left it, and nothing claims it could be undone
    assert float(doc.tensor("x")[0, 0]) == 5.0
    assert not window.actionUndo.isEnabled() and not window.actionRedo.isEnabled()
    assert edits.stack.count() == 0 and edits.memory_used() == 0
    # still modified: the title's marker, the tree's mark on x, the recipe's step
    assert window.isWindowModified()
    assert window.tree_model.modified == {"x"}
    assert [s["op"] for s in edits.recipe()["steps"]] == ["fill"]
    assert window.tree_view.isEnabled() and window.tree_view.updatesEnabled()
