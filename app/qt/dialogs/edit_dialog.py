"""The edit dialog: set / add / multiply / clamp / expression, with index, mask and a preview.

It returns a plain spec and the target names (``spec()``, ``targets()``, ``make_edit()``); it never
changes a tensor itself. The preview runs the edit on a copy of the first target.
"""
from __future__ import annotations

import fnmatch

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel,
                               QLineEdit, QVBoxLayout, QWidget)

from app.core.edit_specs import (OPERATIONS, EditSpec, PreviewTooLarge, check_shapes,
                                 edit_from_spec, preview_edit)
from app.core.errors import UserError


class EditDialog(QDialog):
    def __init__(self, doc, names: list[str], title: str, parent: QWidget | None = None,
                 module_prefix: str | None = None):
        super().__init__(parent)
        self.setObjectName("editDialog")
        self.setWindowTitle(f"Edit {title}")
        self._doc = doc
        self._all_names = list(names)
        self._prefix = module_prefix
        self.changed_count: int | None = None  # elements the previewed edit changes
        self._build(title)
        self._timer = QTimer(self, singleShot=True, interval=150, timeout=self._update_preview)
        for w in (self.value, self.low, self.high, self.expression, self.index, self.mask, self.glob):
            w.textChanged.connect(self._schedule)
        self.operation.currentIndexChanged.connect(self._operation_changed)
        self._operation_changed()

    # -- layout ---------------------------------------------------------------------------------
    def _build(self, title: str) -> None:
        form = QFormLayout()
        self.target_label = QLabel(title)
        self.target_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow("Target:", self.target_label)
        self.glob = self._line("targetGlob", "*weight  (glob over names in the module)")
        self.glob.setVisible(self._prefix is not None)
        if self._prefix is not None:
            form.addRow("Tensors matching:", self.glob)
        self.match_label = QLabel()
        form.addRow("", self.match_label)
        self.operation = QComboBox(objectName="operation")
        for key, text in OPERATIONS.items():
            self.operation.addItem(text, key)
        form.addRow("Operation:", self.operation)
        self.value = self._line("value", "0.0")
        self.low, self.high = self._line("low", "minimum"), self._line("high", "maximum")
        self.expression = self._line("expression", "w * 0.5   or   torch.where(w.abs() < 5, 0, w)")
        self.index = self._line("index", "optional, e.g. [:, 0] or [0:2]")
        self.mask = self._line("mask", "optional, e.g. w.abs() >= 5")
        self._rows = {"value": ("Value:", self.value), "low": ("Minimum:", self.low),
                      "high": ("Maximum:", self.high), "expression": ("w =", self.expression)}
        for label, w in self._rows.values():
            form.addRow(label, w)
        form.addRow("Index:", self.index)
        form.addRow("Only where:", self.mask)
        self._form = form

        self.plot = pg.PlotWidget(background="w")
        self.plot.setObjectName("previewPlot")
        self.plot.setMinimumHeight(160)
        self.plot.addLegend(offset=(-10, 10))
        self._before = self.plot.plot(name="before", stepMode="center", fillLevel=0,
                                      brush=(120, 120, 120, 90), pen=pg.mkPen((90, 90, 90)))
        self._after = self.plot.plot(name="after", stepMode="center", fillLevel=0,
                                     brush=(230, 120, 20, 90), pen=pg.mkPen((210, 100, 0), width=2))
        self.changed_label = QLabel(objectName="changedLabel")
        self.error_label = QLabel(objectName="errorLabel")
        self.error_label.setStyleSheet("color: #b00020")
        self.error_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Apply")
        self.buttons.accepted.connect(self._accept_if_valid)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.plot)
        layout.addWidget(self.changed_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        self.resize(520, 560)

    def _line(self, name: str, placeholder: str) -> QLineEdit:
        w = QLineEdit(objectName=name)
        w.setPlaceholderText(placeholder)
        return w

    # -- state ----------------------------------------------------------------------------------
    def spec(self) -> EditSpec:
        return EditSpec(op=self.operation.currentData(), value=self.value.text(),
                        low=self.low.text(), high=self.high.text(), expr=self.expression.text(),
                        index=self.index.text(), mask=self.mask.text())

    def targets(self) -> list[str]:
        pattern = self.glob.text().strip() if self._prefix is not None else ""
        if not pattern:
            return list(self._all_names)
        rel = len(self._prefix) + 1 if self._prefix else 0
        return [n for n in self._all_names
                if fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(n[rel:], pattern)]

    def make_edit(self):
        return edit_from_spec(self.spec(), self.targets())

    def _operation_changed(self) -> None:
        op = self.operation.currentData()
        shown = {"set": ["value"], "add": ["value"], "mul": ["value"], "clamp": ["low", "high"],
                 "expr": ["expression"]}[op]
        for key, (_, w) in self._rows.items():
            self._form.setRowVisible(w, key in shown)
        self._schedule()

    def _schedule(self) -> None:
        self._timer.start()

    def _update_preview(self) -> None:
        """Validate and preview; returns True when the edit can be applied."""
        targets = self.targets()
        self.match_label.setText(f"{len(targets)} tensor{'s' if len(targets) != 1 else ''}"
                                 + (f": {', '.join(targets[:3])}{' …' if len(targets) > 3 else ''}"
                                    if targets else ""))
        ok, message = True, ""
        try:
            if not targets:
                raise UserError("no tensor matches")
            self.make_edit()
            name = targets[0]
            try:
                p = preview_edit(self.spec(), name, self._doc.tensor(name))
            except PreviewTooLarge as exc:  # a huge tensor can still be edited, unpreviewed
                check_shapes(self.spec(), {n: self._doc.entry(n).shape for n in targets})
                self._before.setData([0, 1], [0])
                self._after.setData([0, 1], [0])
                self.changed_label.setText(f"{exc}; the edit is checked when applied")
                self.changed_count = None
            else:
                self._show_preview(p)
                total = p.before.numel()
                self.changed_label.setText(f"{p.changed:,} of {total:,} elements change"
                                           + (f" in {name}" if len(targets) > 1 else ""))
                self.changed_count = p.changed
        except UserError as exc:
            ok, message = False, str(exc)
        except Exception as exc:  # a torch error from the user's expression
            ok, message = False, f"{type(exc).__name__}: {exc}"
        if not ok:
            self.changed_label.setText("")
            self.changed_count = None
        self.error_label.setText(message)
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(ok)
        return ok

    def _show_preview(self, p) -> None:
        b = p.before.double().flatten()
        a = p.after.double().flatten()
        both = torch.cat([b[torch.isfinite(b)], a[torch.isfinite(a)]])
        if both.numel() == 0:
            self._before.setData([0, 1], [0])
            self._after.setData([0, 1], [0])
            return
        lo, hi = float(both.min()), float(both.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, 61)
        self._before.setData(edges, np.histogram(b[torch.isfinite(b)].numpy(), edges)[0])
        self._after.setData(edges, np.histogram(a[torch.isfinite(a)].numpy(), edges)[0])

    def _accept_if_valid(self) -> None:
        self._timer.stop()
        if self._update_preview():
            self.accept()
