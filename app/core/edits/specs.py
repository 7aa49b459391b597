"""What the edit dialog asks for, as plain data, turned into core Edits and previewed on copies."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model.document import Document
from .base import Edit
from ..errors import UserError
from ..model.tensor_entry import TensorEntry

OPERATIONS = {
    "set": "Set to value",
    "add": "Add",
    "mul": "Multiply by",
    "clamp": "Clamp to range",
    "expr": "Expression in w",
}


@dataclass
class EditSpec:
    op: str                      # a key of OPERATIONS
    value: str = ""              # set / add / mul
    low: str = ""                # clamp (either bound may be empty)
    high: str = ""
    expr: str = ""               # expr
    index: str = ""              # optional numpy-style index text
    mask: str = ""               # optional boolean expression in w: only where it holds

    def expression(self) -> str | None:
        """The spec as an expression in ``w`` (None for a plain fill)."""
        if self.op == "set":
            return None
        if self.op == "add":
            return f"w + {_number(self.value, 'value')}"
        if self.op == "mul":
            return f"w * {_number(self.value, 'factor')}"
        if self.op == "clamp":
            lo = _number(self.low, "minimum") if self.low.strip() else None
            hi = _number(self.high, "maximum") if self.high.strip() else None
            if lo is None and hi is None:
                raise UserError("give a minimum, a maximum, or both")
            return f"w.clamp(min={lo}, max={hi})"
        if self.op == "expr":
            if not self.expr.strip():
                raise UserError("type an expression in w, e.g. w * 0.5")
            return self.expr.strip()
        raise UserError(f"unknown operation {self.op!r}")


def _number(text: str, what: str) -> str:
    return repr(_value(text, what))


def _value(text: str, what: str) -> float | complex:
    """A real number, or a complex one typed as ``1+2j`` (for complex tensors)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return complex(str(text).replace(" ", ""))
    except ValueError:
        raise UserError(f"the {what} must be a number, not {text!r}") from None


def edit_from_spec(spec: EditSpec, targets: list[str], ref: Document | None = None,
                   ref_path: str | None = None) -> Edit:
    """``ref`` (and its path, for recipes) is what ``ref["NAME"]`` reads: the open reference."""
    from .values import ExprEdit, FillEdit
    if not targets:
        raise UserError("no tensor to edit")
    index = spec.index.strip() or None
    mask = spec.mask.strip() or None
    if spec.op == "set" and mask is None:
        return FillEdit(targets, _value(spec.value, "value"), index=index)
    expr = spec.expression()
    if expr is None:  # a fill under a mask
        expr = f"torch.full_like(w, {_number(spec.value, 'value')})"
    return ExprEdit(targets, expr, index=index, mask=mask, ref=ref, ref_path=ref_path)


class PreviewTooLarge(UserError):
    """The tensor is too large to preview on a copy; the edit itself is still valid to apply."""


def check_shapes(spec: EditSpec, shapes: dict[str, tuple]) -> None:
    """UserError when the spec's index does not fit one of the shapes (no tensor is read)."""
    from ..expressions.index_text import check_index, parse_index
    idx = parse_index(spec.index.strip() or None)
    for name, shape in shapes.items():
        try:
            check_index(idx, shape)
        except UserError as exc:
            raise UserError(f"{name}: {exc}") from None


@dataclass
class Preview:
    before: torch.Tensor
    after: torch.Tensor
    changed: int


PREVIEW_LIMIT = 1 << 24


def preview_edit(spec: EditSpec, name: str, tensor: torch.Tensor, limit: int = PREVIEW_LIMIT,
                 cancelled=None, doc: Document | None = None, ref: Document | None = None) -> Preview:
    """Run the edit on a copy of ``tensor``; count the elements that change (NaN-aware).
    ``cancelled()`` true stops an expression between torch operations (Cancelled).
    ``doc`` is what ``t["NAME"]`` reads and ``ref`` what ``ref["NAME"]`` reads."""
    from .values import ExprEdit
    if tensor.numel() > limit:
        raise PreviewTooLarge(f"no preview for tensors over {limit:,} elements")
    before = tensor.detach().to("cpu", copy=True)
    scratch = Document([TensorEntry.of(name, before.clone())])
    edit = edit_from_spec(spec, [name], ref=ref)
    if isinstance(edit, ExprEdit):
        edit.source = doc
        edit.apply(scratch, cancelled=cancelled)
    else:
        edit.apply(scratch)
    after = scratch.tensor(name)
    same = (before == after) | (torch.isnan(before) & torch.isnan(after)) if before.is_floating_point() \
        else before == after
    return Preview(before, after, int((~same).sum()))
