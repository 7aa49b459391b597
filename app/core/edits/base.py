"""The interface every edit implements; the GUI wraps edits in QUndoCommands, ``apply`` replays them.

Rules (DESIGN.md): value edits change tensors **in place** under ``torch.no_grad()`` — the same
``Parameter`` object with the same ``data_ptr()`` stays in its module — and keep only the old
values of the region they touched, so ``revert`` restores them bit for bit. ``apply`` is only
ever called by whoever runs the edit (QUndoStack.push calls redo itself): never apply before push.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from ..model.document import Document


class Edit(ABC):
    """One undoable change to a Document.

    Subclasses implement ``label``, ``apply``, ``revert`` and ``recipe_step``; ``recipes/recipe.py``
    builds the same edit back from its step, so the window, ``paramedit apply`` and Export
    Recipe share one mapping.

    Parameters
    ----------
    None
        ``Edit`` is abstract and takes no arguments; each subclass documents its own
        constructor (typically the target names and the operation's values).

    Attributes
    ----------
    structural : bool
        True when the edit changes names, dtypes or the set of tensors (the tree is rebuilt).

    Examples
    --------
    >>> import torch
    >>> from paramedit.core.model.document import Document
    >>> from paramedit.core.edits.values import FillEdit
    >>> doc = Document.from_object({"head.bias": torch.ones(3)})
    >>> edit = FillEdit(["head.bias"], 0.0)
    >>> edit.apply(doc); doc.tensor("head.bias").tolist()   # in place
    [0.0, 0.0, 0.0]
    >>> edit.revert(doc); doc.tensor("head.bias").tolist()  # bit for bit back
    [1.0, 1.0, 1.0]
    >>> edit.recipe_step()
    {'op': 'fill', 'target': 'head.bias', 'value': 0.0}
    """

    #: True when the edit changes names, dtypes or the set of tensors (the tree is rebuilt).
    structural: bool = False

    @property
    @abstractmethod
    def label(self) -> str:
        """Short text for the undo menu: "Fill head.bias[0:2] with 0"."""

    @abstractmethod
    def apply(self, doc: Document) -> None:
        """Do (or redo) the edit. Raises UserError, leaving ``doc`` unchanged, when it cannot.

        Parameters
        ----------
        doc : Document
            The document to change, in place.
        """

    @abstractmethod
    def revert(self, doc: Document) -> None:
        """Undo the edit exactly (bit for bit).

        Parameters
        ----------
        doc : Document
            The document ``apply`` changed.
        """

    @abstractmethod
    def recipe_step(self) -> dict:
        """The edit as one step of a CONTRACT.md recipe.

        Returns
        -------
        dict
            ``{"op": ..., "target": ..., ...}``.
        """

    def touched(self) -> list[str]:
        """Names of the tensors the edit changed (all aliases included), known after ``apply``.

        Returns
        -------
        list of str
        """
        return []

    def memory_cost(self) -> int:
        """Bytes held to be able to revert (for the undo stack's memory cap).

        Returns
        -------
        int
        """
        return 0

    def work_bytes(self, doc: Document) -> int:
        """About how many bytes applying the edit reads or writes, known before it runs (the
        window runs a big edit off the GUI thread); 0 for small or unknown work.

        Parameters
        ----------
        doc : Document

        Returns
        -------
        int
        """
        return 0

    def recipe_steps(self) -> list[dict]:
        """The edit as recipe steps (one, except for composite edits).

        Returns
        -------
        list of dict
        """
        return [self.recipe_step()]

    # -- the op registry (recipes/registry.py maps each op name to the class that builds it) --
    def to_step(self) -> dict:
        """The edit as one recipe step; ``type(edit).from_step(edit.to_step(), ...)`` builds
        the same edit back, and exports the identical step."""
        return self.recipe_step()

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> "Edit":
        """The edit that performs the (checked) recipe ``step`` on ``doc``, not applied yet.
        ``inputs`` opens the other checkpoints the step names (``compare.merge_ops.Inputs``).

        Parameters
        ----------
        step : dict
            One checked recipe step.
        doc : Document
            The document it will act on.
        inputs : compare.merge_ops.Inputs, optional

        Returns
        -------
        Edit
        """
        raise NotImplementedError(f"{cls.__name__} is not built from recipe steps")


class CompositeEdit(Edit):
    """Several edits done and undone as one (e.g. weights xavier and biases zero in one go)."""

    def __init__(self, edits: list[Edit], label: str):
        if not edits:
            raise ValueError("a composite edit needs at least one edit")
        self.edits = list(edits)
        self._label = label
        self.structural = any(e.structural for e in self.edits)

    @property
    def label(self) -> str:
        return self._label

    def apply(self, doc: Document) -> None:
        done: list[Edit] = []
        try:
            for e in self.edits:
                e.apply(doc)
                done.append(e)
        except Exception:
            for e in reversed(done):  # all or nothing
                e.revert(doc)
            raise

    def revert(self, doc: Document) -> None:
        for e in reversed(self.edits):
            e.revert(doc)

    def recipe_step(self) -> dict:
        raise NotImplementedError("a composite edit is several steps: use recipe_steps()")

    def recipe_steps(self) -> list[dict]:
        return [s for e in self.edits for s in e.recipe_steps()]

    def touched(self) -> list[str]:
        return list(dict.fromkeys(n for e in self.edits for n in e.touched()))

    def memory_cost(self) -> int:
        return sum(e.memory_cost() for e in self.edits)

    def work_bytes(self, doc: Document) -> int:
        return sum(e.work_bytes(doc) for e in self.edits)


def names_bytes(doc: Document, names) -> int:
    """Bytes of the tensors ``names`` (unknown names count 0), each tied storage once."""
    seen, total = set(), 0
    for n in names:
        e = doc.tensors.get(n)
        if e is not None and n not in seen:
            seen.update([n, *e.shared_with])
            total += e.nbytes
    return total
