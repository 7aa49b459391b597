"""The initializer dialog: a ``torch.nn.init`` function with typed arguments, over one tensor, one
module or a subtree filtered by module type (like ``net.apply(fn)``), optionally with a second
initializer for the biases, or ``reset_parameters()`` for live models.

It never touches a tensor: ``make_edits()`` returns core Edits — one ``InitEdit`` for the chosen
function, plus a second one for the biases when a bias initializer is chosen, or one
``ResetParametersEdit`` — and the caller pushes them as ONE undo macro. ``targets()`` lists the
tensors the main function will change. What it knows of the document it asks an
``InitTargets`` (``app/qt/init_targets.py``) given by whoever opens it; it never holds the
document.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QSpinBox, QVBoxLayout, QWidget)

from ...core.edits import initializers as inits
from ...core.errors import UserError
from .initializer_feedback import InitializerFeedback, _head  # noqa: F401  (_head: re-exported)

LEAVE = "(leave)"
BIAS_FUNCTIONS = (LEAVE, "zeros_", "ones_", "constant_")
SCOPES = {"tensor": "This tensor", "module": "This module", "subtree": "This module and below"}


class InitializerDialog(InitializerFeedback, QDialog):
    """A ``torch.nn.init`` function (or ``reset_parameters()``) over a scope of tensors.

    Parameters
    ----------
    targets
        An ``InitTargets``: what the scopes hold and what a function can take.
    selected_full_name
        The tree's selection: a tensor, a module, or "" for the whole model.
    """

    def __init__(self, targets, selected_full_name: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("initializerDialog")
        self._targets = targets
        self._selected, self._root, is_tensor = targets.locate(selected_full_name or "")
        self.setWindowTitle(f"Initialize {self._selected or 'the whole model'}")
        self.arg_widgets: dict[str, QWidget] = {}
        self._args_box: QWidget | None = None
        self._build(is_tensor)
        self._function_changed()

    # -- layout ---------------------------------------------------------------------------------
    def _build(self, is_tensor: bool) -> None:
        target = QGroupBox("Tensors")
        tform = QFormLayout(target)
        tform.addRow("Selected:", QLabel(self._selected or "(whole model)"))
        self.scope_combo = QComboBox(objectName="scopeCombo")
        for key in (["tensor"] if is_tensor else []) + ["module", "subtree"]:
            self.scope_combo.addItem(SCOPES[key] + ("" if key == "tensor" else
                                                    f" ({self._root or 'model'})"), key)
        self.scope_combo.setCurrentIndex(0 if is_tensor else 1)
        tform.addRow("Scope:", self.scope_combo)
        self.module_type_filter = QLineEdit(objectName="moduleTypeFilter")
        self.module_types_label = QLabel(objectName="moduleTypesLabel")
        self.module_types_label.setWordWrap(True)
        tform.addRow("Module types:", self.module_type_filter)
        tform.addRow("", self.module_types_label)
        self.which_combo = QComboBox(objectName="whichCombo")
        for key, text in (("weights", "Weights (weight, weight_ih_l0, …)"),
                          ("biases", "Biases (bias, bias_ih_l0, …)"),
                          ("parameters", "All parameters"), ("all", "All tensors (buffers too)")):
            self.which_combo.addItem(text, key)
        tform.addRow("Which:", self.which_combo)

        init = QGroupBox("Initializer")
        self._init_layout = QVBoxLayout(init)
        fform = QFormLayout()
        self.function_combo = QComboBox(objectName="functionCombo")
        for name, spec in inits.REGISTRY.items():
            self.function_combo.addItem(name, name)
            self.function_combo.setItemData(self.function_combo.count() - 1,
                                            f"{spec.help} — tensors: {spec.rank_rule()}",
                                            Qt.ToolTipRole)
        fform.addRow("Function:", self.function_combo)
        self.help_label = QLabel(objectName="functionHelp")
        self.help_label.setWordWrap(True)
        fform.addRow("", self.help_label)
        self._init_layout.addLayout(fform)
        self._args_holder = QVBoxLayout()
        self._init_layout.addLayout(self._args_holder)
        seed_row = QHBoxLayout()
        self.seed_check = QCheckBox("Seed", objectName="seedCheck")
        self.seed_spin = QSpinBox(objectName="seedSpin")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setEnabled(False)
        seed_row.addWidget(self.seed_check)
        seed_row.addWidget(self.seed_spin, 1)
        self._init_layout.addLayout(seed_row)

        bias_row = QHBoxLayout()
        self.bias_function_combo = QComboBox(objectName="biasFunctionCombo")
        self.bias_function_combo.addItems(list(BIAS_FUNCTIONS))
        self.bias_value = QLineEdit("0.0", objectName="biasValue")
        self.bias_value.setPlaceholderText("value for constant_")
        bias_row.addWidget(QLabel("Then biases:"))
        bias_row.addWidget(self.bias_function_combo)
        bias_row.addWidget(self.bias_value, 1)
        self._init_layout.addLayout(bias_row)

        self.reset_check = QCheckBox("Call reset_parameters() instead",
                                     objectName="resetParametersCheck")
        self.reset_check.setVisible(self._targets.live)

        self.targets_label = QLabel(objectName="targetsLabel")
        self.targets_label.setWordWrap(True)
        self.skipped_list = QListWidget(objectName="skippedList")
        self.skipped_list.setMaximumHeight(110)
        self.error_label = QLabel(objectName="errorLabel")
        self.error_label.setStyleSheet("color: #b00020")
        self.error_label.setWordWrap(True)
        self.button_box = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons = self.button_box
        self.button_box.button(QDialogButtonBox.Ok).setText("Initialize")
        self.button_box.accepted.connect(self._accept_if_valid)
        self.button_box.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(target)
        layout.addWidget(init)
        layout.addWidget(self.reset_check)
        layout.addWidget(self.targets_label)
        self.skipped_label = QLabel("Left unchanged:")
        layout.addWidget(self.skipped_label)
        layout.addWidget(self.skipped_list)
        layout.addWidget(self.error_label)
        layout.addWidget(self.button_box)
        self.resize(540, 640)

        self.scope_combo.currentIndexChanged.connect(self._refresh)
        self.module_type_filter.textChanged.connect(self._refresh)
        self.which_combo.currentIndexChanged.connect(self._refresh)
        self.function_combo.currentIndexChanged.connect(self._function_changed)
        self.seed_check.toggled.connect(self._refresh)
        self.bias_function_combo.currentIndexChanged.connect(self._refresh)
        self.bias_value.textChanged.connect(self._refresh)
        self.reset_check.toggled.connect(self._refresh)

    def _function_changed(self) -> None:
        """Rebuild the typed argument fields for the chosen function."""
        spec = inits.function(self.function_combo.currentData())
        self.help_label.setText(f"{spec.help}. Tensors: {spec.rank_rule()}.")
        if self._args_box is not None:
            self._args_holder.removeWidget(self._args_box)
            self._args_box.setParent(None)  # out of findChild at once
            self._args_box.deleteLater()
        self._args_box = QWidget(objectName="argsForm")
        form = QFormLayout(self._args_box)
        form.setContentsMargins(0, 0, 0, 0)
        self.arg_widgets = {}
        for a in spec.args:
            form.addRow(f"{a.name}:", self._field(a))
        self._args_holder.addWidget(self._args_box)
        self._refresh()

    def _field(self, a: inits.ArgSpec) -> QWidget:
        name = f"arg_{a.name}"
        if a.type == inits.CHOICE:
            w = QComboBox(objectName=name)
            w.addItems(list(a.choices))
            if a.suggested is not None:
                w.setCurrentText(str(a.suggested))
            w.currentIndexChanged.connect(self._refresh)
        elif a.type == inits.INT:
            w = QSpinBox(objectName=name)
            w.setRange(-(2**31 - 1), 2**31 - 1)
            w.setValue(int(a.suggested if a.suggested is not None else 0))
            w.valueChanged.connect(self._refresh)
        else:  # FLOAT / GAIN: free text, so 0.02, -3, 1e-4 keep every digit the user gives
            w = QLineEdit("" if a.suggested is None else repr(float(a.suggested)), objectName=name)
            w.setPlaceholderText("required" if a.required else f"default {a.default!r}")
            w.textChanged.connect(self._refresh)
        self.arg_widgets[a.name] = w
        if a.type != inits.GAIN:
            return w
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.gain_nonlinearity = QComboBox(objectName="gainNonlinearity")
        self.gain_nonlinearity.addItem("number", None)
        for nl in inits.nonlinearities():
            self.gain_nonlinearity.addItem(f"calculate_gain('{nl}')", nl)
        self.gain_param = QLineEdit(objectName="gainParam")
        self.gain_param.setPlaceholderText("param (leaky_relu slope)")
        self.gain_value_label = QLabel(objectName="gainValueLabel")
        for widget in (w, QLabel("or"), self.gain_nonlinearity, self.gain_param,
                       self.gain_value_label):
            row.addWidget(widget)
        self.gain_nonlinearity.currentIndexChanged.connect(self._refresh)
        self.gain_param.textChanged.connect(self._refresh)
        return box

    # -- state ----------------------------------------------------------------------------------
    def function_name(self) -> str:
        return self.function_combo.currentData()

    def args(self) -> dict:
        """The argument fields as recipe data; raises UserError on text that is not a number."""
        out: dict = {}
        for a in inits.function(self.function_name()).args:
            w = self.arg_widgets[a.name]
            if a.type == inits.CHOICE:
                out[a.name] = w.currentText()
            elif a.type == inits.INT:
                out[a.name] = w.value()
            elif a.type == inits.GAIN and self.gain_nonlinearity.currentData() is not None:
                text = self.gain_param.text().strip()
                out[a.name] = {"nonlinearity": self.gain_nonlinearity.currentData(),
                               "param": _float(text, "the gain's param") if text else None}
            else:
                text = w.text().strip()
                if not text:
                    if a.required:
                        raise UserError(f"{a.name}: give a value")
                    continue
                out[a.name] = _float(text, a.name)
        return out

    def seed(self) -> int | None:
        if self.reset_check.isChecked():  # reset_parameters() takes a seed too
            return self.seed_spin.value() if self.seed_check.isChecked() else None
        takes = inits.function(self.function_name()).takes_generator
        return self.seed_spin.value() if self.seed_check.isChecked() and takes else None

    def _scope(self) -> str:
        return self.scope_combo.currentData()

    def _module_types(self) -> list[str] | None:
        """Class names the filter picks: each word is a class name, a substring or a regex."""
        names = self.module_type_filter.text().replace(",", " ").split()
        if not names or self._scope() == "tensor" or not self._targets.module_filter_available():
            return None
        found = self._targets.module_types_under(self._root, self._scope() == "subtree")
        return inits.match_module_types(names, found, self._root or "the model")

    def _select(self, which: str) -> list[str]:
        if self._scope() == "tensor":
            return [self._selected]
        return self._targets.select_tensors(self._root, self._module_types(), which,
                                            self._scope() == "subtree")

    def _bias_function(self) -> str | None:
        fn = self.bias_function_combo.currentText()
        return None if fn == LEAVE or not self.bias_function_combo.isEnabled() else fn

    def _plan(self):
        """(ok, skipped, bias_ok, bias_args) of the current settings; raises UserError."""
        fn, args = self.function_name(), self.args()
        resolved = inits.resolve_args(fn, args)
        ok, skipped = self._targets.split_applicable(
            self._select(self.which_combo.currentData()), fn, resolved)
        bias_ok, bias_args = [], {}
        bias_fn = self._bias_function()
        if bias_fn is not None:
            if bias_fn == "constant_":
                bias_args = {"val": _float(self.bias_value.text().strip(), "bias value")}
            bias_ok, bias_skipped = self._targets.split_applicable(self._select("biases"),
                                                                   bias_fn, bias_args)
            skipped += bias_skipped
        return ok, skipped, bias_ok, bias_args

    def targets(self) -> list[str]:
        """The tensors the main function will change (tied groups once), in document order."""
        try:
            return self._plan()[0]
        except UserError:
            return []

    def make_edits(self) -> list:
        """The edits to push as one undo macro; raises UserError when the settings are invalid."""
        if self.reset_check.isChecked() and self._targets.live:
            try:
                from ...core.edits.values import ResetParametersEdit
            except ImportError:
                raise UserError("reset_parameters() is not available in this build") from None
            if self.seed() is not None:
                return [inits.SeededResetEdit(self._reset_modules(), self.seed())]
            return [ResetParametersEdit(self._reset_modules())]
        ok, _skipped, bias_ok, bias_args = self._plan()
        fn = self.function_name()
        if not ok and not bias_ok:
            raise UserError(f"{fn} cannot take any of the selected tensors")
        edits = [inits.InitEdit(ok, fn, self.args(), self.seed())] if ok else []
        if bias_ok:
            edits.append(inits.InitEdit(bias_ok, self._bias_function(), bias_args))
        return edits

    def _reset_modules(self) -> list[str]:
        """Modules in scope (type filter applied) that have reset_parameters(), each once."""
        types = self._module_types() if self._scope() != "tensor" else None
        return self._targets.reset_modules(self._root, self._scope() == "subtree", types)


def _float(text: str, what: str) -> float:
    """``text`` read as core reads a float64 cell (``value_parsing``: "1e999" is refused, a typed
    "inf" kept); the error names the field."""
    import torch
    from ...core.edits.value_parsing import parse_cell_value
    try:
        float(text)
    except ValueError:
        raise UserError(f"{what} must be a number, not {text!r}") from None
    try:
        return float(parse_cell_value(text, torch.float64))
    except UserError as exc:
        raise UserError(f"{what}: {exc}") from None
