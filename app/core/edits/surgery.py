"""Checkpoint surgery as undoable, recordable Edits: rename, delete, cast; and subtree extraction.

Recipe steps (CONTRACT.md section 3): ``{"op": "rename", "from": RE, "to": REPL}``,
``{"op": "delete", "target": NAME_OR_GLOB}``, ``{"op": "cast", "target": ..., "dtype": ...}``.
A step whose target matches nothing raises UserError and changes nothing.
"""
from __future__ import annotations

import fnmatch

import torch

from ..model.document import Document
from .base import Edit
from ..errors import UserError
from ..model.tensor_entry import dtype_name
from ..expressions.user_regex import Deadline, check_replacement, compile_pattern, sub

_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp64": "float64",
                  "half": "float16", "float": "float32", "double": "float64"}


def parse_dtype(text: str) -> torch.dtype:
    name = str(text).strip().removeprefix("torch.")
    name = _DTYPE_ALIASES.get(name.lower(), name)
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise UserError(f"unknown dtype {text!r} (e.g. float32, float16, bfloat16, int8)")
    return dtype


def match_names(doc: Document, target: str) -> list[str]:
    """Names equal to ``target`` or matching it as an fnmatch glob, in document order."""
    if target in doc.tensors:
        return [target]
    return [n for n in doc.tensors if fnmatch.fnmatchcase(n, target)]


def check_new_name(old: str, new: str) -> None:
    """A module path cannot hold an empty part (``.weight``, ``a..b``), as ``register_parameter``
    and ``add_module`` refuse: a rename must not produce one."""
    if not new:
        raise UserError(f"rename would leave {old!r} without a name")
    if "" in new.split("."):
        raise UserError(f"rename would name {old!r} {new!r}, which has an empty part; names are "
                        "dotted paths such as encoder.0.weight")


class RenameEdit(Edit):
    structural = True

    def __init__(self, pattern: str, repl: str, targets: list[str] | None = None):
        self.pattern, self.repl = pattern, check_replacement(repl)
        self.targets = list(targets) if targets is not None else None
        self._regex = compile_pattern(pattern)
        self._mapping: dict[str, str] = {}

    @property
    def label(self) -> str:
        return f"Rename {self.pattern!r} -> {self.repl!r}"

    def plan(self, doc: Document) -> dict[str, str]:
        names = self.targets if self.targets is not None else list(doc.tensors)
        for n in names:
            doc.entry(n)
        mapping = {}
        deadline = Deadline()  # the user's regex runs with a time budget (it may backtrack)
        for n in names:
            new = sub(self._regex, self.repl, n, deadline)
            if new != n:
                check_new_name(n, new)
                mapping[n] = new
        if not mapping:
            raise UserError(f"rename: {self.pattern!r} matches no tensor name")
        return mapping

    def apply(self, doc: Document) -> None:
        mapping = self.plan(doc)
        with doc.batch():
            doc.rename_tensors(mapping)  # refuses collisions before changing anything
        self._mapping = mapping

    def revert(self, doc: Document) -> None:
        with doc.batch():
            doc.rename_tensors({new: old for old, new in self._mapping.items()})

    def recipe_step(self) -> dict:
        step = {"op": "rename", "from": self.pattern, "to": self.repl}
        if self.targets is not None:
            step["targets"] = list(self.targets)
        return step

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> Edit:
        return edit_from_step(step)

    def touched(self) -> list[str]:
        return list(self._mapping.values())

    @property
    def mapping(self) -> dict[str, str]:
        """``{old: new}`` of the last apply (kept after revert, so views can follow a name)."""
        return dict(self._mapping)


