"""Tie and untie tensors, on a live model or as state_dict surgery on a file.

Live: tying is ``head.weight = embed.weight`` — the target module's attribute is set to the
source's ``Parameter`` object (an optimizer must be built after it, as with any tie); undo sets
the original object back. Untying registers a clone in place of the alias.
File: a tie is shared storage (the saved file keeps one storage); untying stores a copy.
"""
from __future__ import annotations

import torch

from .base import Edit
from ..errors import UserError
from .registration import rescan
from ..model.ties import tie_group


def _check_torchscript(doc) -> None:
    if doc.format == "torchscript":
        raise UserError("a TorchScript archive's tensors cannot be tied or untied here; "
                        "save it as a checkpoint and open that")


def _check_pair(doc, target: str, source: str) -> None:
    _check_torchscript(doc)
    t, s = doc.entry(target), doc.entry(source)
    if target == source or source in t.shared_with:
        raise UserError(f"{target} and {source} are already the same tensor")
    if t.shape != s.shape:
        raise UserError(f"cannot tie {target} {list(t.shape)} to {source} {list(s.shape)}: "
                        "the shapes differ")
    if t.dtype != s.dtype:
        raise UserError(f"cannot tie {target} ({t.dtype_name}) to {source} ({s.dtype_name}): "
                        "the dtypes differ")
    if doc.module is not None and t.kind != s.kind:
        raise UserError(f"cannot tie the {t.kind} {target} to the {s.kind} {source}")


def check_tie_step(step: dict) -> None:
    """A recipe step ``{"op": "tie", "target": NAME, "source": NAME}`` or
    ``{"op": "untie", "target": NAME}``: exact names, no globs."""
    keys = ("target", "source") if step["op"] == "tie" else ("target",)
    for key in keys:
        value = step.get(key)
        if not isinstance(value, str) or not value:
            raise UserError(f"{step['op']} needs {key!r} (an exact tensor name)")


def tie_edit_for_step(step: dict, doc) -> "Edit":
    names = [step["target"]] + ([step["source"]] if step["op"] == "tie" else [])
    for n in names:
        if n not in doc.tensors:
            raise UserError(f"{step['op']}: there is no tensor named {n!r}")
    if step["op"] == "tie":
        return TieEdit(step["target"], step["source"])
    return UntieEdit(step["target"])


class _TieBase(Edit):
    structural = True

    def __init__(self):
        self._undo: list[tuple] = []     # (owner, attr, old object) or (entry name, old tensor)
        self._shared: dict[str, list[str]] | None = None

    def _set(self, doc, name: str, value: torch.Tensor) -> None:
        e = doc.entry(name)
        if doc.module is not None:
            owner, attr = e.owner, e.attr
            self._undo.append(("module", owner, attr, getattr(owner, attr)))
            setattr(owner, attr, value)  # a Parameter goes through register_parameter
        else:
            self._undo.append(("file", name, e.tensor()))
            doc._put(e, value)

    def revert(self, doc) -> None:
        for record in reversed(self._undo):
            if record[0] == "module":
                _, owner, attr, old = record
                setattr(owner, attr, old)
            else:
                _, name, old = record
                doc._put(doc.entry(name), old)
        self._undo = []
        if doc.module is not None:
            rescan(doc)
        else:
            for name, shared in (self._shared or {}).items():
                doc.entry(name).shared_with = list(shared)
            doc.revision += 1
            doc.build_tree()

    def _snapshot(self, doc) -> None:
        self._shared = {n: list(e.shared_with) for n, e in doc.tensors.items()}

    def _regroup(self, doc, name: str, new_group: list[str]) -> None:
        """File documents: ``name`` leaves its tie group (and joins ``new_group`` if given)."""
        e = doc.entry(name)
        for other in e.shared_with:
            doc.entry(other).shared_with.remove(name)
        e.shared_with = []
        if len(new_group) > 1:
            tie_group([doc.entry(n) for n in new_group])
        doc.revision += 1
        doc.build_tree()


class TieEdit(_TieBase):
    """``target`` becomes the very tensor (Parameter) of ``source``."""

    def __init__(self, target: str, source: str):
        super().__init__()
        self.target, self.source = target, source

    @property
    def label(self) -> str:
        return f"Tie {self.target} to {self.source}"

    def recipe_step(self) -> dict:
        return {"op": "tie", "target": self.target, "source": self.source}

    @classmethod
    def from_step(cls, step: dict, doc, inputs=None) -> Edit:
        return tie_edit_for_step(step, doc)

    def apply(self, doc) -> None:
        _check_pair(doc, self.target, self.source)
        self._undo = []
        self._snapshot(doc)
        src = doc.entry(self.source)
        self._set(doc, self.target, src.tensor())
        if doc.module is not None:
            rescan(doc)
        else:
            self._regroup(doc, self.target, [self.source, *src.shared_with, self.target])

    def touched(self) -> list[str]:
        return [self.target]


class UntieEdit(_TieBase):
    """``name`` gets its own copy (a new ``Parameter`` registered in place of the alias)."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self._clone: torch.Tensor | None = None

    @property
    def label(self) -> str:
        return f"Untie {self.name}"

    def recipe_step(self) -> dict:
        return {"op": "untie", "target": self.name}

    @classmethod
    def from_step(cls, step: dict, doc, inputs=None) -> Edit:
        return tie_edit_for_step(step, doc)

    def apply(self, doc) -> None:
        _check_torchscript(doc)
        e = doc.entry(self.name)
        if not e.shared_with:
            raise UserError(f"{self.name} is not tied to anything")
        if doc.module is not None:
            places = {(id(doc.entry(n).owner), doc.entry(n).attr) for n in doc.aliases(self.name)}
            if len(places) == 1:
                raise UserError(f"{self.name} is tied because its module is used at several "
                                f"places ({', '.join(e.shared_with)}): the module is shared, "
                                "not the parameter, so there is nothing to untie here")
        self._undo = []
        self._snapshot(doc)
        if self._clone is None:  # redo registers the same clone again
            t = e.tensor()
            with torch.no_grad():
                copy = t.detach().clone()
            self._clone = torch.nn.Parameter(copy, requires_grad=t.requires_grad) \
                if isinstance(t, torch.nn.Parameter) else copy
        self._set(doc, self.name, self._clone)
        if doc.module is not None:
            rescan(doc)
        else:
            self._regroup(doc, self.name, [])

    def touched(self) -> list[str]:
        return [self.name]

    def memory_cost(self) -> int:
        return 0 if self._clone is None else self._clone.numel() * self._clone.element_size()
