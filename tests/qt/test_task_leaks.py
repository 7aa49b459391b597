"""Memory leak (issue 9): a finished worker task, and what it read, is freed; reopening a file
does not keep the old documents alive."""
from __future__ import annotations

import gc
import weakref

import torch
from PySide6.QtCore import QThreadPool

from app.qt.workers import Task
from tests.helpers.qt import wait_for_document


def _collected(ref) -> bool:
    gc.collect()
    return ref() is None


def test_finished_task_is_collected_with_what_it_read(qtbot):
    big = torch.ones(1000)
    payload = weakref.ref(big)
    task = Task(lambda progress, cancelled, big=big: big * 2)
    del big
    got = []
    # the pattern callers use: slots that capture the task itself
    task.signals.finished.connect(lambda result, task=task: got.append(float(result.sum())))
    task.signals.progress.connect(lambda d, t, task=task: None)
    task.signals.done.connect(lambda task=task: got.append("done"))
    ref = weakref.ref(task)
    task.start()
    qtbot.waitUntil(lambda: got == [2000.0, "done"])
    del task
    qtbot.waitUntil(lambda: _collected(ref), timeout=3000)
    assert _collected(payload)


def test_cancelled_and_failed_tasks_are_collected(qtbot):
    refs = []
    for fn in (lambda p, c: 1 / 0, lambda p, c: None):
        task = Task(fn)
        seen = []
        task.signals.failed.connect(lambda exc, tb, task=task: seen.append(exc))
        task.signals.done.connect(lambda task=task, seen=seen: seen.append("done"))
        refs.append(weakref.ref(task))
        task.cancel()
        task.start()
        qtbot.waitUntil(lambda seen=seen: "done" in seen)
        del task
    assert QThreadPool.globalInstance().waitForDone(5000)
    qtbot.waitUntil(lambda: all(_collected(r) for r in refs), timeout=3000)


def test_reopening_a_file_does_not_keep_old_documents(qtbot, window, tmp_path):
    path = str(tmp_path / "m.pt")
    torch.save({f"l{i}.weight": torch.randn(32, 32) for i in range(3)}, path)
    refs = []
    for _ in range(4):
        window.open_path(path)
        qtbot.waitUntil(lambda: window.controller.document is not None
                        and all(r() is not window.controller.document for r in refs))
        doc = wait_for_document(qtbot, window, path)
        qtbot.waitUntil(lambda: window.tensor_view.name == "l0.weight")
        window.select_name("l2.weight")  # a read task per document
        qtbot.waitUntil(lambda: window.tensor_view.name == "l2.weight")
        refs.append(weakref.ref(doc))
        del doc
    QThreadPool.globalInstance().waitForDone(5000)
    qtbot.waitUntil(lambda: all(_collected(r) for r in refs[:-1]), timeout=5000)
    assert refs[-1]() is window.controller.document


def test_edited_documents_are_freed_when_another_is_opened(qtbot, window, tmp_path):
    """PySide keeps every QUndoCommand ever pushed: each held its edit and its document."""
    from app.core.edits.values import FillEdit
    from app.core.edits.surgery import DeleteEdit
    path = str(tmp_path / "m.pt")
    torch.save({f"l{i}.weight": torch.randn(32, 32) for i in range(3)}, path)
    refs = []
    for _ in range(3):
        window.open_path(path)
        qtbot.waitUntil(lambda: window.controller.document is not None
                        and all(r() is not window.controller.document for r in refs))
        doc = wait_for_document(qtbot, window, path)
        assert window.edit_flows.push(FillEdit(["l0.weight"], 1.0))
        assert window.edit_flows.push(DeleteEdit("l1.weight"))
        window.actionUndo.trigger()
        assert window.edit_flows.push(FillEdit(["l2.weight"], 2.0))  # discards the redo step
        assert window.edit_flows.push(FillEdit(["nope"], 2.0)) is False  # a refused edit
        window.controller.undo_stack.setClean()
        refs.append(weakref.ref(doc))
        del doc
    qtbot.waitUntil(lambda: all(_collected(r) for r in refs[:-1]), timeout=5000)