class DeleteEdit(Edit):
    """Delete tensors (exact name or glob) and/or whole top-level entries (e.g. ``optimizer``)."""

    structural = True

    def __init__(self, target: str):
        self.target = target
        self._records: list[tuple[str, dict]] = []

    @property
    def label(self) -> str:
        return f"Delete {self.target}"

    def apply(self, doc: Document) -> None:
        keys = []
        if isinstance(doc.container, dict) and doc.module is None:
            keys = [str(k) for k in doc.container
                    if str(k) == self.target or (str(k) in doc.entries and fnmatch.fnmatchcase(str(k), self.target))]
        under = tuple(k + "." for k in keys)
        names = [n for n in match_names(doc, self.target) if not n.startswith(under) and n not in keys]
        if not keys and not names:
            raise UserError(f"delete: {self.target!r} matches no tensor or entry")
        if names and doc.module is not None:
            doc.remove_tensor(names[0])  # raises the live-model UserError before any change
        records: list[tuple[str, dict]] = []
        with doc.batch():  # one tree rebuild and one announcement for the whole delete
            try:
                for k in keys:
                    records.append(("entry", doc.remove_entry(k)))
                for n in reversed(names):  # from the end, so recorded positions restore in reverse
                    records.append(("tensor", doc.remove_tensor(n)))
            except UserError:
                self._records = records
                self.revert(doc)
                raise
        self._records = records

    def revert(self, doc: Document) -> None:
        with doc.batch():
            for kind, rec in reversed(self._records):
                if kind == "entry":
                    doc.restore_entry(rec)
                else:
                    doc.insert_tensor(rec)
        self._records = []

    def recipe_step(self) -> dict:
        return {"op": "delete", "target": self.target}

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> Edit:
        return edit_from_step(step)

    def memory_cost(self) -> int:
        return 0  # removed tensors are kept by reference, not copied


class CastEdit(Edit):
    """Change the dtype of matching tensors; tied tensors stay tied; revert restores the originals."""

    structural = True

    def __init__(self, target: str, dtype: str):
        self.target = target
        self.dtype_text = dtype if isinstance(dtype, str) else dtype_name(dtype)
        self.dtype = parse_dtype(self.dtype_text)
        self._old: list[tuple[str, dict[str, torch.Tensor]]] = []

    @property
    def label(self) -> str:
        return f"Cast {self.target} to {dtype_name(self.dtype)}"

    def apply(self, doc: Document) -> None:
        names = match_names(doc, self.target)
        if not names:
            raise UserError(f"cast: {self.target!r} matches no tensor")
        done: set[str] = set()
        old = []
        with torch.no_grad(), doc.batch():
            for n in names:
                if n in done:
                    continue
                done.update(doc.aliases(n))
                t = doc.tensor(n)
                if t.dtype == self.dtype:
                    continue
                if n != self.target and self.dtype.is_floating_point and not t.is_floating_point():
                    continue  # like model.half(): a glob casts floating tensors, not int buffers
                old.append((n, doc.replace_tensor(n, t.detach().to(self.dtype))))
            doc.mark_changed()
        self._old = old

    def revert(self, doc: Document) -> None:
        with doc.batch():
            for _n, olds in reversed(self._old):
                doc.restore_tensors(olds)
            doc.mark_changed()
        self._old = []

    def recipe_step(self) -> dict:
        return {"op": "cast", "target": self.target, "dtype": dtype_name(self.dtype)}

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> Edit:
        return edit_from_step(step)

    def touched(self) -> list[str]:
        return [a for _, olds in self._old for a in olds]

    def work_bytes(self, doc: Document) -> int:
        from .base import names_bytes
        return names_bytes(doc, match_names(doc, self.target))

    def memory_cost(self) -> int:
        seen, total = set(), 0
        for _, olds in self._old:
            for t in olds.values():
                key = t.untyped_storage().data_ptr()
                if key not in seen:
                    seen.add(key)
                    total += t.numel() * t.element_size()
        return total


def edit_from_step(step: dict) -> Edit:
    """A surgery Edit from its recipe step (rename / delete / cast)."""
    op = step.get("op")
    try:
        if op == "rename":
            return RenameEdit(step["from"], step.get("to", ""), step.get("targets"))
        if op == "delete":
            return DeleteEdit(step["target"])
        if op == "cast":
            return CastEdit(step["target"], step["dtype"])
    except KeyError as exc:
        raise UserError(f"{op} step is missing {exc.args[0]!r}") from None
    raise UserError(f"not a surgery step: {op!r}")


def extract_subtree(doc: Document, prefix: str, relative: bool = True) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix`` (a module or group name), named relative to it or kept."""
    prefix = prefix.rstrip(".")
    names = [n for n in doc.tensors if not prefix or n == prefix or n.startswith(prefix + ".")]
    if not names:
        raise UserError(f"nothing named {prefix!r} or under it")
    cut = len(prefix) + 1 if prefix and relative else 0
    return {(n[cut:] or n.rsplit(".", 1)[-1]): doc.tensor(n).detach() for n in names}


def save_subtree(doc: Document, prefix: str, out_path: str, relative: bool = True, **kw) -> str:
    """Write the subtree under ``prefix`` as its own state_dict file (ties kept)."""
    from ..formats.save import save_document
    sub = Document.from_object(extract_subtree(doc, prefix, relative))
    return save_document(sub, out_path, **kw)
