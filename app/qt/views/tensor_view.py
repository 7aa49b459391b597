"""The tensor grid with its title, slice controls (N-d), wrap controls (1-D) and display settings.

``TensorView.show_tensor(name, tensor)`` shows any rank and dtype: two combo boxes pick the row
and column axes, a spin box per other axis (``sliceAxis<k>``) picks its index; by default the
last two axes are shown (as numpy prints), or the two largest when one of them has size 1. A
vector longer than ``WRAP_MIN`` is wrapped into rows (``wrapCheck``, ``wrapWidthCombo``: 8 to 64
per row, or as many as fit the width). The grid (``tensorGrid``) has fixed section sizes, so
that a 50000 x 4096 tensor scrolls smoothly, and copies its selection as tab-separated text
(Ctrl+C). Digits, scientific, heatmap and wrap are kept between runs (``grid_settings``).
"""
from __future__ import annotations

import torch
from PySide6.QtCore import QItemSelectionModel, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout, QLabel,
                               QSizePolicy, QSpinBox, QVBoxLayout, QWidget)

from ...core.model import dtypes
from ...core.model.slice2d import default_axes
from ..models.grid_model import TensorTableModel
from . import grid_settings
from .grid_window_controls import GridWindowControls, index_spin
from .next_turn import NextTurn
from .tensor_grid import COPY_LIMIT, IndexHeader, TensorGrid
from .tensor_title import TensorTitle

__all__ = ["CELL_PAD", "COPY_LIMIT", "IndexHeader", "NICE_WIDTHS", "TensorGrid", "TensorView",
           "WRAP_MIN", "WRAP_WIDTHS", "auto_wrap"]

WRAP_MIN = 32         # a vector this short stays one column: it needs no wrapping
WRAP_WIDTHS = (8, 10, 16, 32, 64)
#: widths "auto" picks from beyond 8 per row: the largest that fits, so row starts are easy to read
NICE_WIDTHS = (8, 10, 16, 20, 25, 32, 40, 50, 64, 100, 128, 200, 256)
CELL_PAD = 14         # pixels around a cell's text


