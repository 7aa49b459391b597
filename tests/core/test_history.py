"""EditHistory (core/edits/history.py): push / undo / redo, the saved state, the memory cap and
its dropped steps, the modified marks, the recipe — with no Qt."""
import pytest
import torch

from app.core.edits.base import CompositeEdit
from app.core.edits.history import EditHistory
from app.core.edits.surgery import CastEdit, DeleteEdit
from app.core.edits.values import FillEdit
from app.core.errors import UserError
from app.core.model.document import Document


def doc_of(**shapes) -> Document:
    return Document.from_object({n: torch.zeros(*s) for n, s in shapes.items()})


def test_push_undo_redo_apply_and_revert_in_place():
    doc = doc_of(a=(4,), b=(2, 2))
    a = doc.tensor("a")
    h = EditHistory(doc)
    assert not h.can_undo and not h.can_redo and h.is_clean
    assert h.push(FillEdit(["a"], 1.0)) == 0
    assert doc.tensor("a") is a and torch.equal(a, torch.ones(4))
    h.push(FillEdit(["b"], 2.0))
    assert h.index == 2 and not h.is_clean and h.can_undo
    assert h.undo().label.startswith("Fill b")
    assert torch.equal(doc.tensor("b"), torch.zeros(2, 2)) and h.can_redo
    h.redo()
    assert torch.equal(doc.tensor("b"), torch.full((2, 2), 2.0))
    h.undo(), h.undo()
    assert h.is_clean and torch.equal(a, torch.zeros(4))
    with pytest.raises(IndexError):
        h.undo()


def test_a_failing_edit_leaves_history_and_document_unchanged():
    doc = doc_of(a=(4,))
    h = EditHistory(doc)
    h.push(FillEdit(["a"], 1.0))
    with pytest.raises(UserError, match="no tensor"):
        h.push(FillEdit(["nope"], 1.0))
    assert h.index == 1 and len(h.edits) == 1 and torch.equal(doc.tensor("a"), torch.ones(4))


def test_a_push_discards_the_redo_history_and_a_saved_state_inside_it():
    doc = doc_of(a=(4,))
    h = EditHistory(doc)
    h.push(FillEdit(["a"], 1.0))
    h.push(FillEdit(["a"], 2.0))
    h.set_clean()
    h.undo()
    h.push(FillEdit(["a"], 3.0))
    assert len(h.edits) == 2 and h.clean_index == -1 and not h.is_clean
    assert [s["value"] for s in h.recipe()["steps"]] == [1.0, 3.0]


def test_applied_but_not_run_here():
    doc = doc_of(a=(4,))
    edit = FillEdit(["a"], 5.0)
    edit.apply(doc)  # e.g. on a worker thread
    h = EditHistory(doc)
    h.push(edit, applied=True)
    assert torch.equal(doc.tensor("a"), torch.full((4,), 5.0))
    h.undo()
    assert torch.equal(doc.tensor("a"), torch.zeros(4))
    h.redo(run=False)  # the caller re-applied it elsewhere: only the index moves
    assert h.index == 1 and torch.equal(doc.tensor("a"), torch.zeros(4))


def test_the_memory_cap_drops_the_oldest_steps_and_keeps_their_recipe():
    doc = doc_of(a=(256,), b=(256,), c=(256,))  # 1 KiB each
    h = EditHistory(doc, memory_cap=2500)
    assert h.push(FillEdit(["a"], 1.0)) == 0
    assert h.push(FillEdit(["b"], 2.0)) == 0
    assert h.push(FillEdit(["c"], 3.0)) == 1  # 3 KiB of old values > 2500 bytes
    assert len(h.edits) == 2 and h.index == 2 and h.memory_used() == 2048
    assert h.dropped_steps == [{"op": "fill", "target": "a", "value": 1.0}]
    assert [s["target"] for s in h.recipe()["steps"]] == ["a", "b", "c"]
    assert h.clean_index == -1 and h.dropped_touched == {"a"}
    assert h.touched_since_clean() == {"a", "b", "c"}  # the saved state is out of reach
    h.undo(), h.undo()
    assert not h.can_undo and torch.equal(doc.tensor("a"), torch.ones(256))  # a stays
    h.set_clean()  # saved: what the dropped step changed is in the file now
    assert h.dropped_touched == set() and h.touched_since_clean() == set()


