"""The edit history of one document, Qt-free: undo, redo, the saved state, a memory cap, the recipe.

The window keeps its QUndoStack (menus, the Undo/Redo actions) as a thin adapter over this
(``app/qt/undo.py``); ``paramedit apply`` and tests can use it alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .base import Edit
from ..model.document import Document

DEFAULT_MEMORY_CAP = 2 * 1024 ** 3


@dataclass
class _Dropped:
    """What the memory cap dropped: the steps (still in the document), their inputs, and the
    tensors they changed."""

    groups: list[tuple[list[dict], dict[str, str]]] = field(default_factory=list)  # per edit
    touched: set[str] = field(default_factory=set)


class EditHistory:
    """The undoable steps of one document.

    ``edits[:index]`` are applied, ``edits[index:]`` are undone (the redo history, discarded by
    the next push). ``clean_index`` is the index of the saved state, ``-1`` when that state can
    no longer be reached (it was dropped, or lay in a discarded redo history). The memory cap
    drops the oldest steps when the old values they keep exceed ``memory_cap`` bytes: they can
    no longer be undone, but their recipe steps stay, since their effect is in the document.

    Parameters
    ----------
    doc : Document, optional
        The document the edits act on (``reset`` changes it).
    memory_cap : int
        Bytes of old values kept for undo, at most (the newest step is always kept).

    Examples
    --------
    >>> import torch
    >>> from paramedit.core.model.document import Document
    >>> from paramedit.core.edits.values import FillEdit
    >>> doc = Document.from_object({"head.bias": torch.ones(2)})
    >>> history = EditHistory(doc)
    >>> history.push(FillEdit(["head.bias"], 0.0))       # applies it; no step dropped
    0
    >>> _ = history.undo(); doc.tensor("head.bias").tolist()
    [1.0, 1.0]
    >>> _ = history.redo(); history.recipe()["steps"]
    [{'op': 'fill', 'target': 'head.bias', 'value': 0.0}]
    """

    def __init__(self, doc: Document | None = None, memory_cap: int = DEFAULT_MEMORY_CAP):
        self.doc = doc
        self.memory_cap = memory_cap
        self.edits: list[Edit] = []
        self.index = 0
        self.clean_index = 0
        self._dropped = _Dropped()

    # -- state ----------------------------------------------------------------------------------
    def reset(self, doc: Document | None) -> None:
        """Forget every step; ``doc`` (as it is now) is the saved state.

        Parameters
        ----------
        doc : Document or None
        """
        self.doc = doc
        self.edits = []
        self.index = self.clean_index = 0
        self._dropped = _Dropped()

    @property
    def can_undo(self) -> bool:
        return self.index > 0

    @property
    def can_redo(self) -> bool:
        return self.index < len(self.edits)

    @property
    def is_clean(self) -> bool:
        return self.index == self.clean_index

    def set_clean(self, index: int | None = None) -> None:
        """The document at ``index`` (default: now) is what is saved. A save writes what dropped
        steps changed, so they no longer differ from the file.

        Parameters
        ----------
        index : int, optional
            A position in ``edits`` (default: ``index``, the present).
        """
        self.clean_index = self.index if index is None else index
        if self.clean_index >= 0:
            self._dropped.touched.clear()

    def applied_edits(self) -> list[Edit]:
        return self.edits[: self.index]

    def memory_used(self) -> int:
        return sum(e.memory_cost() for e in self.edits)

    @property
    def dropped_steps(self) -> list[dict]:
        """Recipe steps of the steps the memory cap dropped, oldest first."""
        return [s for steps, _inputs in self._dropped.groups for s in steps]

    @property
    def dropped_touched(self) -> set[str]:
        """Tensors changed by dropped steps: they differ from the saved file until a save."""
        return self._dropped.touched

    def touched_since_clean(self) -> set[str]:
        """Tensors changed by the steps between the saved state and now (the modified marks).

        Returns
        -------
        set of str
        """
        if self.clean_index < 0:
            lo, hi = 0, self.index
        else:
            lo, hi = sorted((self.index, self.clean_index))
        marks = {n for e in self.edits[lo:hi] for n in e.touched()}
        if self.clean_index < 0:  # the saved state was dropped: what dropped steps changed stays
            marks |= self._dropped.touched
        return marks

    # -- moving -----------------------------------------------------------------------------------
    def push(self, edit: Edit, applied: bool = False) -> int:
        """Apply ``edit`` (unless ``applied``: it was run elsewhere, e.g. on a worker thread) and
        record it; the redo history goes. Returns how many of the oldest steps the memory cap
        dropped. An edit that raises leaves the history (and, by the Edit contract, the
        document) as it was.

        Parameters
        ----------
        edit : Edit
        applied : bool
            True when the edit was already applied elsewhere.

        Returns
        -------
        int
            How many of the oldest steps the memory cap dropped.
        """
        if not applied:
            edit.apply(self.doc)
        del self.edits[self.index:]
        if self.clean_index > self.index:  # the saved state was in the discarded redo history
            self.clean_index = -1
        self.edits.append(edit)
        self.index += 1
        return self._enforce_cap()

    def undo(self, run: bool = True) -> Edit:
        """Revert the newest applied step (``run=False``: the caller has reverted it).

        Parameters
        ----------
        run : bool
            Revert it here (False: the caller has).

        Returns
        -------
        Edit
            The step undone; IndexError when there is none.
        """
        if not self.can_undo:
            raise IndexError("nothing to undo")
        edit = self.edits[self.index - 1]
        if run:
            edit.revert(self.doc)
        self.index -= 1
        return edit

    def redo(self, run: bool = True) -> Edit:
        """Apply the oldest undone step again (``run=False``: the caller has applied it).

        Parameters
        ----------
        run : bool
            Apply it here (False: the caller has).

        Returns
        -------
        Edit
            The step redone; IndexError when there is none.
        """
        if not self.can_redo:
            raise IndexError("nothing to redo")
        edit = self.edits[self.index]
        if run:
            edit.apply(self.doc)
        self.index += 1
        return edit

    def drop_all(self) -> None:
        """Forget every step but keep what is applied in the recipe (as the memory cap does):
        the document keeps its edits, and the old values kept for undo go."""
        clean = self.clean_index == self.index
        self.edits, gone = [], self.edits[: self.index]
        self.index = 0
        self.clean_index = 0 if clean else -1
        for e in gone:
            self._dropped.groups.append(_group(e))
            self._dropped.touched.update(e.touched())

    def _enforce_cap(self) -> int:
        used, drop = self.memory_used(), 0
        while used > self.memory_cap and drop < len(self.edits) - 1 and drop < self.index - 1:
            used -= self.edits[drop].memory_cost()
            drop += 1
        if drop:
            gone, self.edits = self.edits[:drop], self.edits[drop:]
            self.index -= drop
            self.clean_index = self.clean_index - drop if self.clean_index >= drop else -1
            for e in gone:
                self._dropped.groups.append(_group(e))
                self._dropped.touched.update(e.touched())
        return drop

    # -- the recipe -------------------------------------------------------------------------------
    def recipe(self) -> dict:
        """CONTRACT.md section 3: every applied step in order (undone steps are not in it).

        Each distinct input checkpoint gets its own name: two steps that both call their input
        ``ref`` but read different files become ``ref`` and ``ref2``, and the second step names
        ``ref2`` (``edits/steps.py``).

        Returns
        -------
        dict
            ``{"version": 1, "inputs": {...} (when any), "steps": [...]}``.
        """
        from .steps import name_inputs
        groups = self._dropped.groups + [_group(e) for e in self.applied_edits()]
        steps, inputs = name_inputs(groups)
        return {"version": 1, **({"inputs": inputs} if inputs else {}), "steps": steps}


def _group(edit: Edit) -> tuple[list[dict], dict[str, str]]:
    """An edit's recipe steps and the inputs they name (``{name: path}``)."""
    return edit.recipe_steps(), dict(getattr(edit, "inputs", None) or {})
