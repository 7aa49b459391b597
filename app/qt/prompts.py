"""Every question the window asks the user, behind one object the presenters are given.

The presenters (``*_flows.py``) never build a modal dialog themselves: they call a ``Prompts``
method and act on the answer. The window passes ``Prompts(window)``, whose methods show the real
Qt dialogs; a test passes ``tests.helpers.prompts.FakePrompts`` with scripted answers instead.

Two kinds of methods:

* **questions** block until answered (``exec()`` or a static ``QFileDialog`` / ``QInputDialog``
  call) and return the answer: ``None`` or ``""`` when the user cancelled;
* **notices** (``error``, ``trust``) are non-blocking boxes opened with ``open()``: they return
  the box, and a test may click it or read it like any widget.
"""
from __future__ import annotations

import os
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

SAVE, DISCARD, CANCEL = "save", "discard", "cancel"
RELOAD, KEEP = "reload", "keep"


class Prompts:
    """The real dialogs, parented to ``parent`` (the main window).

    Parameters
    ----------
    parent
        The widget every dialog is centred on and owned by.
    """

    def __init__(self, parent: QWidget | None = None):
        self.parent = parent

    # -- questions (modal) --------------------------------------------------------------------
    def save_changes(self, title: str, live: bool) -> str:
        """SAVE, DISCARD or CANCEL for a document with unsaved edits; ``live``: a model whose
        tensors hold the edits already (only a file copy is missing)."""
        box = QMessageBox(QMessageBox.Question, "Unsaved changes", "", QMessageBox.Save
                          | QMessageBox.Discard | QMessageBox.Cancel, self.parent)
        box.setDefaultButton(QMessageBox.Save)
        if live:
            box.setText(f"Your edits are in the model {title} itself. Also save them as a "
                        "checkpoint file?")
            box.button(QMessageBox.Discard).setText("Don't Save")
        else:
            box.setText(f"{title} has unsaved edits. Save them?")
        answer = box.exec()
        return {QMessageBox.Save: SAVE, QMessageBox.Discard: DISCARD}.get(answer, CANCEL)

    def file_changed(self, paths: list[str], what: str) -> str:
        """RELOAD, KEEP or CANCEL: the document's files changed on disk before a read or a save
        (``what`` is ``"save"`` or ``"read"``)."""
        names = ", ".join(os.path.basename(p) for p in paths[:3]) or "The file"
        box = QMessageBox(QMessageBox.Warning, "File changed on disk",
                          f"{names} changed on disk since it was opened (another program wrote "
                          f"it). Before anything is {'saved' if what == 'save' else 'read'}:",
                          QMessageBox.Cancel, self.parent)
        box.setObjectName("fileChangedBox")
        box.setInformativeText("Reload: open the new file; your edits are dropped.\n"
                               "Keep: go on with what was already read (with your edits); "
                               "tensors not read yet become unavailable.")
        reload_button = box.addButton("Reload", QMessageBox.DestructiveRole)
        keep_button = box.addButton("Keep What Was Read", QMessageBox.AcceptRole)
        box.setDefaultButton(keep_button)
        box.exec()
        clicked = box.clickedButton()
        return RELOAD if clicked is reload_button else KEEP if clicked is keep_button else CANCEL

    def open_file(self, caption: str, folder: str, filters: str) -> str:
        """A file to read; "" when cancelled."""
        path, _ = QFileDialog.getOpenFileName(self.parent, caption, folder, filters)
        return path

    def open_folder(self, caption: str, folder: str) -> str:
        """A folder to read; "" when cancelled."""
        return QFileDialog.getExistingDirectory(self.parent, caption, folder)

    def save_file(self, caption: str, start: str, filters: str) -> tuple[str, str]:
        """(path, the filter chosen) to write; ("", "") when cancelled."""
        path, chosen = QFileDialog.getSaveFileName(self.parent, caption, start, filters)
        return (path, chosen) if path else ("", "")

    def integer(self, title: str, label: str, value: int, lowest: int, highest: int,
                step: int = 1) -> int | None:
        number, ok = QInputDialog.getInt(self.parent, title, label, value, lowest, highest, step)
        return number if ok else None

    def number(self, title: str, label: str, value: float, lowest: float, highest: float,
               decimals: int = 6) -> float | None:
        number, ok = QInputDialog.getDouble(self.parent, title, label, value, lowest, highest,
                                            decimals)
        return number if ok else None

    def choice(self, title: str, label: str, items: list[str]) -> str | None:
        """One of ``items``; None when cancelled."""
        item, ok = QInputDialog.getItem(self.parent, title, label, items, 0, False)
        return item if ok and item else None

    def drop_entries(self, keys: list[str]) -> bool:
        """Saving as safetensors would lose these non-tensor entries: True to save anyway."""
        answer = QMessageBox.warning(
            self.parent, "Entries safetensors cannot hold",
            "safetensors holds only tensors. These entries of the checkpoint would not be saved:\n\n"
            + "\n".join(f"  • {k}" for k in keys[:20]) + ("\n  …" if len(keys) > 20 else "")
            + "\n\nSave without them? (Save as .pt to keep them.)",
            QMessageBox.Save | QMessageBox.Cancel, QMessageBox.Cancel)
        return answer == QMessageBox.Save

    def relative_names(self, prefix: str) -> bool | None:
        """Extracting ``prefix``: True for names relative to it, False for full names, None to
        cancel."""
        box = QMessageBox(QMessageBox.Question, "Names in the extracted file",
                          f"Name the tensors relative to {prefix} (e.g. 0.weight), or keep the "
                          f"full names ({prefix}.0.weight)?", QMessageBox.Cancel, self.parent)
        relative = box.addButton("Relative names", QMessageBox.AcceptRole)
        box.addButton("Full names", QMessageBox.AcceptRole)
        box.exec()
        if box.clickedButton() is box.button(QMessageBox.Cancel):
            return None
        return box.clickedButton() is relative

    # -- notices (non-blocking) ---------------------------------------------------------------
    def error(self, title: str, message: str, name: str, details: str = "",
              icon=QMessageBox.Warning, modal: bool = True) -> QMessageBox:
        """A box named ``name``, deleted when closed: opened with ``open()`` (window-modal, not
        blocking), or with ``modal=False`` shown beside the window, which stays usable."""
        box = QMessageBox(icon, title, message, QMessageBox.Ok, self.parent)
        box.setObjectName(name)
        if details:
            box.setDetailedText(details)
        box.setAttribute(Qt.WA_DeleteOnClose)
        if modal:
            box.open()
        else:
            box.setWindowModality(Qt.NonModal)
            box.show()
        return box

    def trust(self, path: str, globals_: list[str], on_trust: Callable[[], None]) -> QMessageBox:
        """The warning before a pickle that imports code is loaded; ``on_trust`` runs only when
        the user presses "Trust this file and load it"."""
        from .dialogs.trust_dialog import trust_dialog
        box = trust_dialog(self.parent, path, globals_)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.buttonClicked.connect(lambda button: on_trust() if button is box.trust_button else None)
        box.open()
        return box
