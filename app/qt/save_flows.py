"""Save and Save As from the window: choosing the file and format, writing in the background with
progress and cancel, asking before non-tensor entries are dropped, and marking the stack clean.

Editing is paused while a save runs (the worker reads the tensors the edits would change).
"""
from __future__ import annotations

import os

from PySide6.QtCore import QEventLoop

from ..core.errors import UserError
from ..core.formats import save as core_save
from ..core.formats.save import (DEFAULT_SHARD_SIZE, SAFETENSORS, SHARDED, TIED_EVERY, TIED_ONCE,
                           TORCH, TORCHSCRIPT, can_save_in_place, entries_lost_in_safetensors,
                           has_ties)
from .settings import remember_folder
from .workers import Task
from .window_views import Presenter, Views

TORCH_FILTER = "PyTorch checkpoint (*.pt *.pth *.bin *.ckpt)"
SAFETENSORS_FILTER = "safetensors (*.safetensors)"
SHARDED_FILTER = "Sharded safetensors folder (index.json)"
# Tied tensors (a model's shared weights) in safetensors, the two ways users load them:
SAFETENSORS_EVERY_FILTER = ("safetensors, every tied name written: for load_file + strict "
                            "load_state_dict (*.safetensors)")
SHARDED_EVERY_FILTER = "Sharded safetensors folder, every tied name written (index.json)"
TORCHSCRIPT_FILTER = "TorchScript archive, edited values written back (*.pt *.pth)"
DCP_FILTER = "torch.distributed.checkpoint folder (.metadata + .distcp)"
HF_FILTER = "Hugging Face folder, same layout (config.json and tokenizer copied)"
SAVE_FILTER = ";;".join([SAFETENSORS_FILTER, TORCH_FILTER])
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
TIED_ONCE_NOTE = ("tied weights stored once: load with safetensors.torch.load_model or paramedit; "
                  "for a plain load_file + load_state_dict choose 'every tied name written'")


def save_as_filters(doc) -> str:
    """The Save As choices for ``doc``: TorchScript first for an archive that can take its edits
    back, the 'every tied name' safetensors layouts where the document has tied tensors."""
    filters = [TORCH_FILTER, SAFETENSORS_FILTER, SHARDED_FILTER, DCP_FILTER]
    if doc is not None and doc.format == core_save.DCP:
        filters.insert(0, DCP_FILTER)  # a DCP checkpoint stays one unless asked otherwise
        filters.pop()
    if doc is not None and getattr(doc, "hf", None) is not None:
        filters.insert(0, HF_FILTER)
    if doc is not None and doc.format == TORCHSCRIPT and can_save_in_place(doc):
        filters.insert(0, TORCHSCRIPT_FILTER)
    if doc is not None and has_ties(doc):
        filters[filters.index(SAFETENSORS_FILTER) + 1:filters.index(SAFETENSORS_FILTER) + 1] = [
            SAFETENSORS_EVERY_FILTER]
        filters.append(SHARDED_EVERY_FILTER)
    return ";;".join(filters)


def format_from_choice(path: str, chosen_filter: str) -> tuple[str, str]:
    """(path with a suffix, format) from what the save dialog returned."""
    root, ext = os.path.splitext(path)
    if chosen_filter in (SHARDED_FILTER, SHARDED_EVERY_FILTER):
        return (root if ext else path), SHARDED
    if chosen_filter == TORCHSCRIPT_FILTER:
        return (path if ext else path + ".pt"), TORCHSCRIPT
    if chosen_filter == HF_FILTER:
        return (root if ext else path), core_save.HF_FOLDER
    if chosen_filter == DCP_FILTER and ext not in (".safetensors", *TORCH_SUFFIXES):
        return path, core_save.DCP
    if ext == ".safetensors":
        return path, SAFETENSORS
    if ext in TORCH_SUFFIXES:
        return path, TORCH
    if chosen_filter in (SAFETENSORS_FILTER, SAFETENSORS_EVERY_FILTER):
        return path + ".safetensors", SAFETENSORS
    return path + ".pt", TORCH


def tied_from_choice(chosen_filter: str) -> str:
    return TIED_EVERY if chosen_filter in (SAFETENSORS_EVERY_FILTER, SHARDED_EVERY_FILTER) else TIED_ONCE


