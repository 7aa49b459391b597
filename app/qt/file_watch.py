"""The open document's files changed on disk (a training loop saving to the open path).

``QFileSystemWatcher`` tells us soon, but the decision waits for the moment it matters: before
a read of a tensor not read yet, or a save, ``Controller.ensure_fresh`` asks here — reload the
file (dropping the edits), or keep working from what was read (kept in private memory; tensors
never read become unavailable). ``Prompts.file_changed`` is the one question.
"""
from __future__ import annotations

import os
import weakref
from functools import partial

from PySide6.QtCore import QFileSystemWatcher
from PySide6.QtWidgets import QMessageBox

from ..core.model import file_lease
from .prompts import CANCEL, KEEP, RELOAD  # noqa: F401  (the answers)
from .window_views import Presenter, Views


class FileWatch(Presenter):
    """Watches the document's files; asks before a read or save of a file that changed.

    Parameters
    ----------
    views
        The window's views (``window_views.Views``): ``views.tree``, whose notes mark
        tensors that became unavailable.
    saving
        ``saving()``: a save of ours is running (its own writes are not news).
    controller, prompts, status
        The document; the Reload / Keep question and the notice; transient messages.
    """

    def __init__(self, views: Views, *, controller, prompts, status, saving=lambda: False):
        super().__init__(views, controller=controller, prompts=prompts, status=status)
        self.saving = saving
        self.watcher = QFileSystemWatcher(self)
        self.watcher.fileChanged.connect(self._on_path_changed)
        self.watcher.directoryChanged.connect(self._on_path_changed)
        self.notice_box: QMessageBox | None = None
        self._inodes: dict[str, tuple[int, int]] = {}  # what each watched path was when added
        self._leased: list[str] = []  # read leases: a rewrite waits for reads in flight
        self.destroyed.connect(partial(file_lease.release, self._leased))
        self.controller.documentChanged.connect(self.watch)
        self.controller.stale_handler = self.resolve

    # -- watching -----------------------------------------------------------------------------
    def watch(self, doc) -> None:
        old = self.watcher.files() + self.watcher.directories()
        if old:
            self.watcher.removePaths(old)
        self._inodes = {}
        files = [p for p in doc.files.paths if self._identity(p) is not None]
        # The folders too: a file replaced by rename (os.replace) leaves the watcher's list.
        folders = sorted({os.path.dirname(p) for p in doc.files.paths})
        if files or folders:
            self.watcher.addPaths(files + [f for f in folders if os.path.isdir(f)])
        self._lease(doc, files)

    def _lease(self, doc, files: list[str]) -> None:
        file_lease.release(self._leased)
        self._leased.clear()
        if not getattr(doc, "detached", True):
            self._leased += file_lease.hold(files, partial(_breaking, weakref.ref(doc)))

    @staticmethod
    def _identity_now(path: str):
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _identity(self, path: str):
        """The (device, inode) now at ``path``, remembered as the one watched; None if gone."""
        now = self._identity_now(path)
        if now is not None:
            self._inodes[path] = now
        return now

    def _on_path_changed(self, _path: str) -> None:
        doc = self.controller.document
        if doc is None:
            return
        watched = set(self.watcher.files())
        # Replaced by a rename: watch the new file under the same name. The old inode's watch
        # stays listed while something holds it open (a DCP rank file, a mapping): replaced too.
        replaced = [p for p in doc.files.paths
                    if p in watched and self._inodes.get(p) != self._identity_now(p)]
        if replaced:
            self.watcher.removePaths(replaced)
        missing = [p for p in doc.files.paths
                   if p not in self.watcher.files() and self._identity(p) is not None]
        if missing:
            self.watcher.addPaths(missing)
        changed = doc.files_changed()
        if changed and not self.saving():
            names = ", ".join(os.path.basename(p) for p in changed[:3])
            self.status(
                f"{names} changed on disk: you will be asked before anything is read from it "
                "or saved", 15000)

    # -- deciding -----------------------------------------------------------------------------
    def resolve(self, what: str) -> bool:
        """Called by ``Controller.ensure_fresh``: True to go on with ``what``."""
        doc = self.controller.document
        changed = doc.files_changed()
        if changed and what == "read" and self.saving():
            return True  # our own save just replaced the file (restamped when it reports back);
            # what is read still maps the file that was opened, intact under its old inode
        if changed:
            answer = self.prompts.file_changed(changed, what)
            if answer == RELOAD:
                self.controller.undo_stack.setClean()  # the user chose to drop the edits
                self.controller.load(doc.path)
                return False
            if answer != KEEP:
                return False
            self._keep(doc)
        lost = sorted(doc.unavailable)
        if what == "save" and lost:
            self.show_notice(f"{len(lost)} tensor{'s were' if len(lost) != 1 else ' was'} never "
                             "read before the file changed on disk and cannot be saved: "
                             f"{', '.join(lost[:3])}{', ...' if len(lost) > 3 else ''}. Delete "
                             "them (they are marked in the tree), or reload the file.")
            return False
        return True

    def _keep(self, doc) -> None:
        lost = doc.detach_from_files()
        self.watch(doc)
        if lost:
            note = ("Not read before the file changed on disk: its values are unavailable. "
                    "Reload the file to see it, or delete it to save the rest.")
            model = self.views.tree.model
            model.notes.update({n: note for n in lost})
            model.tensors_changed(lost, modified=False)
        self.status(
            f"Working from what was read; {len(lost)} tensor{'s' if len(lost) != 1 else ''} "
            "not read before the change are unavailable", 15000)

    def show_notice(self, text: str) -> QMessageBox:
        if self.notice_box is not None:
            self.notice_box.close()
        box = self.prompts.error("Not saved", text, "fileChangedNotice")
        box.finished.connect(self._notice_closed)
        self.notice_box = box
        return box

    def _notice_closed(self, _result: int = 0) -> None:
        self.notice_box = None


def _breaking(doc_ref, path: str) -> None:
    """A lease breaks: another process opens ``path`` to rewrite it. Nothing may start reading
    it from now on (in-flight reads end before the lease is given up)."""
    doc = doc_ref()
    if doc is not None and path in doc.files.stamps:
        doc.files.breaking.add(path)
