"""Checking a file's own checksums (the CRC-32 of every zip record) in the background: once after
a file document opened, and on demand (File > Verify Checksums).

The check reads the whole file on a thread of its own pool, with progress and Cancel in the
status bar; a new document or closing the window cancels it. Damaged records are reported in a
non-modal warning naming the tensors they hold (``core.formats.verify_names``), and those
tensors are marked in the tree.
"""
from __future__ import annotations

import os
import time
import weakref

import shiboken6
from PySide6.QtCore import QThreadPool
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QMessageBox, QProgressBar, QPushButton

from ..core.errors import Cancelled
from .progress import show_progress
from .workers import Task
from .window_views import Presenter, Views

#: tensor names listed in the warning itself; the rest are in its details
SHOWN = 8
#: the check after opening waits this long (on its own thread) before reading: a pass over
#: 100k records beside the GUI thread's first work on the document made each of the GUI
#: thread's turns wait for the GIL (0.1-0.2 s without a tick)
AUTO_DELAY_S = 1.5


def _check(path: str, document, delay: float = 0.0):
    """The background work: (bad lines, {tensor name: line}), or None for a format without
    checksums (safetensors, legacy pickles). Qt-free. ``document``: a weak reference to the
    document checked; its tensors are listed here, and only for a damaged file (100k of them took
    30 ms of the GUI thread at every open), and the check never keeps a replaced one alive."""
    def work(progress, cancelled):
        end = time.monotonic() + delay
        while time.monotonic() < end:
            if cancelled():
                raise Cancelled()
            time.sleep(0.05)
        from ..core.formats import verify_document
        from ..core.formats.verify_names import damaged_tensors, has_checksums
        if not has_checksums(path):
            return None
        bad = verify_document(path, progress=progress, cancel=cancelled)
        doc = document() if bad else None
        entries = list(doc.tensors.values()) if doc is not None else []
        del doc
        tensors = [(e.name, e.tensor()) for e in entries if e.is_loaded]
        return bad, damaged_tensors(path, bad, tensors)
    return work


def describe(bad: list[str], names: dict[str, str]) -> tuple[str, str]:
    """The warning's text and its details."""
    listed = sorted(names)
    text = (f"{len(bad)} record{'s' if len(bad) != 1 else ''} of this file do not match "
            "the checksums the file carries: its bytes changed on disk after it was written. ")
    if listed:
        more = f" and {len(listed) - SHOWN} more" if len(listed) > SHOWN else ""
        text += (f"Damaged tensor{'s' if len(listed) != 1 else ''} (marked in the tree): "
                 f"{', '.join(listed[:SHOWN])}{more}.")
    else:
        text += "Damaged records: " + ", ".join(line.partition(": CRC")[0] for line in bad[:SHOWN])
        text += "." if len(bad) <= SHOWN else f" and {len(bad) - SHOWN} more."
    details = list(bad)
    if listed:
        details += [""] + [f"{n}: {names[n]}" for n in listed]
    return text, "\n".join(details)