class SaveFlows(Presenter):
    """The saving presenter.

    Parameters
    ----------
    views
        The window's views (``window_views.Views``): ``views.tree`` and ``views.grid``
        (disabled while writing); ``views.window``: the Save / Undo / Open actions,
        ``set_busy`` (progress and Cancel), ``update_title``, ``update_summary``,
        ``dialog_folder``.
    controller
        The open document and its ``EditStack``.
    edit_flows
        Told when a save starts or ends: every editing action waits for it.
    prompts
        Save As (path, format, shard size), dropping non-tensor entries, the error box.
    status
        ``status(text, timeout_ms)``: a transient message.
    """

    def __init__(self, views: Views, *, controller, edit_flows, prompts, status):
        super().__init__(views, controller=controller, prompts=prompts, status=status, edit_flows=edit_flows)
        self.task: Task | None = None
        self.last_error: str | None = None
        self.window.actionSave.triggered.connect(lambda: self.save())
        self.window.actionSaveAs.triggered.connect(lambda: self.save_as())
        self._agreed_drops: dict[str, set[str]] = {}  # path -> entries the user let go there
        self._tied: dict[str, str] = {}  # path -> tied layout chosen in Save As
        self.controller.documentChanged.connect(self._on_document)
        self.controller.edits.stack.cleanChanged.connect(self._clean_changed)
        self._update_enabled()

    def _on_document(self, _doc) -> None:
        self._agreed_drops.clear()
        self._tied.clear()
        self._update_enabled()

    def _clean_changed(self, _clean: bool) -> None:
        import shiboken6
        if shiboken6.isValid(self.window):
            self._update_enabled()

    @property
    def is_saving(self) -> bool:
        return self.task is not None

    def _update_enabled(self) -> None:
        has_doc = self.controller.document is not None and not self.is_saving
        self.window.actionSave.setEnabled(has_doc)
        self.window.actionSaveAs.setEnabled(has_doc)

    # -- entry points -------------------------------------------------------------------------
    def save(self, wait: bool = False) -> bool:
        """Ctrl+S: over the file it came from, or Save As when there is none to write in place.
        With ``wait`` the call returns when the save ended (closing with unsaved edits)."""
        doc = self.controller.document
        if doc is None:
            return False
        if not can_save_in_place(doc):
            return self.save_as(wait=wait)
        return self.save_to(doc.path, doc.format, wait=wait)

    def save_as(self, wait: bool = False) -> bool:
        choice = self.ask_save_path()
        if not choice:
            return False
        path, fmt, shard_size, *rest = choice
        tied = rest[0] if rest else TIED_ONCE
        self._tied[os.path.abspath(path)] = tied  # plain Save there keeps the layout chosen
        return self.save_to(path, fmt, shard_size=shard_size, wait=wait, tied=tied)

    def ask_save_path(self) -> tuple[str, str, int | None, str] | None:
        """(path, format, shard size, tied layout) from the prompts' file dialog; None when
        cancelled."""
        doc = self.controller.document
        if doc.path and can_save_in_place(doc):
            start = doc.path  # a TorchScript archive too: its edits go back into it
        elif doc.path:  # e.g. a TorchScript archive: never suggest overwriting it with weights
            stem = os.path.splitext(os.path.basename(os.path.normpath(doc.path)))[0]
            start = os.path.join(os.path.dirname(doc.path), f"{stem}.state_dict.pt")
        else:
            start = os.path.join(self.window.dialog_folder(), f"{self.controller.title}.pt")
        path, chosen = self.prompts.save_file("Save as", start, save_as_filters(doc))
        if not path:
            return None
        remember_folder(path)
        tied = tied_from_choice(chosen)
        path, fmt = format_from_choice(path, chosen)
        shard_size = None
        if fmt == SHARDED:
            mib = self.prompts.integer("Shard size", "Largest shard (MiB):",
                                       DEFAULT_SHARD_SIZE // 1024 ** 2, 1, 1 << 20, 256)
            if mib is None:
                return None
            shard_size = mib * 1024 ** 2
        return path, fmt, shard_size, tied

    # -- the work -----------------------------------------------------------------------------
    def save_to(self, path: str, fmt: str, shard_size: int | None = None, wait: bool = False,
                drop_non_tensor: bool = False, tied: str | None = None) -> bool:
        """Write in the background; True when it started (or, with ``wait``, succeeded)."""
        doc = self.controller.document
        if tied is None:
            tied = self._tied.get(os.path.abspath(path), TIED_ONCE)
        if doc is None or self.is_saving:
            return False
        if not self.controller.ensure_fresh("save"):  # a file changed on disk: ask first
            return False
        if fmt in (SAFETENSORS, SHARDED) and not drop_non_tensor:
            from ..core.formats.dcp_writer import values_lost
            lost = entries_lost_in_safetensors(doc) + values_lost(doc)
            agreed = self._agreed_drops.get(os.path.abspath(path), set())
            if lost and not set(lost) <= agreed:
                if not self.prompts.drop_entries(lost):
                    return False
                self._agreed_drops[os.path.abspath(path)] = set(lost)  # not asked again per save
            drop_non_tensor = drop_non_tensor or bool(lost)

        index = self.controller.edits.stack.index()
        return self._run(
            lambda progress, cancelled: core_save.save_document(
                doc, path, fmt, progress=progress, cancelled=cancelled,
                drop_non_tensor=drop_non_tensor, shard_size=shard_size, tied=tied),
            path, f"Saving {path} …",
            lambda written: self._saved(doc, written, index, self._note(doc, fmt, tied)), wait)

    @staticmethod
    def _note(doc, fmt: str, tied: str) -> str:
        """What the user needs to know to load the file written."""
        if fmt in (SAFETENSORS, SHARDED) and tied == TIED_ONCE and has_ties(doc):
            return f" ({TIED_ONCE_NOTE})"
        return ""

    def _run(self, work, path: str, message: str, on_written, wait: bool = False) -> bool:
        """Run a writer ``work(progress, cancelled)`` as the window's one busy task: progress and
        Cancel in the status bar, no edits meanwhile. True when it started (with ``wait``: when
        it succeeded)."""
        task = Task(work)
        self.task = task
        self.last_error = None
        outcome: dict = {}

        def finished(written) -> None:
            outcome["ok"] = True
            on_written(written)
        task.signals.progress.connect(self.controller.progress.emit)
        task.signals.finished.connect(finished)
        task.signals.failed.connect(lambda exc, _tb: self._failed(path, exc, outcome))
        task.signals.done.connect(lambda: self._done(outcome))
        self._set_busy(True, message)
        loop = QEventLoop() if wait else None
        if loop is not None:
            task.signals.done.connect(loop.quit)
        task.start()
        if loop is not None:
            loop.exec()
            return outcome.get("ok", False)
        return True

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _set_busy(self, busy: bool, message: str = "") -> None:
        w = self.window
        for action in (w.actionUndo, w.actionRedo, w.actionOpen):
            action.setEnabled(not busy)
        self.views.grid.grid.setEnabled(not busy)
        self.views.tree.view.setEnabled(not busy)
        w.set_busy(busy, self.cancel)
        if message:
            self.status(message)
        self._update_enabled()
        self.edit_flows._update_enabled()  # every editing action waits: the worker reads the tensors

    def _saved(self, doc, written: str, index: int, note: str = "") -> None:
        doc.restamp(written)  # saved over its own file: that is not a change from elsewhere
        stack = self.controller.edits.stack
        if doc is self.controller.document and stack.index() == index:
            stack.setClean()
        if doc.module is None:
            self.controller.title = os.path.basename(os.path.normpath(written))
            self.controller.recent.add(written)
            self.window.update_title()
        self.window.update_summary()
        self.status(f"Saved {written}{note}", 15000 if note else 8000)

    def _failed(self, path: str, exc: BaseException, outcome: dict) -> None:
        outcome["ok"] = False
        message = str(exc) if isinstance(exc, (UserError, OSError)) else f"{type(exc).__name__}: {exc}"
        self.last_error = message
        self.prompts.error("Not saved", f"{path} was not written; the file on disk is unchanged."
                           f"\n\n{message}", "saveErrorBox")
        self.status(f"Not saved: {message}", 10000)

    def _done(self, outcome: dict) -> None:
        self.task = None
        self._set_busy(False)
        if "ok" not in outcome:
            self.status("Save cancelled; the file on disk is unchanged", 8000)
        self.window.actionUndo.setEnabled(self.controller.undo_stack.canUndo())
        self.window.actionRedo.setEnabled(self.controller.undo_stack.canRedo())

    # -- extracting a subtree -----------------------------------------------------------------
    def extract(self, prefix: str, path: str, relative: bool) -> None:
        """Write a subtree in the background, busy like a save: the worker reads the tensors, so
        no edit may change them meanwhile, and the window may not close under it."""
        from ..core.edits.surgery import save_subtree
        doc = self.controller.document
        if doc is None or self.is_saving:
            return
        what = prefix or "everything"
        self._run(lambda progress, cancelled: save_subtree(
                      doc, prefix, path, relative, progress=progress, cancelled=cancelled),
                  path, f"Extracting {what} to {path} …",
                  lambda written: self.status(f"Extracted {what} to {written}", 8000))
