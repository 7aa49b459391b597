"""Issue 15: an expression edit costs the undo copy plus the expression, nothing more. The last
operation of an expression writes straight into the edited region (``evaluate(out=)``), so no
result tensor is made and copied back, and the sandbox keeps every guarantee while it does."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from app.core.edits.values import ExprEdit
from app.core.errors import Cancelled, UserError
from app.core.expressions.expr import evaluate
from app.core.model.document import Document


class Allocations(TorchDispatchMode):
    """Counts the elements of every new tensor torch makes, and of every write into ``into``."""

    def __init__(self, into: torch.Tensor):
        super().__init__()
        self.storage = into.untyped_storage().data_ptr()
        self.made = 0      # elements of new (not view, not meta) tensors
        self.written = 0   # elements written into the storage of ``into``

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        schema = func._schema
        if schema.is_mutable:
            for i, arg in enumerate(schema.arguments):
                if arg.alias_info is None or not arg.alias_info.is_write:
                    continue
                value = kwargs.get(arg.name) if (arg.kwarg_only or i >= len(args)) else args[i]
                for t in tree_flatten(value)[0]:
                    if (isinstance(t, torch.Tensor) and t.device.type != "meta"
                            and t.untyped_storage().data_ptr() == self.storage):
                        self.written += t.numel()
        elif not any(r.alias_info is not None for r in schema.returns):
            self.made += sum(t.numel() for t in tree_flatten(out)[0]
                             if isinstance(t, torch.Tensor) and t.device.type != "meta")
        return out


def _counted_edit(start: torch.Tensor, expr: str, mask: str | None = None, chunk: int = 1 << 20):
    doc = Document.from_object({"w": start.clone()})
    edit = ExprEdit(["w"], expr, mask=mask)
    edit.chunk_elements = chunk
    counts = Allocations(doc.tensor("w"))
    with counts:
        edit.apply(doc)
    return doc, edit, counts


# -- evaluate(out=) ---------------------------------------------------------------------------

INTO = ["w * 2", "2 * w", "w + 1", "w - 0.5", "w / 3", "w ** 2", "w * w", "w * 2 + 1",
        "torch.clamp(w, -1, 1)", "w.clamp(min=-0.5)", "w.clip(max=0.25)", "torch.clip(w, -1, 1)",
        "torch.where(w > 0, 0, w)", "torch.where(w.abs() < 1, w * 3, 0.5)", "w * True"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("text", INTO)
def test_the_last_operation_is_written_into_out_bit_for_bit(text, dtype):
    w = (torch.randn(7, 5, generator=torch.Generator().manual_seed(4)) * 2).to(dtype)
    plain = evaluate(text, w)
    out = torch.full_like(w, 123.0)
    assert evaluate(text, w, out=out) is out
    assert torch.equal(out.view(torch.int16) if dtype == torch.bfloat16 else out,
                       plain.view(torch.int16) if dtype == torch.bfloat16 else plain)


@pytest.mark.parametrize("text, dtype", [
    ("2 - w", torch.float32),                      # no out= form with the number first
    ("w.double() * 2", torch.float32),             # the value is float64: written as is, a cast
    ("w * 2j", torch.float32),                     # complex
    ("w * 2", torch.int32),                        # integers are range-checked first
    ("w.sum() * 2", torch.float32),                # a scalar: broadcast, not written
    ("torch.where(w > 0, 1.0, 0.0)", torch.float32),
    ("torch.clamp(w, min=w.double() - 1)", torch.float32),  # float64 bounds: float64
    ("w.t() * 2", torch.float32),                  # overlaps out (out is w) but is not w itself
])
def test_out_is_left_alone_where_writing_it_would_change_the_value(text, dtype):
    w = (torch.randn(5, 5, generator=torch.Generator().manual_seed(5)) * 3).to(dtype)
    before = w.clone()
    plain = evaluate(text, w.clone())
    got = evaluate(text, w, out=w)
    assert got is not w
    assert torch.equal(w, before)
    assert torch.equal(torch.as_tensor(got), torch.as_tensor(plain))


def test_out_may_be_w_itself_as_in_an_in_place_operation():
    w = torch.randn(4, 4, generator=torch.Generator().manual_seed(6))
    expected = torch.where(w > 0, w.t(), w)
    assert evaluate("torch.where(w > 0, w.t(), w)", w, out=w) is not w  # w.t() overlaps: plain
    for text, want in [("w * 2 + w", w * 3), ("torch.clamp(w, -0.5, 0.5)", w.clamp(-0.5, 0.5))]:
        x = w.clone()
        assert evaluate(text, x, out=x) is x
        assert torch.equal(x, want)
    assert torch.equal(expected, torch.where(w > 0, w.t(), w))


def test_the_guard_and_the_cancel_still_come_first():
    w = torch.randn(6, generator=torch.Generator().manual_seed(7))
    before = w.clone()
    out = torch.zeros(6)
    with pytest.raises(UserError, match="in place"):
        evaluate("torch.nn.functional.relu(w, True) * 2", w, out=out)
    with pytest.raises(Cancelled):
        evaluate("w * 2", w, out=out, cancelled=lambda: True)
    assert torch.equal(w, before) and torch.equal(out, torch.zeros(6))


# -- the edit: the undo copy plus the expression ------------------------------------------------

@pytest.mark.parametrize("chunk", [1 << 20, 100])
@pytest.mark.parametrize("text", ["w * 2", "w + 1", "torch.clamp(w, -1, 1)", "w ** 2"])
def test_one_operation_makes_nothing_but_the_undo_copy_and_writes_each_value_once(text, chunk):
    start = torch.randn(1000, generator=torch.Generator().manual_seed(8))
    doc, edit, counts = _counted_edit(start, text, chunk=chunk)
    assert counts.made == 1000 and counts.written == 1000
    assert torch.equal(doc.tensor("w"), evaluate(text, start))
    edit.revert(doc)
    assert torch.equal(doc.tensor("w"), start)


@pytest.mark.parametrize("chunk", [1 << 20, 100])
def test_a_compound_expression_makes_only_its_own_temporaries(chunk):
    start = torch.randn(1000, generator=torch.Generator().manual_seed(9))
    doc, _edit, counts = _counted_edit(start, "w * 2 + 1", chunk=chunk)
    assert counts.made == 2000  # the undo copy and w * 2; + 1 goes into w
    assert counts.written == 1000
    assert torch.equal(doc.tensor("w"), start * 2 + 1)


@pytest.mark.parametrize("chunk", [1 << 20, 100])
def test_a_mask_picks_new_or_old_values_in_place(chunk):
    start = torch.randn(1000, generator=torch.Generator().manual_seed(10))
    doc, edit, counts = _counted_edit(start, "w * 2", mask="w.abs() > 1", chunk=chunk)
    # the undo copy, w * 2, w.abs() and the boolean mask; no result of torch.where
    assert counts.made == 4000 and counts.written == 1000
    assert torch.equal(doc.tensor("w"), torch.where(start.abs() > 1, start * 2, start))
    edit.revert(doc)
    assert torch.equal(doc.tensor("w"), start)


def test_a_parameter_is_edited_in_place_and_undone_exactly():
    layer = torch.nn.Linear(64, 32)
    weight, ptr, start = layer.weight, layer.weight.data_ptr(), layer.weight.detach().clone()
    doc = Document.from_object(layer)
    for text, index in [("w * 2", None), ("torch.clamp(w, -0.05, 0.05)", "[:, 3:40]"),
                        ("w - 1", "[5]")]:
        edit = ExprEdit(["weight"], text, index=index)
        edit.apply(doc)
        assert doc.tensor("weight") is weight and weight.data_ptr() == ptr
        expected = start.clone()
        expected[edit.idx] = evaluate(text, start[edit.idx])
        assert torch.equal(weight.detach(), expected)
        edit.revert(doc)
        assert torch.equal(weight.detach(), start)


def test_a_cancelled_one_operation_edit_changes_nothing():
    start = torch.randn(50, generator=torch.Generator().manual_seed(11))
    doc = Document.from_object({"w": start.clone()})
    with pytest.raises(Cancelled):
        ExprEdit(["w"], "w * 2").apply(doc, cancelled=lambda: True)
    assert torch.equal(doc.tensor("w"), start)


def test_tensors_read_by_another_target_see_its_old_values():
    doc = Document.from_object({"a": torch.ones(4), "b": torch.full((4,), 2.0)})
    ExprEdit(["a", "b"], 'w + t["a"]').apply(doc)
    assert torch.equal(doc.tensor("a"), torch.full((4,), 2.0))
    assert torch.equal(doc.tensor("b"), torch.full((4,), 3.0))  # 2 + the old a, not the new one
