"""Open with model code: build the architecture from ``package.module:factory`` and load a
state_dict into it, so the tree shows the true hierarchy and class names."""
from __future__ import annotations

import json

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget)

from ..settings import settings


class ModelCodeDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, path: str = ""):
        super().__init__(parent)
        self.setObjectName("modelCodeDialog")
        self.setWindowTitle("Open with model code")
        stored = settings()
        self.path = QLineEdit(path, objectName="checkpointPath")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path)
        row.addWidget(browse)
        self.factory = QLineEdit(str(stored.value("modelCode/factory", "")), objectName="factory")
        self.factory.setPlaceholderText("package.module:factory   (e.g. torchvision.models:resnet18)")
        self.args = QLineEdit(str(stored.value("modelCode/args", "")), objectName="factoryArgs")
        self.args.setPlaceholderText('optional keyword arguments as JSON, e.g. {"num_classes": 10}')
        self.error = QLabel(objectName="errorLabel")
        self.error.setStyleSheet("color: #b00020")
        form = QFormLayout()
        form.addRow("Checkpoint:", row)
        form.addRow("Model factory:", self.factory)
        form.addRow("Arguments:", self.args)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self._accept_if_valid)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("The factory is called (with the arguments, if any) and the "
                                "checkpoint is loaded into the model it returns. Missing, unexpected "
                                "and mismatched keys are reported in the tree."))
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.resize(560, 220)

    def values(self) -> tuple[str, str, str | None]:
        """(checkpoint path, factory spec, JSON arguments or None)."""
        return self.path.text().strip(), self.factory.text().strip(), (self.args.text().strip() or None)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Checkpoint", self.path.text())
        if path:
            self.path.setText(path)

    def _accept_if_valid(self) -> None:
        path, factory, args = self.values()
        problem = ""
        if not path:
            problem = "choose a checkpoint"
        elif ":" not in factory:
            problem = "the factory is written package.module:function"
        elif args:
            try:
                json.loads(args)
            except json.JSONDecodeError as exc:
                problem = f"the arguments are not JSON: {exc.msg}"
        self.error.setText(problem)
        if not problem:
            stored = settings()
            stored.setValue("modelCode/factory", factory)
            stored.setValue("modelCode/args", args or "")
            self.accept()
