"""Rename tensors by regular expression (strip ``module.`` or ``_orig_mod.``), with a preview.

The dialog gets the names and a ``plan`` callback (a ``RenameEdit`` to its old -> new mapping),
never the document."""
from __future__ import annotations

from collections import Counter
from typing import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout,
                               QLabel, QLineEdit, QListWidget, QVBoxLayout)

from ...core.errors import UserError
from ...core.edits.surgery import RenameEdit

CUSTOM = "Custom (type below)"
PRESETS = {
    CUSTOM: None,
    "Strip DataParallel / DDP prefix (module.)": (r"^module\.", ""),
    "Strip torch.compile prefix (_orig_mod.)": (r"^_orig_mod\.", ""),
    "Strip Lightning prefix (model.)": (r"^model\.", ""),
}
PREVIEW_LIMIT = 200


class RenameDialog(QDialog):
    """Find / replace over tensor names, with presets and a live preview.

    Parameters
    ----------
    names
        Every tensor name of the document, in order.
    selection
        The selected tensors ("Only the N selected tensors").
    plan
        ``plan(edit)``: the ``{old: new}`` names a ``RenameEdit`` gives (raises ``UserError``).
    """

    def __init__(self, names: list[str], selection: list[str], plan: Callable, parent=None):
        super().__init__(parent)
        self.setObjectName("renameDialog")
        self.setWindowTitle("Rename tensors")
        self._names = list(names)
        self._plan = plan
        self._selection = list(selection)
        form = QFormLayout()
        self.preset = QComboBox(objectName="renamePreset")
        self.preset.addItems(list(PRESETS))
        self.pattern = QLineEdit(objectName="renamePattern", placeholderText=r"^module\.")
        self.replacement = QLineEdit(objectName="renameReplacement",
                                     placeholderText=r"empty removes the match; \1 for groups")
        self.only_selection = QCheckBox(f"Only the {len(self._selection)} selected tensors",
                                        objectName="renameOnlySelection")
        self.only_selection.setVisible(bool(self._selection)
                                       and len(self._selection) < len(self._names))
        form.addRow("Common case:", self.preset)
        form.addRow("Find (regex):", self.pattern)
        form.addRow("Replace with:", self.replacement)
        form.addRow("", self.only_selection)
        self.preview = QListWidget(objectName="renamePreview")
        self.error_label = QLabel(objectName="errorLabel", wordWrap=True)
        self.error_label.setStyleSheet("color: #b00020")
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Rename")
        self.buttons.accepted.connect(self._accept_if_valid)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Preview:"))
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        self.resize(560, 440)
        self._timer = QTimer(self, singleShot=True, interval=120, timeout=self._update_preview)
        self.preset.currentTextChanged.connect(self._preset_chosen)
        for w in (self.pattern, self.replacement):
            w.textChanged.connect(lambda _=None: self._timer.start())
        self.only_selection.toggled.connect(lambda _=None: self._timer.start())
        self._update_preview()

    def _preset_chosen(self, text: str) -> None:
        preset = PRESETS.get(text)
        if preset is not None:
            pattern, repl = preset
            self.pattern.setText(pattern)
            self.replacement.setText(repl)

    def make_edit(self) -> RenameEdit:
        if not self.pattern.text():
            raise UserError("type a regular expression to find, e.g. ^module\\.")
        targets = self._selection if self.only_selection.isChecked() else None
        return RenameEdit(self.pattern.text(), self.replacement.text(), targets)

    def _update_preview(self) -> bool:
        self.preview.clear()
        try:
            mapping = self._plan(self.make_edit())
            final = [mapping.get(n, n) for n in self._names]
            counts = Counter(final)  # linear: list.count per name froze big checkpoints
            clashes = sorted(n for n, c in counts.items() if c > 1)
            if clashes:
                raise UserError(f"several tensors would be named {clashes[0]}")
        except UserError as exc:
            self.error_label.setText(str(exc) if self.pattern.text() else "")
            self.buttons.button(QDialogButtonBox.Ok).setEnabled(False)
            return False
        for old, new in list(mapping.items())[:PREVIEW_LIMIT]:
            self.preview.addItem(f"{old}  →  {new}")
        if len(mapping) > PREVIEW_LIMIT:
            self.preview.addItem(f"… and {len(mapping) - PREVIEW_LIMIT:,} more")
        self.error_label.setText("")
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(True)
        return True

    def _accept_if_valid(self) -> None:
        self._timer.stop()
        if self._update_preview():
            self.accept()
