"""Decisions behind the main window: what is open, loading it off the GUI thread, what is selected.

The window turns user gestures into calls here and shows what the signals say. The controller owns
the current ``Document``, the ``QUndoStack`` whose clean state is the document's modified flag, and
the background load tasks (only the newest one may replace the document).
"""
from __future__ import annotations

import gc
import os
from typing import Callable, Iterable

import torch
from PySide6.QtCore import QObject, QTimer, Signal

from ..core.model import file_lease
from ..core.model.document import Document
from ..core.document_summary import document_summary  # noqa: F401  (re-exported)
from ..core.errors import Cancelled, UnsafePickleError, UserError
from ..core.model.tree import Node
from .recent_files import RecentFiles
from .undo import EditStack
from .workers import Task


def openable_path(paths: Iterable[str]) -> str | None:
    """What a drop of ``paths`` opens: one file or folder, or the folder of a sharded checkpoint
    when every path is a shard (or the index) of that one checkpoint; None when it cannot open."""
    paths = [os.path.abspath(p) for p in paths]
    if len(paths) == 1:
        return paths[0] if os.path.exists(paths[0]) else None
    if not paths or not all(os.path.isfile(p) for p in paths):
        return None
    folders = {os.path.dirname(p) for p in paths}
    if len(folders) != 1:
        return None
    folder = folders.pop()
    from ..core.formats.dcp import dcp_folder
    if all(dcp_folder(p) == folder for p in paths):  # files of one DCP checkpoint
        return folder
    from ..core.formats.detect import read_index
    try:
        _, index = read_index(folder)
    except ValueError:
        return None
    index_names = {f for f in os.listdir(folder) if f.endswith(".index.json")}
    members = set(index["weight_map"].values()) | index_names
    return folder if all(os.path.basename(p) in members for p in paths) else None


def document_title(doc: Document) -> str:
    if doc.path:
        return os.path.basename(os.path.normpath(doc.path)) or doc.path
    if doc.module is not None:
        return type(doc.module).__name__
    return "untitled"


def has_values(t: torch.Tensor) -> bool:
    """False for tensors without data to read (the ``meta`` device). Tensors on any other device
    (CUDA, MPS, ...) are handed to the views as they are: the views read them through small
    copies to the CPU, and edits change them on their own device."""
    return t.device.type != "meta"


def numeric(t: torch.Tensor) -> bool:
    return not t.dtype.is_complex and has_values(t)


#: bytes of mapped file data copied to private memory on the GUI thread (more: in a worker)
SYNC_PRIVATE = 16 * 1024 ** 2


#: a replaced document is freed this long after the new one is shown: freeing 100k parts (a
#: Python loop on a worker) beside the GUI thread's first burst of work on the new document (the
#: tree, the first tensor, its statistics) made each of the GUI thread's turns wait for the GIL
RELEASE_DELAY_MS = 1500


def keep_out_of_gc() -> None:
    """Move everything alive now (the document just read, the program) out of the cyclic
    collector's reach, for good: freed by reference counting as usual (documents hold no
    cycles), but never walked again. Else a full collection, due soon after a big document
    arrives, walks all of it while holding the GIL: 0.3-0.8 s without a tick at 100k tensors,
    whichever thread runs it. (What is already cyclic garbage now is kept: a little.)"""
    gc.freeze()


