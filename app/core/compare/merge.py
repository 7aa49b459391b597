"""Acting on a comparison: transplant tensors from a reference, and the merges users know.

Every operation is an undoable ``Edit`` on the document; values change in place under
``torch.no_grad()`` (the same ``Parameter`` objects stay), and only the old values of what was
touched are kept for ``revert``. Other checkpoints are *inputs*: documents known by a short name
(``ref``, ``ft``, ``lora``) whose paths a recipe records in ``"inputs"``.

- ``TransplantEdit``: copy tensors from an input, in place where the shapes match, as new entries
  where the document lacks them; ``plan_transplant`` says which, and refuses a shape mismatch
  with its reason.
- ``LinearMergeEdit``: ``W = w0 * W + sum(wi * Wi)`` (interpolation, model soups, EMA).
- ``TaskArithmeticEdit``: ``W = W + sum(lam_i * (FT_i - W))`` with the document as the base.
- ``LoraMergeEdit``: ``W += scale * B @ A`` per adapted module of a PEFT adapter
  (``adapter_model.safetensors`` + ``adapter_config.json``), ``scale = alpha / r``.
"""
from __future__ import annotations

from typing import Callable

import torch

from .diff import read_entry
from ..model.document import Document
from ..edits.base import Edit
from ..errors import UserError
from ..model.tensor_entry import TensorEntry


