"""Add a parameter or buffer to a live module: name, shape, dtype, initializer, persistence.

The name is checked as ``register_parameter`` / ``register_buffer`` check it, with their
messages, while it is typed (a ``validate`` callback given by whoever opens it); OK stays
disabled until everything is valid. The dialog returns a core ``AddTensorEdit`` and never holds
the module itself.
"""
from __future__ import annotations

from typing import Callable

import torch
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout,
                               QLabel, QLineEdit, QVBoxLayout, QWidget)

from ...core.errors import UserError
from ...core.edits.initializers import check_applicable
from ...core.edits.registration import AddTensorEdit
from ...core.model.tensor_entry import BUFFER, PARAMETER

DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int8", "uint8", "bool")
INITS = ("zeros_", "ones_", "normal_", "uniform_", "xavier_uniform_", "xavier_normal_",
         "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "trunc_normal_")
MAX_DIMS = 8


def parse_shape(text: str) -> tuple[int, ...]:
    """``"3, 4"`` / ``"3x4"`` / ``"(3, 4)"`` / ``""`` (a scalar) -> a shape."""
    cleaned = text.strip().strip("()[]").replace("×", ",").replace("x", ",")
    parts = [p.strip() for p in cleaned.split(",") if p.strip()]
    if len(parts) > MAX_DIMS:
        raise UserError(f"at most {MAX_DIMS} dimensions")
    shape = []
    for p in parts:
        if not p.isdigit() or len(p) > 12:
            raise UserError(f"{p!r} is not a size (a whole number ≥ 0)")
        shape.append(int(p))
    return tuple(shape)


class AddParameterDialog(QDialog):
    """Name, kind, shape, dtype and initializer of a new tensor on one module.

    Parameters
    ----------
    module_path
        The module's dotted name ("" for the model itself).
    module_label
        What the window title calls it (its path, or its class name for the model).
    validate
        ``validate(name, kind)``: why ``register_parameter`` / ``register_buffer`` would refuse
        ``name``, or an empty answer when it would not.
    """

    def __init__(self, module_path: str, module_label: str, validate: Callable,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("addParameterDialog")
        self.setWindowTitle(f"Add to {module_label}")
        self.module_path, self._validate_name = module_path, validate
        self.name_edit = QLineEdit(self, objectName="parameterName")
        self.kind_combo = QComboBox(self, objectName="parameterKind")
        self.kind_combo.addItems([PARAMETER, BUFFER])
        self.shape_edit = QLineEdit(self, objectName="parameterShape")
        self.shape_edit.setPlaceholderText("e.g. 8, 4   (empty: a scalar)")
        self.dtype_combo = QComboBox(self, objectName="parameterDtype")
        self.dtype_combo.addItems(DTYPES)
        self.init_combo = QComboBox(self, objectName="parameterInit")
        self.init_combo.addItems(INITS)
        self.seed_edit = QLineEdit(self, objectName="parameterSeed")
        self.seed_edit.setPlaceholderText("none")
        self.persistent = QCheckBox("persistent (in state_dict)", self, objectName="parameterPersistent")
        self.persistent.setChecked(True)
        self.error = QLabel("", self, objectName="parameterError")
        self.error.setStyleSheet("color: #b00020;")
        self.error.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("Kind", self.kind_combo)
        form.addRow("Shape", self.shape_edit)
        form.addRow("Dtype", self.dtype_combo)
        form.addRow("Initializer", self.init_combo)
        form.addRow("Seed", self.seed_edit)
        form.addRow("", self.persistent)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.buttons.accepted.connect(self._accept_if_valid)
        self.buttons.rejected.connect(self.reject)
        for w in (self.name_edit, self.shape_edit, self.seed_edit):
            w.textChanged.connect(self._validate)
        for c in (self.kind_combo, self.dtype_combo, self.init_combo):
            c.currentIndexChanged.connect(self._validate)
        self._validate()

    @property
    def ok_button(self):
        return self.buttons.button(QDialogButtonBox.Ok)

    def make_edit(self) -> AddTensorEdit:
        """The edit the fields describe; UserError says what is wrong."""
        kind = self.kind_combo.currentText()
        name = self.name_edit.text()
        problem = self._validate_name(name, kind)
        if problem:
            raise UserError(problem)
        seed_text = self.seed_edit.text().strip()
        if seed_text and not (seed_text.isdigit() and len(seed_text) < 20):
            raise UserError(f"the seed {seed_text!r} is not a whole number ≥ 0")
        dtype = getattr(torch, self.dtype_combo.currentText())
        init = self.init_combo.currentText()
        if not (dtype.is_floating_point or dtype.is_complex) and init not in ("zeros_", "ones_"):
            raise UserError(f"{init} fills floating point tensors only; use zeros_ or ones_")
        shape = parse_shape(self.shape_edit.text())
        why = check_applicable(init, torch.empty(shape, dtype=dtype, device="meta"), name=name)
        if why:
            raise UserError(why)
        return AddTensorEdit(self.module_path, name, shape, dtype,
                             kind=kind, init=init, persistent=self.persistent.isChecked(),
                             seed=int(seed_text) if seed_text else None)

    def _validate(self, *_) -> bool:
        self.persistent.setEnabled(self.kind_combo.currentText() == BUFFER)
        try:
            self.make_edit()
        except UserError as exc:
            self.error.setText(str(exc))
            self.ok_button.setEnabled(False)
            return False
        self.error.setText("")
        self.ok_button.setEnabled(True)
        return True

    def _accept_if_valid(self) -> None:
        if self._validate():
            self.accept()
