"""The window's undo stack: a QUndoStack (menus, Undo/Redo actions, the clean marker) over the
core ``EditHistory`` (``core/edits/history.py``), which holds the steps, the memory cap, the
dropped steps and the recipe.

A command never runs an edit the history has not run: ``push`` applies the edit through the
history first (an edit that fails is never pushed, and the error goes back to the caller), then
pushes a command whose first ``redo`` does nothing. Later undo / redo go through the history.

Big edits (``Edit.work_bytes`` at least ``background_bytes``) run on a worker thread
(``submit``): the document is inside one ``Document.batch()`` entered and left on the GUI
thread, so its change is announced there once the work is done; the QUndoStack gets the
command only then; ``busyChanged`` tells the window to block what could touch the document
meanwhile. Its redo runs on a worker likewise, and so does an undo that copies big old values
back (a structural step's undo only puts the kept tensors back: it stays on the GUI thread).
A delete moves no bytes (``DeleteEdit.work_bytes`` is 0): it runs at once.
"""
from __future__ import annotations

from contextlib import ExitStack
from typing import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from ..core.edits.base import Edit
from ..core.edits.history import DEFAULT_MEMORY_CAP, EditHistory
from ..core.errors import UserError, detached
from .workers import Task

__all__ = ["DEFAULT_MEMORY_CAP", "EditCommand", "EditStack"]

#: edits that read or write at least this many bytes run on a worker thread
BACKGROUND_BYTES = 32 * 1024 ** 2


class EditCommand(QUndoCommand):
    """One step of the history on the QUndoStack; pushed already applied."""

    def __init__(self, owner: "EditStack", edit: Edit, background: bool = False):
        super().__init__(edit.label)
        self.owner: EditStack | None = owner
        self.edit: Edit | None = edit
        self.background = background
        self._skip_redo = True

    def redo(self) -> None:
        if self._skip_redo:  # pushed after the edit ran
            self._skip_redo = False
            return
        self.owner._move(self, undo=False)

    def undo(self) -> None:
        self.owner._move(self, undo=True)

    def forget(self) -> None:
        """Drop the edit (its undo buffers, removed tensors). PySide keeps the Python side of
        every command ever pushed for as long as the stack lives, even after Qt deleted it
        (``clear()``, a push that discards the redo history): only this frees them."""
        self.edit = self.owner = None