class VerifyFlows(Presenter):
    """The checksum presenter.

    Parameters
    ----------
    views
        The window's views (``window_views.Views``): ``views.tree`` (the marks it sets);
        ``views.window``: the status bar its progress sits in, the warning's parent.
    controller, prompts, status
        The document; (unused: the warning is a non-modal notice of its own); transient messages.
    """

    def __init__(self, views: Views, *, controller, prompts, status):
        super().__init__(views, controller=controller, prompts=prompts, status=status)
        self.pool = QThreadPool(self)  # its own thread: loads and statistics never wait on it
        self.pool.setMaxThreadCount(1)
        self.task: Task | None = None
        self._doc = None               # the document the running check is for
        self._asked = False            # started by the user (not after opening): say more
        self._running: dict[object, Task] = {}  # signals -> task, alive until it is done
        self.box: QMessageBox | None = None
        self.last: tuple[list[str], dict[str, str]] | None = None  # the latest result (tests)
        self.actionVerify = QAction("&Verify Checksums", self.window)
        self.actionVerify.setObjectName("actionVerify")
        self.actionVerify.setEnabled(False)
        self.actionVerify.triggered.connect(self._verify_clicked)
        self._build_status()
        controller.documentChanged.connect(self._on_document)

    def _build_status(self) -> None:
        bar = self.window.statusBar()
        self.label = QLabel("Verifying checksums", self.window, objectName="verifyLabel")
        self.progress_bar = QProgressBar(self.window, objectName="verifyProgress")
        self.progress_bar.setMaximumWidth(120)
        self.progress_bar.setTextVisible(False)
        self.cancel_button = QPushButton("Stop", self.window, objectName="cancelVerify")
        self.cancel_button.setToolTip("Stop verifying the file's checksums")
        self.cancel_button.clicked.connect(self.cancel)
        for widget in (self.label, self.progress_bar, self.cancel_button):
            bar.addPermanentWidget(widget)
        self._show_busy(False)

    @property
    def is_checking(self) -> bool:
        return self.task is not None

    # -- starting and stopping ----------------------------------------------------------------
    def _on_document(self, doc) -> None:
        self.cancel()
        self.actionVerify.setEnabled(bool(getattr(doc, "path", None)))
        if doc.path:
            self.verify(asked=False)

    def _verify_clicked(self, _checked: bool = False) -> None:
        self.verify()

    def verify(self, asked: bool = True) -> Task | None:
        """Check the open document's file(s) in the background (a running check restarts);
        ``asked``: by the user, who is told even that the format has no checksums."""
        doc = self.controller.document
        self.cancel()
        if doc is None or not doc.path:
            return None
        task = Task(_check(os.fspath(doc.path), weakref.ref(doc), 0.0 if asked else AUTO_DELAY_S),
                    reads_mapped=False)  # reads the file by calls: a rewrite gives bad records
        self.task, self._doc, self._asked = task, doc, asked
        self._running[task.signals] = task
        task.signals.progress.connect(self._on_progress)
        task.signals.finished.connect(self._on_finished)
        task.signals.failed.connect(self._on_failed)
        task.signals.done.connect(self._on_done)
        # after opening, the check waits for the window to settle: shown once it reads
        self._show_busy(asked)
        return task.start(self.pool)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task, self._doc = None, None
            self._show_busy(False)

    # -- results (bound methods: a lambda capturing the task would keep it alive) --------------
    def _current(self) -> bool:
        return self.task is not None and self.sender() is self.task.signals

    def _on_progress(self, done, total) -> None:
        if self._current():
            if self.label.isHidden():
                self._show_busy(True)
            show_progress(self.progress_bar, done, total)

    def _on_finished(self, result) -> None:
        if not self._current() or self._doc is not self.controller.document:
            return
        self.task, self._doc = None, None
        self._show_busy(False)
        if result is None:
            self.last = ([], {})
            if self._asked:
                self.status(
                    "Nothing to verify: this format carries no checksums", 8000)
            return
        bad, names = result
        self.last = (bad, names)
        if not bad:
            self.status("Checksums verified: every record is intact", 8000)
            return
        self._mark(bad, names)
        self._warn(bad, names)

    def _on_failed(self, exc, _traceback) -> None:
        if not self._current():
            return
        self.task, self._doc = None, None
        self._show_busy(False)
        self.status(f"Checksums not verified: {exc}", 8000)

    def _on_done(self) -> None:
        self._running.pop(self.sender(), None)

    # -- showing ------------------------------------------------------------------------------
    def _mark(self, bad: list[str], names: dict[str, str]) -> None:
        model = self.views.tree.model
        for name, line in names.items():
            model.notes[name] = f"Damaged on disk: {line} (the file's checksum does not match)"
        model.tensors_changed(list(names), modified=False)

    def _warn(self, bad: list[str], names: dict[str, str]) -> None:
        if self.box is not None and shiboken6.isValid(self.box):
            self.box.close()
        text, details = describe(bad, names)
        self.box = self.prompts.error("Damaged file", text, "verifyBox", details=details,
                                      modal=False)
        self.status(
            f"Damaged file: {len(bad)} record{'s' if len(bad) != 1 else ''} fail their checksums",
            15000)

    def _show_busy(self, busy: bool) -> None:
        for widget in (self.label, self.progress_bar, self.cancel_button):
            widget.setVisible(busy)
        if busy:
            self.progress_bar.setRange(0, 0)
