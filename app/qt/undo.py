"""Core edits on a QUndoStack: thin commands, a memory cap, and the recipe of what is applied.

``QUndoStack.push`` calls ``redo`` itself, so an edit is never applied before it is pushed. An edit
that fails on its first apply marks itself obsolete (Qt then drops it) and keeps the error for
the caller to show. The memory cap drops the oldest steps when the old values they hold exceed
the limit; their recipe steps are kept, since their effect is still in the document.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from ..core.edits.base import Edit
from ..core.errors import UserError

DEFAULT_MEMORY_CAP = 2 * 1024 ** 3


class EditCommand(QUndoCommand):
    def __init__(self, edit: Edit, doc, on_change: Callable[[Edit], None]):
        super().__init__(edit.label)
        self.edit = edit
        self.doc = doc
        self.error: Exception | None = None
        self._on_change = on_change
        self._skip_redo = False
        self._done_once = False

    def redo(self) -> None:
        if self._skip_redo:  # re-pushed after the memory cap dropped older steps
            self._skip_redo = False
            return
        try:
            with self.doc.batch():  # one rebuild and one announcement per step
                self.edit.apply(self.doc)
        except Exception as exc:
            if self._done_once:
                raise
            self.error = exc
            self.setObsolete(True)
            return
        self._done_once = True
        self._on_change(self.edit)

    def undo(self) -> None:
        with self.doc.batch():
            self.edit.revert(self.doc)
        self._on_change(self.edit)

    def forget(self) -> None:
        """Drop the edit (its undo buffers, removed tensors) and the document. PySide keeps the
        Python side of every command ever pushed for as long as the stack lives, even after Qt
        deleted it (``clear()``, a push that discards the redo history): only this frees them."""
        self.edit = self.doc = self.error = self._on_change = None


class EditStack(QObject):
    """A QUndoStack of EditCommands for one document, with a memory cap and the recipe."""

    edited = Signal(object)       # the Edit just applied or reverted
    dropped = Signal(int)         # how many of the oldest steps the memory cap dropped

    def __init__(self, parent: QObject | None = None, memory_cap: int = DEFAULT_MEMORY_CAP):
        super().__init__(parent)
        self.stack = QUndoStack(self)
        self.memory_cap = memory_cap
        self.doc = None
        self._commands: list[EditCommand] = []  # Python owns the commands the stack shows
        self._dropped_steps: list[dict] = []
        #: tensors changed by steps the cap dropped; they differ from the saved file until a save
        self.dropped_touched: set[str] = set()
        self.stack.cleanChanged.connect(self._clean_changed)

    def reset(self, doc) -> None:
        self.doc = doc
        self.stack.clear()
        _forget(self._commands)
        self._commands.clear()
        self._dropped_steps.clear()
        self.dropped_touched.clear()
        self.stack.setClean()

    def push(self, edit: Edit) -> Exception | None:
        """Apply ``edit`` through the stack; return the error when it could not be applied."""
        if self.doc is None:
            return UserError("nothing is open")
        cmd = EditCommand(edit, self.doc, self.edited.emit)
        discarded = self._commands[self.stack.index():]  # redo history the push discards
        del self._commands[self.stack.index():]
        self.stack.push(cmd)
        if cmd.error is not None:
            error = cmd.error
            cmd.forget()
            return error
        _forget(discarded)
        self._commands.append(cmd)
        self._enforce_cap()
        return None

    def applied_edits(self) -> list[Edit]:
        return [c.edit for c in self._commands[: self.stack.index()]]

    def recipe(self) -> dict:
        """CONTRACT.md section 3: every applied edit in order; undone edits are not in it."""
        steps = self._dropped_steps + [s for e in self.applied_edits() for s in e.recipe_steps()]
        inputs = {k: v for e in self.applied_edits() for k, v in getattr(e, "inputs", {}).items()}
        return {"version": 1, **({"inputs": inputs} if inputs else {}), "steps": steps}

    def memory_used(self) -> int:
        return sum(c.edit.memory_cost() for c in self._commands)

    def _clean_changed(self, _clean: bool) -> None:
        import shiboken6
        if shiboken6.isValid(self.stack) and self.stack.cleanIndex() >= 0:
            self.dropped_touched.clear()  # saved: what dropped steps changed is in the file

    def _enforce_cap(self) -> None:
        used, drop = self.memory_used(), 0
        while used > self.memory_cap and drop < len(self._commands) - 1:
            used -= self._commands[drop].edit.memory_cost()
            drop += 1
        if drop:
            self._rebuild_without_oldest(drop)
            self.dropped.emit(drop)

    def _rebuild_without_oldest(self, drop: int) -> None:
        """Re-push the kept steps without re-running them (called right after a push, so every
        step is applied). The clean state survives only when it lies among the kept steps."""
        clean_at = self.stack.cleanIndex() - drop
        kept = [(c.edit, c.doc) for c in self._commands[drop:]]
        self._dropped_steps += [s for c in self._commands[:drop] for s in c.edit.recipe_steps()]
        self.dropped_touched.update(n for c in self._commands[:drop] for n in c.edit.touched())
        _forget(self._commands)
        self.stack.blockSignals(True)
        try:
            self.stack.clear()
            self._commands = []
            if clean_at == 0:
                self.stack.setClean()
            elif clean_at < 0:  # the saved state was among the dropped steps: unreachable now
                self.stack.resetClean()
            for edit, doc in kept:
                cmd = EditCommand(edit, doc, self.edited.emit)
                cmd._skip_redo = cmd._done_once = True
                self.stack.push(cmd)
                self._commands.append(cmd)
                if clean_at == len(self._commands):
                    self.stack.setClean()
        finally:
            self.stack.blockSignals(False)
        self.stack.cleanChanged.emit(self.stack.isClean())
        self.stack.indexChanged.emit(self.stack.index())
        self.stack.canUndoChanged.emit(self.stack.canUndo())
        self.stack.canRedoChanged.emit(self.stack.canRedo())
        self.stack.undoTextChanged.emit(self.stack.undoText())
        self.stack.redoTextChanged.emit(self.stack.redoText())


def _forget(commands: list[EditCommand]) -> None:
    for c in commands:
        c.forget()