class EditStack(QObject):
    """The QUndoStack of one document's ``EditHistory``: push, undo / redo, clean marker, recipe.

    Signals
    -------
    edited(Edit)
        An edit was applied, undone or redone (after its work, on the GUI thread).
    dropped(int)
        The memory cap dropped that many of the oldest steps (they can no longer be undone).
    busyChanged(bool)
        An edit, undo or redo runs on a worker: block what could touch the document.
    failed(str)
        An undo or redo on a worker failed; the history is cleared (the document is kept, as
        modified, with its changed tensors marked; the recipe keeps the applied steps), since
        the step is half done.
    """

    edited = Signal(object)
    dropped = Signal(int)
    busyChanged = Signal(bool)
    failed = Signal(str)  # an undo / redo on a worker failed: one line for the user

    def __init__(self, parent: QObject | None = None, memory_cap: int = DEFAULT_MEMORY_CAP):
        super().__init__(parent)
        self.stack = QUndoStack(self)
        self.history = EditHistory(None, memory_cap)
        self.background_bytes = BACKGROUND_BYTES
        self._commands: list[EditCommand] = []  # Python owns the commands the stack shows
        self._task: Task | None = None
        self._batch: ExitStack | None = None
        self._generation = 0  # bumped when the history is forgotten (a step running is then dropped)
        self.stack.cleanChanged.connect(self._clean_changed)
        self.stack.indexChanged.connect(self._index_changed)

    # -- the history's state ---------------------------------------------------------------------
    @property
    def doc(self):
        return self.history.doc

    @property
    def memory_cap(self) -> int:
        return self.history.memory_cap

    @memory_cap.setter
    def memory_cap(self, value: int) -> None:
        self.history.memory_cap = value

    @property
    def dropped_touched(self) -> set[str]:
        """Tensors changed by steps the cap dropped; they differ from the saved file until a save."""
        return self.history.dropped_touched

    @property
    def busy(self) -> bool:
        return self._task is not None

    def applied_edits(self) -> list[Edit]:
        return self.history.applied_edits()

    def recipe(self) -> dict:
        """CONTRACT.md section 3: every applied edit in order; undone edits are not in it."""
        return self.history.recipe()

    def memory_used(self) -> int:
        return self.history.memory_used()

    def touched_since_clean(self) -> set[str]:
        """Tensors changed between the saved state and now (the tree's modified marks)."""
        self.history.clean_index = self._clean_index()
        return self.history.touched_since_clean()

    def reset(self, doc) -> None:
        self._generation += 1
        self.stack.clear()
        _forget(self._commands)
        self._commands.clear()
        self.history.reset(doc)
        self.stack.setClean()

    # -- pushing ---------------------------------------------------------------------------------
    def push(self, edit: Edit) -> Exception | None:
        """Apply ``edit`` now, on this thread, as one step; return the error when it could not be
        applied (the document is then unchanged)."""
        refusal = self._refusal()
        if refusal is not None:
            return refusal
        try:
            with self.doc.batch():  # one rebuild and one announcement per step
                dropped = self.history.push(edit)
        except Exception as exc:
            return detached(exc)
        self._record(edit, dropped, background=False)
        return None

    def submit(self, edit: Edit, done: Callable[[Exception | None], None]) -> bool:
        """Apply ``edit`` as one step, on a worker thread when it is big; ``done(error)`` is
        called on the GUI thread when it has been applied (``None``) or has failed. Returns
        False when it failed at once (``done`` was called), True otherwise."""
        refusal = self._refusal()
        if refusal is not None:
            done(refusal)
            return False
        if not self._in_background(edit):
            error = self.push(edit)
            done(error)
            return error is None
        doc = self.doc

        def finished(dropped: int) -> None:
            self._record(edit, dropped, background=True)
            done(None)
        self._run(lambda: edit.apply(doc), lambda: self.history.push(edit, applied=True),
                  finished, done)
        return True

    def _refusal(self) -> UserError | None:
        if self.doc is None:
            return UserError("nothing is open")
        if self.busy:
            return UserError("an edit is still running; try again when it has finished")
        return None

    def _in_background(self, edit: Edit) -> bool:
        try:
            return edit.work_bytes(self.doc) >= self.background_bytes
        except Exception:  # the edit itself says what is wrong when it runs
            return False

    def _record(self, edit: Edit, dropped: int, background: bool) -> None:
        """Put the applied ``edit`` on the QUndoStack (its redo history goes, as in the core)."""
        discarded = self._commands[self.stack.index():]
        del self._commands[self.stack.index():]
        cmd = EditCommand(self, edit, background)
        self.stack.push(cmd)
        _forget(discarded)
        self._commands.append(cmd)
        if dropped:
            self._rebuild_without_oldest(dropped)
            self.dropped.emit(dropped)
        self.edited.emit(edit)

    # -- undo / redo -----------------------------------------------------------------------------
    def _move(self, cmd: EditCommand, undo: bool) -> None:
        """QUndoStack's undo / redo of ``cmd`` (it moves its index as soon as this returns)."""
        edit = cmd.edit
        step = self.history.undo if undo else self.history.redo
        if not self._move_in_background(cmd, undo):
            with self.doc.batch():
                step()
            self.edited.emit(edit)
            return
        doc = self.doc
        work = (lambda: edit.revert(doc)) if undo else (lambda: edit.apply(doc))

        def failed(error: Exception) -> None:  # the step is half done: no history to trust
            self._forget_after_failure(edit)
            self.edited.emit(edit)
            first = str(error).strip().splitlines()
            self.failed.emit(str(error) if isinstance(error, UserError)
                             else f"{type(error).__name__}: {first[0] if first else ''}")
        self._run(work, lambda: step(run=False), lambda _r: self.edited.emit(edit), failed)

    def _forget_after_failure(self, edit: Edit) -> None:
        """An undo / redo of ``edit`` failed half way: forget every step (the steps applied so
        far stay in the recipe, as the memory cap's dropped ones do); the document is modified,
        and what the steps and ``edit`` changed stays marked so."""
        touched = self.touched_since_clean() | set(edit.touched())
        self.stack.clear()  # _index_changed drops the history's steps, keeping the recipe
        _forget(self._commands)
        self._commands = []
        self.history.drop_all()
        self._generation += 1
        self.stack.resetClean()
        self.history.clean_index = -1
        self.history.dropped_touched.update(touched)

    def _move_in_background(self, cmd: EditCommand, undo: bool) -> bool:
        """A redo repeats the push's work; an undo copies the kept old values back, except for a
        structural step (a cast, a delete), whose undo puts the kept tensors back in place."""
        if not undo:
            return cmd.background
        return not cmd.edit.structural and cmd.edit.memory_cost() >= self.background_bytes

    # -- the worker ------------------------------------------------------------------------------
    def _run(self, work: Callable[[], None], commit: Callable[[], object],
             finished: Callable[[object], None], failed: Callable[[Exception], None]) -> None:
        """``work()`` on a worker inside one document batch; then, on the GUI thread, the batch
        ends (the change is announced), ``commit()`` records it and ``finished(commit())`` runs;
        or ``failed(error)`` runs when ``work`` raised."""
        self._batch = ExitStack()
        self._batch.enter_context(self.doc.batch())
        task = Task(lambda _progress, _cancelled: work())
        self._task = task
        outcome: list = []
        task.signals.finished.connect(lambda _r: outcome.append(None))
        task.signals.failed.connect(lambda exc, _tb: outcome.append(exc))
        generation = self._generation
        task.signals.done.connect(lambda: self._ended(outcome, commit, finished, failed,
                                                      generation))
        self.busyChanged.emit(True)
        task.start()

    def _ended(self, outcome, commit, finished, failed, generation: int) -> None:
        batch, self._batch, self._task = self._batch, None, None
        error = outcome[0] if outcome else UserError("the edit was stopped")
        try:
            batch.close()  # the document announces its change here, on the GUI thread
        finally:
            self.busyChanged.emit(False)
        if generation != self._generation:  # the history was forgotten meanwhile (a close)
            return
        if error is None:
            finished(commit())
        else:
            failed(error)

    # -- clean state and the memory cap ----------------------------------------------------------
    def _clean_index(self) -> int:
        import shiboken6
        return self.stack.cleanIndex() if shiboken6.isValid(self.stack) else -1

    def _index_changed(self, _index: int) -> None:
        """``QUndoStack.clear()`` called from outside (closing a window): the history forgets
        its steps too (their old values go), keeping what is applied in the recipe."""
        import shiboken6
        if shiboken6.isValid(self.stack) and self.stack.count() == 0 and self._commands:
            _forget(self._commands)
            self._commands = []
            self.history.drop_all()
            self._generation += 1

    def _clean_changed(self, _clean: bool) -> None:
        index = self._clean_index()
        if index >= 0:  # saved (or back at the saved state): what dropped steps changed is in it
            self.history.set_clean(index)
        else:
            self.history.clean_index = -1

    def _rebuild_without_oldest(self, drop: int) -> None:
        """Re-push the kept steps without re-running them (called right after a push, so every
        step is applied). The clean state survives only when it lies among the kept steps."""
        clean_at = self._clean_index() - drop  # the QUndoStack still holds every step
        kept = [(c.edit, c.background) for c in self._commands[drop:]]
        _forget(self._commands)
        self.stack.blockSignals(True)
        try:
            self.stack.clear()
            self._commands = []
            if clean_at == 0:
                self.stack.setClean()
            elif clean_at < 0:  # the saved state was among the dropped steps: unreachable now
                self.stack.resetClean()
            for edit, background in kept:
                cmd = EditCommand(self, edit, background)
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
