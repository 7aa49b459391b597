"""The interface every edit implements; the GUI wraps edits in QUndoCommands, ``apply`` replays them.

Rules (DESIGN.md): value edits change tensors **in place** under ``torch.no_grad()`` — the same
``Parameter`` object with the same ``data_ptr()`` stays in its module — and keep only the old
values of the region they touched, so ``revert`` restores them bit for bit. ``apply`` is only
ever called by whoever runs the edit (QUndoStack.push calls redo itself): never apply before push.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from .document import Document


class Edit(ABC):
    #: True when the edit changes names, dtypes or the set of tensors (the tree is rebuilt).
    structural: bool = False

    @property
    @abstractmethod
    def label(self) -> str:
        """Short text for the undo menu: "Fill head.bias[0:2] with 0"."""

    @abstractmethod
    def apply(self, doc: Document) -> None:
        """Do (or redo) the edit. Raises UserError, leaving ``doc`` unchanged, when it cannot."""

    @abstractmethod
    def revert(self, doc: Document) -> None:
        """Undo the edit exactly (bit for bit)."""

    @abstractmethod
    def recipe_step(self) -> dict:
        """The edit as one step of a CONTRACT.md recipe."""

    def touched(self) -> list[str]:
        """Names of the tensors the edit changed (all aliases included), known after ``apply``."""
        return []

    def memory_cost(self) -> int:
        """Bytes held to be able to revert (for the undo stack's memory cap)."""
        return 0