def _restore(doc: Document, old: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, values in old.items():
            doc.tensor(name).copy_(values)


def _aliases(doc: Document, names: list[str]) -> list[str]:
    return list(dict.fromkeys(a for n in names for a in doc.aliases(n)))


class _ValueEdit(Edit):
    """Recomputes whole tensors in place; keeps their old values for ``revert``."""

    inputs: dict[str, str] = {}

    def __init__(self, names: list[str]):
        self.names = list(names)
        self._old: dict[str, torch.Tensor] = {}
        self._touched: list[str] = []

    def new_value(self, doc: Document, name: str, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def apply(self, doc: Document) -> None:
        seen: set[str] = set()
        old: dict[str, torch.Tensor] = {}
        try:
            for name in self.names:
                if name in seen:  # a tied alias: its storage is updated already
                    continue
                seen.update(doc.aliases(name))
                w = doc.tensor(name)
                new = self.new_value(doc, name, w.detach())
                if tuple(new.shape) != tuple(w.shape):
                    raise UserError(f"{name}: the result has shape {list(new.shape)}, the tensor "
                                    f"{list(w.shape)}")
                old[name] = w.detach().clone()
                with torch.no_grad():
                    w.copy_(new)
        except Exception:
            _restore(doc, old)
            raise
        self._old = old
        self._touched = _aliases(doc, list(old))

    def revert(self, doc: Document) -> None:
        _restore(doc, self._old)
        self._old = {}

    def touched(self) -> list[str]:
        return list(self._touched)

    def memory_cost(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._old.values())

    def work_bytes(self, doc: Document) -> int:
        from ..edits.base import names_bytes
        return names_bytes(doc, self.names)


# -- transplant ----------------------------------------------------------------------------------

def plan_transplant(doc: Document, source: Document, names: list[str],
                    rename: Callable[[str], str] | None = None
                    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """``(copy, add, refused)`` for the source tensors ``names``: pairs (target, source name) to
    copy in place or add as new entries, and (source name, reason) pairs refused."""
    copy, add, refused = [], [], []
    for sname in names:
        if sname not in source.tensors:
            refused.append((sname, "not in the reference"))
            continue
        target = rename(sname) if rename else sname
        se = source.entry(sname)
        if target in doc.tensors:
            te = doc.entry(target)
            if tuple(te.shape) != tuple(se.shape):
                refused.append((sname, f"shape {list(se.shape)} in the reference, "
                                       f"{list(te.shape)} here"))
            elif te.dtype.is_complex != se.dtype.is_complex:
                refused.append((sname, f"dtype {se.dtype_name} cannot be copied into {te.dtype_name}"))
            else:
                copy.append((target, sname))
        elif doc.module is not None:
            refused.append((sname, "a live model cannot get new tensors"))
        else:
            add.append((target, sname))
    return copy, add, refused


class TransplantEdit(Edit):
    """Copy tensors of the input ``source_name`` into the document (see ``plan_transplant``)."""

    def __init__(self, source: Document, names: list[str], source_name: str = "ref",
                 source_path: str | None = None, glob: str | None = None):
        self.source, self.names, self.source_name = source, list(names), source_name
        self.glob = glob
        self.inputs = {source_name: source_path or source.path or ""}
        self._old: dict[str, torch.Tensor] = {}
        self._added: list[str] = []
        self._touched: list[str] = []

    @property
    def label(self) -> str:
        what = self.names[0] if len(self.names) == 1 else f"{len(self.names)} tensors"
        return f"Transplant {what} from {self.source_name}"

    def apply(self, doc: Document) -> None:
        copy, add, refused = plan_transplant(doc, self.source, self.names)
        if refused:
            name, reason = refused[0]
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            raise UserError(f"cannot transplant {name}: {reason}{more}")
        old: dict[str, torch.Tensor] = {}
        added: list[str] = []
        try:
            for target, sname in copy:
                w = doc.tensor(target)
                src = read_entry(self.source.entry(sname)).detach()
                old[target] = w.detach().clone()
                with torch.no_grad():
                    w.copy_(src)
            for target, sname in add:
                src = read_entry(self.source.entry(sname)).detach().clone()
                doc.insert_tensor(_new_record(doc, target, src, self.source.entry(sname)))
                added.append(target)
        except Exception:
            for name in reversed(added):
                doc.remove_tensor(name)
            _restore(doc, old)
            raise
        self._old, self._added = old, added
        self._touched = _aliases(doc, list(old)) + added
        self.structural = bool(added)

    def revert(self, doc: Document) -> None:
        for name in reversed(self._added):
            doc.remove_tensor(name)
        _restore(doc, self._old)
        self._old, self._added = {}, []

    def work_bytes(self, doc: Document) -> int:
        """The reference tensors it reads (and copies here): a big transplant runs off the GUI
        thread."""
        from ..edits.base import names_bytes
        return names_bytes(self.source, self.names)

    def recipe_step(self) -> dict:
        step = {"op": "transplant", "from": self.source_name}
        if self.glob is not None:
            step["target"] = self.glob
        else:
            step["targets"] = list(self.names)
        return step

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> Edit:
        from .merge_ops import merge_edit_for_step
        return merge_edit_for_step(step, doc, inputs)

    def touched(self) -> list[str]:
        return list(self._touched)

    def memory_cost(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._old.values())


def _new_record(doc: Document, name: str, tensor: torch.Tensor, like: TensorEntry) -> dict:
    """What ``Document.insert_tensor`` needs to add ``name`` at the end (and in the container)."""
    entry = TensorEntry.of(name, tensor, kind=like.kind)
    slot = None
    if doc.container is not None:
        entry.path = _container_path(doc.container, name)
        parent = doc.container
        for k in entry.path[:-1]:
            parent = parent[k]
        if entry.path[-1] in parent:
            raise UserError(f"the checkpoint already has an entry {name!r} that is not a tensor")
        slot = (len(parent), tensor)
    return {"entry": entry, "position": len(doc.tensors), "shared_with": [], "slot": slot}


def _container_path(container, name: str) -> tuple:
    """The deepest dict of the container whose dotted key path prefixes ``name`` gets the rest."""
    if not isinstance(container, dict):
        raise UserError("this checkpoint's top level is not a dict: it cannot get new tensors")
    parts = name.split(".")
    path: list = []
    node = container
    for i, part in enumerate(parts[:-1]):
        real = next((k for k in node if str(k) == part), None)
        if real is None or not isinstance(node[real], dict):
            break
        path.append(real)
        node = node[real]
    rest = ".".join(parts[len(path):])
    return (*path, rest)


# -- merges ----------------------------------------------------------------------------------------

def _pairs(doc: Document, other: Document, names: list[str], what: str) -> dict[str, TensorEntry]:
    out = {}
    for n in names:
        if n not in other.tensors:
            raise UserError(f"{what} has no tensor {n!r}")
        e = other.entry(n)
        if tuple(e.shape) != tuple(doc.entry(n).shape):
            raise UserError(f"{n}: shape {list(doc.entry(n).shape)} here, {list(e.shape)} in {what}")
        out[n] = e
    return out


def _float_names(doc: Document, names: list[str] | None) -> list[str]:
    names = list(doc.tensors) if names is None else list(names)
    return [n for n in names if doc.entry(n).dtype.is_floating_point]


class LinearMergeEdit(_ValueEdit):
    """``W = weights[0] * W + sum(weights[i] * input_i)``, computed in float64 per tensor.

    Interpolation is ``weights=[1 - t, t]``; a uniform soup of the document and k inputs is
    ``[1 / (k + 1)] * (k + 1)``. Only floating-point tensors are merged (step counters stay)."""

    def __init__(self, others: dict[str, Document], weights: list[float],
                 names: list[str] | None = None, doc: Document | None = None,
                 paths: dict[str, str] | None = None, glob: str | None = None):
        if len(weights) != len(others) + 1:
            raise UserError(f"merge needs {len(others) + 1} weights (the document's first), "
                            f"got {len(weights)}")
        self.others, self.weights = dict(others), [float(w) for w in weights]
        self.inputs = {k: (paths or {}).get(k) or (d.path or "") for k, d in self.others.items()}
        self._glob = "*" if names is None else glob  # what the step's "target" said
        super().__init__(_float_names(doc, names) if doc is not None else list(names or []))
        if doc is not None:
            self._entries = {k: _pairs(doc, d, self.names, k) for k, d in self.others.items()}

    @property
    def label(self) -> str:
        return f"Merge with {', '.join(self.others)} ({', '.join(f'{w:g}' for w in self.weights)})"

    def new_value(self, doc, name, w):
        acc = w.to(torch.float64) * self.weights[0]
        for (key, _d), wi in zip(self.others.items(), self.weights[1:]):
            acc += read_entry(self._entries[key][name]).detach().to(torch.float64) * wi
        return acc.to(w.dtype)

    def recipe_step(self) -> dict:
        step = {"op": "merge", "inputs": list(self.others), "weights": list(self.weights)}
        step.update({"target": self._glob} if self._glob else {"targets": list(self.names)})
        return step

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> Edit:
        from .merge_ops import merge_edit_for_step
        return merge_edit_for_step(step, doc, inputs)


class TaskArithmeticEdit(_ValueEdit):
    """``W = W + sum(lam_i * (FT_i - W))``: the document is the base, inputs the fine-tunes."""

    def __init__(self, finetuned: dict[str, Document], lambdas: list[float],
                 names: list[str] | None = None, doc: Document | None = None,
                 paths: dict[str, str] | None = None, glob: str | None = None):
        if len(lambdas) != len(finetuned):
            raise UserError(f"task arithmetic needs one lambda per fine-tune ({len(finetuned)}), "
                            f"got {len(lambdas)}")
        self.finetuned, self.lambdas = dict(finetuned), [float(x) for x in lambdas]
        self.inputs = {k: (paths or {}).get(k) or (d.path or "") for k, d in self.finetuned.items()}
        self._glob = "*" if names is None else glob  # what the step's "target" said
        super().__init__(_float_names(doc, names) if doc is not None else list(names or []))
        if doc is not None:
            self._entries = {k: _pairs(doc, d, self.names, k) for k, d in self.finetuned.items()}

    @property
    def label(self) -> str:
        return f"Task arithmetic with {', '.join(self.finetuned)}"

    def new_value(self, doc, name, w):
        base = w.to(torch.float64)
        acc = base.clone()
        for key, lam in zip(self.finetuned, self.lambdas):
            acc += lam * (read_entry(self._entries[key][name]).detach().to(torch.float64) - base)
        return acc.to(w.dtype)

    def recipe_step(self) -> dict:
        step = {"op": "task_arithmetic", "finetuned": list(self.finetuned),
                "lambdas": list(self.lambdas)}
        step.update({"target": self._glob} if self._glob else {"targets": list(self.names)})
        return step

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> Edit:
        from .merge_ops import merge_edit_for_step
        return merge_edit_for_step(step, doc, inputs)