class Controller(QObject):
    documentChanged = Signal(object)         # the new Document
    loadFailed = Signal(str)                 # a message for the user; the old document stays
    unsafeFile = Signal(str, object)         # path, list of globals: hook for a "trust" flow
    busy = Signal(bool)
    progress = Signal(object, object)        # done, total (may exceed 2**31)
    status = Signal(str)                     # a transient status-bar message
    statusDone = Signal(str)                 # that message no longer holds (clear it if shown)
    tensorSelected = Signal(str, object)     # full name, torch.Tensor
    moduleSelected = Signal(str, object)     # full name ("" for the root), list of tensors
    selectionCleared = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.document: Document | None = None
        self.title = ""
        self.edits = EditStack(self)         # edits of the current document, undoable
        self.undo_stack = self.edits.stack
        self.recent = RecentFiles()
        self._task: Task | None = None       # the load that may replace the document
        self._read_task: Task | None = None  # reading the selected tensors of a lazy file
        self._running: set[Task] = set()  # keeps cancelled tasks alive until they finish
        self._releasing: set[Task] = set()  # replaced documents being freed on a worker
        self._to_release: list[list] = []  # replaced documents waiting for RELEASE_DELAY_MS
        self._owned = False  # the document was read from a file here: nobody else holds it
        self.current_node: Node | None = None
        #: asked before a read or save while a file of the document changed on disk (set by the
        #: window's FileWatch): returns True to go on (working from private copies), False to stop
        self.stale_handler: Callable[[str], bool] | None = None

    def ensure_fresh(self, what: str) -> bool:
        """Before ``what`` ("read", "save") touches the document's files: True when they are
        unchanged, or the user chose to keep working from what was read."""
        doc = self.document
        if doc is None or not (doc.files_changed() or (what == "save" and doc.unavailable)):
            return True
        if self.stale_handler is None:
            self.status.emit("The file changed on disk; reopen it")
            return False
        return self.stale_handler(what)

    # -- opening ------------------------------------------------------------------------------
    @property
    def is_loading(self) -> bool:
        return self._task is not None

    @property
    def is_modified(self) -> bool:
        return not self.undo_stack.isClean()

    def load(self, path: str, model: str | None = None, model_args: str | None = None,
             trust: bool = False) -> Task:
        """Open ``path`` in the background; a newer load supersedes this one."""
        from ..core.loading.open import open_document
        self.cancel_load()
        path = os.fspath(path)

        def work(progress, cancelled):
            def report(done, total):
                if cancelled():
                    raise Cancelled()
                progress(done, total)
            file_lease.prepare()  # its process started here, not when the GUI thread leases
            doc = open_document(path, model=model, model_args=model_args, trust=trust,
                                progress=report)
            if cancelled():
                doc.close()
                raise Cancelled()
            document_summary(doc)  # remembered: the status bar's line costs the GUI nothing
            keep_out_of_gc()
            return doc

        task = Task(work, reads_mapped=False)  # a new document: nothing of it is leased yet
        self._task = task
        self._running.add(task)
        # These lambdas capture the task: Task.start() disconnects them once it is done.
        task.signals.progress.connect(lambda d, t, task=task: self._on_progress(task, d, t))
        task.signals.finished.connect(lambda doc, task=task: self._on_loaded(task, doc, path))
        task.signals.failed.connect(lambda exc, tb, task=task: self._on_failed(task, exc, path))
        task.signals.done.connect(lambda task=task: self._on_done(task))
        self.busy.emit(True)
        self.status.emit(f"Opening {path} …")
        return task.start()

    def cancel_load(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
            self.busy.emit(False)
            self.status.emit("Opening cancelled")

    def _on_progress(self, task: Task, done, total) -> None:
        if task is self._task:
            self.progress.emit(done, total)

    def _on_loaded(self, task: Task, doc: Document, path: str) -> None:
        if task is not self._task:  # superseded while it ran
            doc.close()
            return
        self._task = None
        self.recent.add(path)
        self.set_document(doc, os.path.basename(os.path.normpath(path)), owned=True)
        self.busy.emit(False)

    def _on_failed(self, task: Task, exc: BaseException, path: str) -> None:
        if task is not self._task:
            return
        self._task = None
        self.busy.emit(False)
        if isinstance(exc, UserError):
            message = str(exc)
        else:  # not a known bad input: say what broke, still without a traceback
            message = f"{path} cannot be opened: {type(exc).__name__}: {exc}"
        self.status.emit(f"Not opened: {message}")
        if isinstance(exc, UnsafePickleError):
            self.unsafeFile.emit(exc.path, list(exc.globals))
        self.loadFailed.emit(message)

    def _on_done(self, task: Task) -> None:
        self._running.discard(task)

    def set_document(self, doc: Document, title: str | None = None, owned: bool = False) -> None:
        """Show ``doc`` (loaded here, or built by the caller: the demo, a live model). ``owned``:
        read from a file by this controller, so once replaced it is freed on a worker."""
        old, was_owned = [self.document], self._owned  # a list: no local keeps it alive below
        self.document, self._owned = doc, owned
        self.title = title or document_title(doc)
        self.current_node = None
        self.edits.reset(doc)
        self.selectionCleared.emit()  # before documentChanged: the window may select at once
        self.documentChanged.emit(doc)
        self.status.emit(f"Opened {self.title}")
        if old[0] is not None and old[0] is not doc and old[0].module is None:
            if was_owned:
                self._release(old)
            else:
                old[0].close()  # live models belong to their caller

    @property
    def owns_document(self) -> bool:
        """The document was read from a file here (not handed in: the demo, a live model)."""
        return self._owned

    @property
    def is_releasing(self) -> bool:
        """A replaced document is still being freed, or waits to be (tests wait for it)."""
        return bool(self._releasing or self._to_release)

    def _release(self, box: list) -> None:
        """Free the replaced document in ``box`` (its last holder) on a worker, in pieces
        (``core.loading.release``): dropped here, 100k tensors held the GUI thread 0.1 s. Once
        the GUI thread is done with the new document (``RELEASE_DELAY_MS``)."""
        self._to_release.append(box)
        QTimer.singleShot(RELEASE_DELAY_MS, self, self._release_waiting)

    def _release_waiting(self) -> None:
        from ..core.loading.release import release
        boxes, self._to_release = self._to_release, []
        for box in boxes:
            task = Task(lambda _progress, _cancelled, box=box: release(box), reads_mapped=False)
            self._releasing.add(task)
            task.signals.done.connect(lambda task=task: self._releasing.discard(task))
            task.start()
        del boxes

    def summary(self) -> str:
        return document_summary(self.document) if self.document is not None else "Nothing open"

    # -- selection ----------------------------------------------------------------------------
    def select_node(self, node: Node | None) -> None:
        """Show a tensor, or a module's (or group's) tensors pooled, tied storage once.

        Tensors are read off the GUI thread into private memory first (a file rewritten on disk
        must not take what was read, or edited, with it); while a file of the document changed
        on disk, the user is asked first (``ensure_fresh``).
        """
        self.current_node = node
        if self._read_task is not None:
            self._read_task.cancel()
            self._read_task = None
        if node is None or self.document is None:
            self.selectionCleared.emit()
            return
        doc = self.document
        if not self.ensure_fresh("read"):
            self.selectionCleared.emit()
            return
        entries = [node.entry] if node.entry is not None else _unique(node)
        lost = doc.unavailable
        if node.entry is not None and node.entry.name in lost:
            self.status.emit(f"{node.entry.name}: its values were never read before the file "
                             "changed on disk; they are unavailable (reload the file to see it)")
            self.selectionCleared.emit()
            return
        entries = [e for e in entries if e.name not in lost]
        if doc.is_private(entries):
            self._show(node, [e.tensor() for e in entries])
            return
        # a copy of a few MiB takes milliseconds: no worker, no flicker; unless the tensors
        # sharing its storage are to be found anew (after a structural edit: a pass over all)
        if all(e.is_loaded for e in entries) and sum(e.nbytes for e in entries) <= SYNC_PRIVATE \
                and doc.sharing_indexed:
            try:
                tensors = doc.read_private(entries)
            except UserError as exc:
                self.status.emit(f"Cannot read {node.full_name}: {exc}")
                self.selectionCleared.emit()
                return
            self._show(node, tensors)
            return

        def read(progress, cancelled):
            return doc.read_private(entries, cancelled)

        task = Task(read)
        self._read_task = task
        self._running.add(task)
        task.signals.finished.connect(lambda tensors, task=task: self._on_read(task, node, tensors))
        task.signals.failed.connect(lambda exc, tb, task=task: self._on_read_failed(task, node, exc))
        task.signals.done.connect(lambda task=task: self._on_done(task))
        task.reading = f"Reading {node.full_name or self.title} …"
        self.status.emit(task.reading)
        task.start()

    def _on_read(self, task: Task, node: Node, tensors: list) -> None:
        if task is self._read_task and node is self.current_node:
            self._read_task = None
            self.statusDone.emit(task.reading)
            self._show(node, tensors)

    def _on_read_failed(self, task: Task, node: Node, exc: BaseException) -> None:
        if task is self._read_task:
            self._read_task = None
            self.status.emit(f"Cannot read {node.full_name}: {exc}")
            self.selectionCleared.emit()

    def _show(self, node: Node, tensors: list) -> None:
        if node.entry is not None:
            t = tensors[0]
            if not has_values(t):  # the grid and the statistics would read values it lacks
                self.status.emit(f"{node.entry.name} is on the {t.device.type} device: "
                                 "it has no values to show")
                self.selectionCleared.emit()
                return
            self.tensorSelected.emit(node.entry.name, t)
            return
        tensors = [t for t in tensors if numeric(t)]
        if tensors:
            self.moduleSelected.emit(node.full_name, tensors)
        else:
            self.selectionCleared.emit()


def _unique(node: Node):
    from ..core.model.ties import unique_entries
    return unique_entries(node.tensor_entries())