def test_the_cap_keeps_the_newest_step_and_a_saved_state_among_the_kept():
    doc = doc_of(a=(256,), b=(256,), c=(256,))
    h = EditHistory(doc)
    h.push(FillEdit(["a"], 1.0))
    h.push(FillEdit(["b"], 1.0))
    h.set_clean()
    h.memory_cap = 10
    assert h.push(FillEdit(["c"], 1.0)) == 2 and len(h.edits) == 1  # the newest stays undoable
    assert h.clean_index == 0
    h.undo()
    assert h.is_clean and h.touched_since_clean() == set()


def test_touched_since_clean_counts_steps_either_side_of_the_saved_state():
    doc = doc_of(a=(2,), b=(2,))
    h = EditHistory(doc)
    h.push(FillEdit(["a"], 1.0))
    assert h.touched_since_clean() == {"a"}
    h.set_clean()
    assert h.touched_since_clean() == set()
    h.undo()
    assert h.touched_since_clean() == {"a"}  # undone past the save: differs from the file
    h.redo()
    h.push(FillEdit(["b"], 1.0))
    assert h.touched_since_clean() == {"b"}


def test_structural_edits_and_composites():
    doc = doc_of(**{"x.weight": (2, 2), "x.bias": (2,), "y": (3,)})
    h = EditHistory(doc)
    h.push(CompositeEdit([CastEdit("x.*", "float16"), DeleteEdit("y")], "two"))
    assert doc.entry("x.weight").dtype == torch.float16 and "y" not in doc.tensors
    assert h.recipe()["steps"] == [{"op": "cast", "target": "x.*", "dtype": "float16"},
                                   {"op": "delete", "target": "y"}]
    h.undo()
    assert doc.entry("x.weight").dtype == torch.float32 and "y" in doc.tensors
    assert h.recipe() == {"version": 1, "steps": []}


class _Reads(FillEdit):
    """A fill that says it read an input checkpoint (as transplant / expr with ref[...] do)."""

    def __init__(self, target, name, path):
        super().__init__([target], 0.0)
        self.inputs = {name: path}
        self.name = name

    def recipe_step(self):
        return {"op": "transplant", "from": self.name, "targets": list(self.targets)}


def test_each_distinct_input_path_gets_its_own_name():
    doc = doc_of(a=(2,), b=(2,), c=(2,))
    h = EditHistory(doc)
    h.push(_Reads("a", "ref", "/A.safetensors"))
    h.push(_Reads("b", "ref", "/B.safetensors"))
    h.push(_Reads("c", "ref", "/A.safetensors"))
    recipe = h.recipe()
    assert recipe["inputs"] == {"ref": "/A.safetensors", "ref2": "/B.safetensors"}
    assert [s["from"] for s in recipe["steps"]] == ["ref", "ref2", "ref"]


def test_reset_forgets_everything():
    doc = doc_of(a=(2,))
    h = EditHistory(doc, memory_cap=1)
    h.push(FillEdit(["a"], 1.0))
    h.push(FillEdit(["a"], 2.0))
    h.reset(doc)
    assert h.edits == [] and h.index == 0 and h.is_clean and h.dropped_steps == []


def test_drop_all_keeps_the_recipe_and_frees_the_old_values():
    doc = doc_of(a=(256,))
    h = EditHistory(doc)
    h.push(FillEdit(["a"], 1.0))
    h.push(FillEdit(["a"], 2.0))
    h.undo()
    h.drop_all()
    assert h.edits == [] and h.memory_used() == 0 and not h.can_undo and not h.can_redo
    assert h.recipe()["steps"] == [{"op": "fill", "target": "a", "value": 1.0}]
    assert h.clean_index == -1 and h.touched_since_clean() == {"a"}
