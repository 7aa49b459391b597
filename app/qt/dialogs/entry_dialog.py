"""Small dialogs for one scalar entry (``entryDialog``) and safetensors ``__metadata__``
(``metadataDialog``). They only read and check text; the flow (entry_flows.py) pushes the edit."""
from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout,
                               QLabel, QLineEdit, QVBoxLayout)

from ...core.edits.entries import KINDS, MAX_KEY, MAX_TEXT, brief, parse_value
from ...core.errors import UserError


def _error_and_buttons(dialog: QDialog) -> tuple[QLabel, QDialogButtonBox]:
    """The red one-line reason under a form, and OK / Cancel wired to the dialog."""
    error = QLabel("", dialog, objectName="errorLabel")
    error.setStyleSheet("color: #b00020")
    error.setWordWrap(True)
    buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, dialog)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return error, buttons


class EntryDialog(QDialog):
    """Shows ``name``'s current value and type; ``value`` is the parsed new value after OK.
    ``text`` is the value's text (``editable_text``: refused before when too long)."""

    def __init__(self, name: str, old, kind: str, text: str, parent=None):
        super().__init__(parent)
        self.setObjectName("entryDialog")
        self.setWindowTitle("Edit Value")
        self.name, self.value = name, None
        self.current = QLabel(f"{brief(name, 80)}\nNow: {brief(old, 80)} ({kind})", self,
                              objectName="entryCurrent")
        self.type_combo = QComboBox(self, objectName="entryType")
        self.type_combo.addItems(list(KINDS))
        self.type_combo.setCurrentText(kind)
        self.edit = QLineEdit(text, self, objectName="entryValue")
        self.edit.setMaxLength(MAX_TEXT)
        self.error, self.buttons = _error_and_buttons(self)
        form = QFormLayout()
        form.addRow("Type", self.type_combo)
        form.addRow("Value", self.edit)
        layout = QVBoxLayout(self)
        layout.addWidget(self.current)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.edit.textChanged.connect(self._check)
        self.type_combo.currentTextChanged.connect(self._check)
        self.edit.selectAll()
        self.edit.setFocus()
        self._check()

    def parsed(self):
        return parse_value(self.edit.text(), self.type_combo.currentText(), self.name)

    def _check(self, *_):
        try:
            self.parsed()
        except UserError as exc:
            self.error.setText(str(exc))
            self.buttons.button(QDialogButtonBox.Ok).setEnabled(False)
            return
        self.error.setText("")
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(True)

    def accept(self) -> None:
        try:
            self.value = self.parsed()
        except UserError as exc:
            self.error.setText(str(exc))
            return
        super().accept()


class MetadataDialog(QDialog):
    """Pick or type a ``__metadata__`` key, then give its text or tick Remove."""

    def __init__(self, metadata: dict[str, str], parent=None):
        super().__init__(parent)
        self.setObjectName("metadataDialog")
        self.setWindowTitle("Edit Metadata")
        self.metadata = dict(metadata)
        self.key, self.value = "", None
        self.key_combo = QComboBox(self, objectName="metadataKey")
        self.key_combo.setEditable(True)
        self.key_combo.addItems(list(self.metadata))
        self.key_combo.lineEdit().setMaxLength(MAX_KEY)
        self.edit = QLineEdit(self, objectName="metadataValue")
        self.edit.setMaxLength(MAX_TEXT)
        self.remove = QCheckBox("Remove this key", self, objectName="metadataRemove")
        self.error, self.buttons = _error_and_buttons(self)
        form = QFormLayout()
        form.addRow("Key", self.key_combo)
        form.addRow("Value", self.edit)
        form.addRow("", self.remove)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"__metadata__: {len(self.metadata)} key"
                                f"{'s' if len(self.metadata) != 1 else ''}", self))
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.key_combo.currentTextChanged.connect(self._key_changed)
        self.remove.toggled.connect(self._check)
        self.edit.textChanged.connect(self._check)
        self._key_changed(self.key_combo.currentText())

    def _key_changed(self, key: str) -> None:
        if key in self.metadata:
            self.edit.setText(self.metadata[key][:MAX_TEXT])
        self.remove.setEnabled(key in self.metadata)
        if key not in self.metadata:
            self.remove.setChecked(False)
        self._check()

    def _problem(self) -> str:
        key = self.key_combo.currentText()
        if not key:
            return "Type a key"
        if self.remove.isChecked():
            return ""
        if len(self.metadata.get(key, "")) > MAX_TEXT:
            return f"This value is longer than {MAX_TEXT:,} characters: it can only be removed"
        if self.metadata.get(key) == self.edit.text():
            return "The value is unchanged"
        return ""

    def _check(self, *_) -> None:
        problem = self._problem()
        self.error.setText(problem)
        self.edit.setEnabled(not self.remove.isChecked())
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(not problem)

    def accept(self) -> None:
        if self._problem():
            return
        self.key = self.key_combo.currentText()
        self.value = None if self.remove.isChecked() else self.edit.text()
        super().accept()
