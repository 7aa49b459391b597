"""Issue 9: a document opened again frees the old one's memory map at once — not at Python's
next full garbage collection, which a long session may not see for hundreds of actions (the
soak's RSS grew by the checkpoint's size per kept map). Garbage collection is off in these
tests: what is freed is freed by reference counting, as in a busy window."""
from __future__ import annotations

import gc
import weakref

import pytest

from app.core.model.tensor_entry import TensorEntry
from app.core.model.tree import tree_from_names
from tests.qt.soak import Soak, soak_checkpoint


@pytest.fixture
def no_gc():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _maps(path: str) -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if line.rstrip().endswith(path))


def test_a_tree_has_no_reference_cycle(no_gc):
    import torch
    t = torch.zeros(4)
    entries = [TensorEntry.of(n, t) for n in ("a.b.weight", "a.b.bias", "c.weight")]
    root = tree_from_names(entries, extra_leaves={"epoch": "3"})
    leaf = root.find("a.b.weight")
    assert leaf.parent.full_name == "a.b"  # parents still answer while the tree lives
    alive = weakref.ref(root), weakref.ref(leaf.parent)
    del root, leaf
    assert [r() for r in alive] == [None, None]


def test_reopening_after_edits_keeps_one_map(qtbot, window, tmp_path, no_gc):
    path = soak_checkpoint(str(tmp_path / "train.pt"), width=64, depth=2)
    window.prompts.answer(save_changes="discard")
    soak = Soak(window, path, str(tmp_path), seed=0)
    soak.open()
    assert _maps(path) == 1
    for action in (soak.select_module, soak.edit, soak.rename, soak.cast, soak.delete,
                   soak.undo, soak.select_tensor, soak.reopen, soak.rename, soak.reopen):
        action()
        soak.settle()
    assert _maps(path) == 1
    assert soak.leaked_documents() == 0


def test_a_failed_task_error_keeps_no_frame(qtbot, no_gc):
    import torch

    from app.qt.workers import Task
    big = torch.ones(1000)
    payload = weakref.ref(big)

    def fn(progress, cancelled, big=big):
        read = big * 2  # noqa: F841 (a local of a frame the traceback would keep)
        raise ValueError("broken")
    task = Task(fn)
    del fn, big
    seen = []
    task.signals.failed.connect(lambda exc, text: seen.append((exc, text)))
    task.signals.done.connect(lambda: seen.append("done"))
    task.start()
    qtbot.waitUntil(lambda: "done" in seen)
    (exc, text), _ = seen
    assert "ValueError: broken" in text and exc.__traceback__ is None
    assert payload() is None


def test_a_node_kept_after_its_tree_went_keeps_its_name(no_gc):
    import torch
    entries = [TensorEntry.of(n, torch.zeros(2)) for n in ("a.b.weight", "a.c.weight")]
    root = tree_from_names(entries)
    group, leaf = root.find("a.b"), root.find("a.c.weight")
    moved = root.find("a.c")
    moved.parent = group  # moved with its subtree (as model_code's unexpected group)
    group.children.append(moved)
    del root
    assert group.parent is None and group.full_name == "a.b"
    assert moved.full_name == "a.b.c" and leaf.full_name == "a.c.weight"


def test_a_selected_module_stays_selected_across_a_structural_edit(qtbot, window, tmp_path,
                                                                   no_gc):
    from app.core.edits.surgery import CastEdit, RenameEdit
    path = soak_checkpoint(str(tmp_path / "train.pt"), width=16, depth=2)
    soak = Soak(window, path, str(tmp_path), seed=0)
    soak.open()
    for edit in (RenameEdit(r"^model\.3\.weight$", "model.3.w2"),
                 CastEdit("model.0.bias", "float16")):
        window.select_name("model.1")
        soak.settle()
        soak._push(edit)
        soak.settle()
        assert window.controller.current_node.full_name == "model.1"
    assert soak.errors == []
