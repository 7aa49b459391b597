"""The tensor grid with its title, slice controls (N-d) and display settings.

``TensorView.show_tensor(name, tensor)`` shows any rank and dtype: two combo boxes pick the row
and column axes, a spin box per other axis (``sliceAxis<k>``) picks its index; by default the
last two axes are shown (as numpy prints). The grid
(``tensorGrid``) has fixed section sizes, so that a 50000 x 4096 tensor scrolls smoothly, and
copies its selection as tab-separated text (Ctrl+C).
"""
from __future__ import annotations

import torch
from PySide6.QtCore import QEvent, QItemSelectionModel, QSize, Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout, QHeaderView,
                               QLabel, QSizePolicy, QSpinBox, QTableView, QVBoxLayout, QWidget)

from ...core.model import dtypes
from ...core.model.slice2d import default_axes
from ..models.grid_model import DEFAULT_PRECISION, TensorTableModel

COPY_LIMIT = 1 << 20  # cells copied at most; a larger selection is cut to its first rows


class IndexHeader(QHeaderView):
    """A header of indices whose size hint is computed from the largest index, not by measuring
    the first and last hundred sections through the model (1000+ calls into Python after every
    model reset: 12 ms of a 50000-row grid's first paint)."""

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        if self.orientation() == Qt.Vertical:
            digits = len(str(max(0, self.count() - 1)))
            return QSize(fm.horizontalAdvance("8" * digits) + 14, self.defaultSectionSize())
        return QSize(self.defaultSectionSize(), fm.height() + 8)


