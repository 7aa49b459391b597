"""The warning shown before a pickle that imports code is loaded: nothing runs unless the user
presses "Trust this file and load it"."""
from __future__ import annotations

import os

from PySide6.QtWidgets import QMessageBox, QWidget


def trust_dialog(parent: QWidget | None, path: str, globals_: list[str]) -> QMessageBox:
    """A non-blocking warning (``open()`` it); ``box.trust_button`` is the one that loads."""
    box = QMessageBox(QMessageBox.Warning, "Untrusted pickle",
                      f"{os.path.basename(path)} is a full pickle, not just weights.", parent=parent)
    box.setObjectName("trustDialog")
    listed = "\n".join(f"  • {g}" for g in globals_[:30]) or "  (unknown)"
    more = f"\n  … and {len(globals_) - 30} more" if len(globals_) > 30 else ""
    box.setInformativeText(
        "Loading it would import and run code from these places:\n"
        f"{listed}{more}\n\n"
        "A malicious file can do anything your user account can. Load it only if you trust "
        "where it comes from. Nothing has been executed so far.")
    box.trust_button = box.addButton("Trust this file and load it", QMessageBox.DestructiveRole)
    box.trust_button.setObjectName("trustButton")
    box.setStandardButtons(box.standardButtons() | QMessageBox.Cancel)
    box.setDefaultButton(QMessageBox.Cancel)
    return box