def auto_wrap(room: int, cell: int) -> int:
    """Elements per row for ``room`` pixels and cells ``cell`` pixels wide."""
    fit = max(1, room // max(1, cell))
    return fit if fit <= NICE_WIDTHS[0] else max(w for w in NICE_WIDTHS if w <= fit)


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
        self._heat_scale: float | None = None
        self._heat_later = NextTurn(self._apply_heat_scale, self)  # set_heat_scale
        #: the widget Tab reaches after the grid (the window sets the statistics panel)
        self.tab_next: QWidget | None = None

        self.title = TensorTitle("No tensor selected", self)
        self.row_combo = QComboBox(self, objectName="rowAxisCombo")
        self.col_combo = QComboBox(self, objectName="colAxisCombo")
        for combo in (self.row_combo, self.col_combo):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)
            combo.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)  # never cut "axis 0 (256)"
        self.row_label, self.col_label = QLabel("Rows:", self), QLabel("Columns:", self)
        self.slice_box = QWidget(self, objectName="sliceControls")
        self.slice_layout = QHBoxLayout(self.slice_box)
        self.slice_layout.setContentsMargins(0, 0, 0, 0)
        self.wrap_check = QCheckBox("Wrap", self, objectName="wrapCheck")
        self.wrap_check.setToolTip(f"Show a vector (of more than {WRAP_MIN} values) in rows; the "
                                   "row header is the index of the row's first value")
        self.wrap_combo = QComboBox(self, objectName="wrapWidthCombo")
        self.wrap_combo.addItem("auto per row", 0)
        for w in WRAP_WIDTHS:
            self.wrap_combo.addItem(f"{w} per row", w)
        self.wrap_combo.setToolTip("Values per row: a fixed number, or as many as fit the width")
        self.wrap_combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.precision_spin = QSpinBox(self, objectName="precisionSpin", minimum=0, maximum=17,
                                       value=0, prefix="digits: ")
        self.precision_spin.setSpecialValueText("digits: auto")
        self.precision_spin.setToolTip("Significant digits shown for floating-point values; "
                                       "auto: as many as the dtype holds (bfloat16 4, float16 5, "
                                       "float32 7, float64 10)")
        self.scientific_check = QCheckBox("Scientific", self, objectName="scientificCheck")
        self.heatmap_check = QCheckBox("Heatmap", self, objectName="heatmapCheck")
        self.heatmap_check.setToolTip("Colour cells: blue below zero, red above, white at zero")
        self.raw_check = QCheckBox("Raw integers", self, objectName="rawIntegersCheck")
        self.raw_check.setToolTip("Quantized tensors: show the stored integers instead of the "
                                  "values they stand for (scale and zero point in the title)")
        self.raw_check.setVisible(False)

        # The title has its own row (a long name elides, shape and dtype stay); below it the
        # display settings, then the axis choice (N-d) or the wrap controls (1-D), so that a
        # 5-d tensor's spin boxes never squeeze the docks beside the grid.
        settings_row = QHBoxLayout()
        for w in (self.precision_spin, self.scientific_check, self.heatmap_check, self.raw_check,
                  self.wrap_check, self.wrap_combo):
            settings_row.addWidget(w)
        settings_row.addStretch(1)
        bar = QHBoxLayout()
        for w in (self.row_label, self.row_combo, self.col_label, self.col_combo, self.slice_box):
            bar.addWidget(w)
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addLayout(settings_row)
        layout.addLayout(bar)
        #: what the grid cannot show whole: a note, and where a too-long axis's window starts
        self.window_controls = GridWindowControls(self.model, self)
        layout.addWidget(self.window_controls)
        layout.addWidget(self.grid, 1)
        self._chain_tab_order()

        self._restore_settings()
        self.row_combo.currentIndexChanged.connect(lambda _: self._axis_changed(self.row_combo))
        self.col_combo.currentIndexChanged.connect(lambda _: self._axis_changed(self.col_combo))
        self.precision_spin.valueChanged.connect(self._precision_changed)
        self.scientific_check.toggled.connect(self._scientific_changed)
        self.heatmap_check.toggled.connect(self.model.set_heatmap)
        self.raw_check.toggled.connect(self._raw_changed)
        self.wrap_check.toggled.connect(self._update_wrap)
        self.wrap_combo.currentIndexChanged.connect(self._update_wrap)
        # what the user changes is kept for the next run (not what a flow sets, e.g. the
        # heatmap of a difference)
        self.precision_spin.valueChanged.connect(
            lambda v: grid_settings.save(grid_settings.DIGITS, v))
        self.scientific_check.clicked.connect(
            lambda on: grid_settings.save(grid_settings.SCIENTIFIC, on))
        self.heatmap_check.clicked.connect(lambda on: grid_settings.save(grid_settings.HEATMAP, on))
        self.wrap_check.clicked.connect(lambda on: grid_settings.save(grid_settings.WRAP, on))
        self.wrap_combo.activated.connect(
            lambda _: grid_settings.save(grid_settings.WRAP_WIDTH, self.wrap_combo.currentData()))
        self.grid.resized.connect(self._grid_resized)
        self._set_axis_controls_visible(False)
        self._set_wrap_controls_visible(None)

    def _chain_tab_order(self) -> None:
        """Tab walks the controls as laid out: settings, axes and slice spin boxes (or wrap),
        the grid, then ``tab_next`` (again after the spin boxes are made for a new tensor: new
        widgets join the end of the window's chain)."""
        chain = [self.precision_spin, self.scientific_check, self.heatmap_check, self.raw_check,
                 self.wrap_check, self.wrap_combo, self.row_combo, self.col_combo, *self._spins,
                 self.grid] + ([self.tab_next] if self.tab_next is not None else [])
        for a, b in zip(chain, chain[1:]):
            QWidget.setTabOrder(a, b)

    def _restore_settings(self) -> None:
        kept = grid_settings.load()
        self.precision_spin.setValue(kept[grid_settings.DIGITS])
        self.model.set_precision(kept[grid_settings.DIGITS])
        self.scientific_check.setChecked(kept[grid_settings.SCIENTIFIC])
        self.model.set_scientific(kept[grid_settings.SCIENTIFIC])
        self.heatmap_check.setChecked(kept[grid_settings.HEATMAP])
        self.model.set_heatmap(kept[grid_settings.HEATMAP])
        self.wrap_check.setChecked(kept[grid_settings.WRAP])
        self.wrap_combo.setCurrentIndex(max(0, self.wrap_combo.findData(
            kept[grid_settings.WRAP_WIDTH])))

    # -- public API ----------------------------------------------------------------------------
    @property
    def tensor(self) -> torch.Tensor | None:
        return self.model.tensor

    def show_tensor(self, name: str, tensor: torch.Tensor) -> None:
        """Show ``tensor``: only the blocks on screen are read (never the whole tensor)."""
        self._heat_later.stop()  # the last tensor's
        self.name = name
        shape = "×".join(map(str, tensor.shape)) or "scalar"
        dtype = dtypes.dtype_name(tensor.dtype)
        self.title.set_title(name, f"{shape}  {dtype}",
                             (f"({tensor.numel():,} elements)", dtypes.describe(tensor)))
        self._build_slice_controls(tensor)
        self.raw_check.blockSignals(True)
        self.raw_check.setChecked(False)
        self.raw_check.blockSignals(False)
        self.raw_check.setVisible(tensor.is_quantized)
        self._set_wrap_controls_visible(tensor)
        self.model.set_tensor(tensor, *default_axes(tuple(tensor.shape)), wrap=0)
        self._fit_cells()
        self.model.set_wrap(self._wrap_width())
        self.grid.scrollToTop()
        # the headers' new sizes now, not on a timer after the first paint: that paint would
        # be thrown away, and the grid painted twice
        self.grid.executeDelayedItemsLayout()
        if self.model.limit_note():
            self.message.emit(self.model.limit_note())

    def clear(self) -> None:
        self._heat_later.stop()
        self.name = ""
        self.title.setText("No tensor selected")
        self.title.setToolTip("")
        self._build_slice_controls(None)
        self.raw_check.setVisible(False)
        self._set_wrap_controls_visible(None)
        self.model.set_tensor(None)

    def refresh(self) -> None:
        """The tensor was edited in place: read it again."""
        self.model.invalidate()

    def set_heat_scale(self, scale: float | None) -> None:
        """The heatmap's colour scale (e.g. from exact statistics), applied on a later turn of
        the event loop: its repaint of the grid must not join the statistics' own paint."""
        self._heat_scale = scale
        self._heat_later.start()

    def _apply_heat_scale(self) -> None:
        self.model.set_heat_scale(self._heat_scale)

    def goto_index(self, index) -> None:
        """Show the cell at ``index`` (a full index into the tensor): set the fixed axes,
        scroll there and select it."""
        t = self.model.tensor
        if t is None:
            return
        index = (index,) if isinstance(index, int) else tuple(int(i) for i in index)
        if len(index) != t.dim() or any(not 0 <= i < n for i, n in zip(index, t.shape)):
            return
        if t.dim() < 2:
            self.model.show_index(index)
            row, col = self.model.cell_of(index)
        else:
            ra, ca = self.model.row_axis, self.model.col_axis
            for spin in self._spins:
                axis = spin.property("axis")
                if axis not in (ra, ca):
                    spin.blockSignals(True)
                    spin.setValue(index[axis])
                    spin.blockSignals(False)
            self._apply_slice()
            self.model.show_index(index)
            row, col = self.model.cell_of(index)
        qi = self.model.index(row, col)
        self.grid.scrollTo(qi, QAbstractItemView.PositionAtCenter)
        self.grid.selectionModel().setCurrentIndex(qi, QItemSelectionModel.ClearAndSelect)
        self.grid.setFocus()

    # -- display settings ----------------------------------------------------------------------
    def _precision_changed(self, digits: int) -> None:
        self.model.set_precision(digits)
        self._fit_cells()

    def _scientific_changed(self, on: bool) -> None:
        self.model.set_scientific(on)
        self._fit_cells()

    def _raw_changed(self, on: bool) -> None:
        self.model.set_raw(on)
        self._fit_cells()

    def cell_width(self) -> int:
        """Pixels a column takes for the shown dtype at the current digits."""
        fm = self.grid.fontMetrics()
        return fm.horizontalAdvance("8" * self.model.cell_chars()) + CELL_PAD

    def _fit_cells(self) -> None:
        self.grid.horizontalHeader().setDefaultSectionSize(self.cell_width())
        if self.model.wrap and not self.wrap_combo.currentData():
            self._update_wrap()  # auto: as many per row as now fit

    # -- wrapping a vector into rows -----------------------------------------------------------
    def _set_wrap_controls_visible(self, t: torch.Tensor | None) -> None:
        """Shown for a vector; enabled when it is long enough to wrap."""
        for w in (self.wrap_check, self.wrap_combo):
            w.setVisible(t is not None and t.dim() == 1)
        short = t is not None and t.dim() == 1 and t.shape[0] <= WRAP_MIN
        self.wrap_check.setEnabled(not short)
        self.wrap_combo.setEnabled(not short and self.wrap_check.isChecked())

    def _wrap_width(self) -> int:
        """Elements per row for the shown tensor: 0 unless it is a vector to wrap."""
        t = self.model.tensor
        if t is None or t.dim() != 1 or t.shape[0] <= WRAP_MIN or not self.wrap_check.isChecked():
            return 0
        fixed = self.wrap_combo.currentData()
        if fixed:
            return fixed
        # from the grid's own width, not the viewport's, which a pending layout may not have
        # updated yet: less the row header (as IndexHeader sizes it) and a scroll bar
        grid = self.grid
        digits = len(str(max(0, int(t.shape[0]) - 1)))
        header = grid.verticalHeader().fontMetrics().horizontalAdvance("8" * digits) + 14
        room = grid.width() - 2 * grid.frameWidth() - header \
            - grid.verticalScrollBar().sizeHint().width()
        return auto_wrap(room, self.cell_width())

    def _update_wrap(self, *_) -> None:
        t = self.model.tensor
        self.wrap_combo.setEnabled(self.wrap_check.isChecked() and self.wrap_check.isEnabled())
        if t is None or t.dim() != 1:
            return
        width = self._wrap_width()
        if width == self.model.wrap:
            return
        current = self.grid.currentIndex()
        keep = self.model.tensor_index(current.row(), current.column()) \
            if current.isValid() else None
        self.model.set_wrap(width)
        if keep:
            row, col = self.model.cell_of(keep)
            self.grid.setCurrentIndex(self.model.index(row, col))

    def _grid_resized(self) -> None:
        if self.model.wrap and not self.wrap_combo.currentData():
            self._update_wrap()

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
            spin = index_spin(self.slice_box, tensor.shape[a], f"sliceAxis{a}")
            spin.setPrefix(f"axis {a}: ")
            spin.setSuffix(f" / {tensor.shape[a]}")
            spin.setProperty("axis", a)
            spin.setToolTip(f"Index along axis {a}")
            spin.valueChanged.connect(self._apply_slice)
            self.slice_layout.addWidget(spin)
            self._spins.append(spin)
        self._update_spin_visibility()
        self._chain_tab_order()

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
        for spin in self._spins:  # an axis of size 1 has one index: nothing to pick
            spin.setVisible(spin.property("axis") not in used and spin.maximum() > 0)

    def _apply_slice(self, *_):
        if self.model.tensor is None or self.model.tensor.dim() < 2:
            return
        fixed = {spin.property("axis"): int(spin.value()) for spin in self._spins}
        self.model.set_slice(self.row_combo.currentData(), self.col_combo.currentData(), fixed)