class TensorGrid(QTableView):
    """QTableView tuned for huge tables; Ctrl+C copies the selection as TSV."""

    copied = Signal(str)  # a message for the status bar

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("tensorGrid")
        self.setHorizontalHeader(IndexHeader(Qt.Horizontal, self))
        self.setVerticalHeader(IndexHeader(Qt.Vertical, self))
        self.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.setWordWrap(False)
        self.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed
                             | QAbstractItemView.AnyKeyPressed)
        fm = self.fontMetrics()
        widest = fm.horizontalAdvance("-0.00000000e-00") + 14
        for header, size in ((self.verticalHeader(), fm.height() + 6),
                             (self.horizontalHeader(), widest)):
            header.setSectionResizeMode(QHeaderView.Fixed if header is self.verticalHeader()
                                        else QHeaderView.Interactive)
            header.setSectionsClickable(True)  # a click selects the row / column
            header.setMinimumSectionSize(8)
            header.setDefaultSectionSize(size)
            header.setHighlightSections(False)
        self.verticalHeader().setDefaultAlignment(Qt.AlignRight | Qt.AlignVCenter)

    def setModel(self, model) -> None:
        super().setModel(model)
        # QHeaderView asks its selection model whether each visible section is wholly selected,
        # which walks every cell of the column (50000 flags() calls into Python per section:
        # seconds after Ctrl+A). The headers get their own, empty selection models instead;
        # selecting by clicking a header still goes through the table's.
        for header in (self.horizontalHeader(), self.verticalHeader()):
            header.setSelectionModel(QItemSelectionModel(model, header))

    def event(self, event):
        if event.type() == QEvent.ShortcutOverride and event.matches(QKeySequence.Copy):
            event.accept()  # a window-wide Ctrl+C must not take the grid's copy
            return True
        return super().event(event)

    def keyPressEvent(self, event):
        if event.matches(QKeySequence.Copy):
            self.copy_selection()
            event.accept()
            return
        super().keyPressEvent(event)

    def selection_text(self, limit: int = COPY_LIMIT) -> tuple[str, bool]:
        """The selected cells as TSV (bounding box of the selection, unselected cells empty),
        read in numpy blocks; True when the selection was cut to ``limit`` cells."""
        model: TensorTableModel = self.model()
        ranges = [r for r in self.selectionModel().selection() if r.isValid()]
        if model is None or model.view2d() is None or not ranges:
            return "", False
        top, left = min(r.top() for r in ranges), min(r.left() for r in ranges)
        bottom, right = max(r.bottom() for r in ranges), max(r.right() for r in ranges)
        ncols = right - left + 1
        max_rows = max(1, limit // ncols)
        cut = bottom - top + 1 > max_rows
        bottom = min(bottom, top + max_rows - 1)
        fmt = model.format_value
        if len(ranges) == 1:
            rows = model.read_block(top, bottom + 1, left, right + 1).tolist()
            return "\n".join("\t".join(map(fmt, row)) for row in rows), cut
        cells = [[""] * ncols for _ in range(bottom - top + 1)]
        for r in ranges:
            r0, r1 = r.top(), min(r.bottom(), bottom)
            if r0 > r1:
                continue
            block = model.read_block(r0, r1 + 1, r.left(), r.right() + 1).tolist()
            for i, row in enumerate(block):
                cells[r0 - top + i][r.left() - left:r.right() - left + 1] = map(fmt, row)
        return "\n".join("\t".join(row) for row in cells), cut

    def copy_selection(self) -> str:
        text, cut = self.selection_text()
        if text:
            QGuiApplication.clipboard().setText(text)
            n = text.count("\n") + 1
            self.copied.emit(f"Copied {n} rows" + (f" (selection cut to {COPY_LIMIT:,} cells)"
                                                   if cut else ""))
        return text


class TensorView(QWidget):
    """Title, slice controls, display settings and the grid; see the module docstring."""

    message = Signal(str)  # for the status bar

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = TensorTableModel(self)
        self.grid = TensorGrid(self)
        self.grid.setModel(self.model)
        self.grid.copied.connect(self.message)
        self.name = ""
        self._spins: list[QSpinBox] = []

        self.title = QLabel("No tensor selected", self, objectName="tensorTitle")
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.title.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # long names elide
        self.row_combo = QComboBox(self, objectName="rowAxisCombo")
        self.col_combo = QComboBox(self, objectName="colAxisCombo")
        for combo in (self.row_combo, self.col_combo):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)
            combo.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)  # never cut "axis 0 (256)"
        self.row_label, self.col_label = QLabel("Rows:", self), QLabel("Columns:", self)
        self.slice_box = QWidget(self, objectName="sliceControls")
        self.slice_layout = QHBoxLayout(self.slice_box)
        self.slice_layout.setContentsMargins(0, 0, 0, 0)
        self.precision_spin = QSpinBox(self, objectName="precisionSpin", minimum=1, maximum=17,
                                       value=DEFAULT_PRECISION, prefix="digits: ")
        self.precision_spin.setToolTip("Significant digits shown for floating-point values")
        self.scientific_check = QCheckBox("Scientific", self, objectName="scientificCheck")
        self.heatmap_check = QCheckBox("Heatmap", self, objectName="heatmapCheck")
        self.heatmap_check.setToolTip("Colour cells: blue below zero, red above, white at zero")
        self.raw_check = QCheckBox("Raw integers", self, objectName="rawIntegersCheck")
        self.raw_check.setToolTip("Quantized tensors: show the stored integers instead of the "
                                  "values they stand for (scale and zero point in the title)")
        self.raw_check.setVisible(False)

        # Two rows: display settings beside the title, the axis choice (rank >= 2) below, so
        # a 5-d tensor's spin boxes never squeeze the docks beside the grid.
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        for w in (self.precision_spin, self.scientific_check, self.heatmap_check, self.raw_check):
            top.addWidget(w)
        bar = QHBoxLayout()
        for w in (self.row_label, self.row_combo, self.col_label, self.col_combo, self.slice_box):
            bar.addWidget(w)
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(bar)
        layout.addWidget(self.grid, 1)

        self.row_combo.currentIndexChanged.connect(lambda _: self._axis_changed(self.row_combo))
        self.col_combo.currentIndexChanged.connect(lambda _: self._axis_changed(self.col_combo))
        self.precision_spin.valueChanged.connect(self.model.set_precision)
        self.scientific_check.toggled.connect(self.model.set_scientific)
        self.heatmap_check.toggled.connect(self.model.set_heatmap)
        self.raw_check.toggled.connect(self.model.set_raw)
        self._set_axis_controls_visible(False)

    # -- public API ----------------------------------------------------------------------------
    @property
    def tensor(self) -> torch.Tensor | None:
        return self.model.tensor

    def show_tensor(self, name: str, tensor: torch.Tensor) -> None:
        self.name = name
        shape = "×".join(map(str, tensor.shape)) or "scalar"
        dtype = dtypes.dtype_name(tensor.dtype)
        extra = dtypes.describe(tensor)
        self.title.setText(f"<b>{name}</b> &nbsp; {shape} &nbsp; {dtype} &nbsp; "
                           f"({tensor.numel():,} elements)" + (f" &nbsp; {extra}" if extra else ""))
        self.title.setToolTip(f"{name}  shape {tuple(tensor.shape)}  {dtype}"
                              + (f"\n{extra}" if extra else ""))
        self._build_slice_controls(tensor)
        self.raw_check.blockSignals(True)
        self.raw_check.setChecked(False)
        self.raw_check.blockSignals(False)
        self.raw_check.setVisible(tensor.is_quantized)
        self.model.set_tensor(tensor, *default_axes(tuple(tensor.shape)))
        self.grid.scrollToTop()

    def clear(self) -> None:
        self.name = ""
        self.title.setText("No tensor selected")
        self.title.setToolTip("")
        self._build_slice_controls(None)
        self.raw_check.setVisible(False)
        self.model.set_tensor(None)

    def refresh(self) -> None:
        """The tensor was edited in place: read it again."""
        self.model.invalidate()

    def set_heat_scale(self, scale: float | None) -> None:
        self.model.set_heat_scale(scale)

    def goto_index(self, index) -> None:
        """Show the cell at ``index`` (a full index into the tensor): set the fixed axes,
        scroll there and select it."""
        t = self.model.tensor
        if t is None:
            return
        index = (index,) if isinstance(index, int) else tuple(int(i) for i in index)
        if len(index) != t.dim() or any(not 0 <= i < n for i, n in zip(index, t.shape)):
            return
        if t.dim() == 0:
            row, col = 0, 0
        elif t.dim() == 1:
            row, col = index[0], 0
        else:
            ra, ca = self.model.row_axis, self.model.col_axis
            for spin in self._spins:
                axis = spin.property("axis")
                if axis not in (ra, ca):
                    spin.blockSignals(True)
                    spin.setValue(index[axis])
                    spin.blockSignals(False)
            self._apply_slice()
            row, col = index[ra], index[ca]
        qi = self.model.index(row, col)
        self.grid.scrollTo(qi, QAbstractItemView.PositionAtCenter)
        self.grid.selectionModel().setCurrentIndex(qi, QItemSelectionModel.ClearAndSelect)
        self.grid.setFocus()

    # -- slice controls ------------------------------------------------------------------------
    def _set_axis_controls_visible(self, on: bool) -> None:
        for w in (self.row_label, self.row_combo, self.col_label, self.col_combo, self.slice_box):
            w.setVisible(on)

    def _build_slice_controls(self, tensor: torch.Tensor | None) -> None:
        for spin in self._spins:
            spin.setParent(None)
            spin.deleteLater()
        self._spins = []
        nd = tensor.dim() if tensor is not None else 0
        for combo in (self.row_combo, self.col_combo):
            combo.blockSignals(True)
            combo.clear()
            for a in range(nd if nd >= 2 else 0):
                combo.addItem(f"axis {a} ({tensor.shape[a]})", a)
            combo.blockSignals(False)
        self._set_axis_controls_visible(nd >= 2)
        if nd < 2:
            return
        rows, cols = default_axes(tuple(tensor.shape))
        for combo, axis in ((self.row_combo, rows), (self.col_combo, cols)):
            combo.blockSignals(True)
            combo.setCurrentIndex(axis)
            combo.blockSignals(False)
        for a in range(nd):
            spin = QSpinBox(self.slice_box, objectName=f"sliceAxis{a}")
            spin.setRange(0, max(0, tensor.shape[a] - 1))
            spin.setPrefix(f"axis {a}: ")
            spin.setSuffix(f" / {tensor.shape[a]}")
            spin.setProperty("axis", a)
            spin.setKeyboardTracking(False)
            spin.setToolTip(f"Index along axis {a}")
            spin.valueChanged.connect(self._apply_slice)
            self.slice_layout.addWidget(spin)
            self._spins.append(spin)
        self._update_spin_visibility()

    def _axis_changed(self, combo: QComboBox) -> None:
        other = self.col_combo if combo is self.row_combo else self.row_combo
        a, b = combo.currentData(), other.currentData()
        if a is None or b is None:
            return
        if a == b:  # picking the other combo's axis swaps the two
            prev = self.model.row_axis if combo is self.row_combo else self.model.col_axis
            other.blockSignals(True)
            other.setCurrentIndex(other.findData(prev))
            other.blockSignals(False)
        self._update_spin_visibility()
        self._apply_slice()

    def _update_spin_visibility(self) -> None:
        used = (self.row_combo.currentData(), self.col_combo.currentData())
        for spin in self._spins:
            spin.setVisible(spin.property("axis") not in used)

    def _apply_slice(self, *_):
        if self.model.tensor is None or self.model.tensor.dim() < 2:
            return
        fixed = {spin.property("axis"): spin.value() for spin in self._spins}
        self.model.set_slice(self.row_combo.currentData(), self.col_combo.currentData(), fixed)
