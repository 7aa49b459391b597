"""A table model over a 2-D view of a tensor of any rank and dtype, read in numpy blocks.

Rank 0 shows one cell, rank 1 one column (rows = index) or, with ``set_wrap(w)``, rows of ``w``
elements (the row header is the index of the row's first element, the short last row's missing
cells are empty and disabled), rank >= 2 two chosen axes as rows and columns with fixed indices
for the others. Cells are read a block at a time through the core's
``Slice2D`` (every dtype and layout as numpy values: fp8/bf16 as float32, quantized dequantized or,
with ``set_raw(True)``, its stored integers, sparse densified one block at a time, expanded
tensors never materialised) and kept in a small cache, so a screen costs a handful of tensor
reads, never one per cell, and nothing bigger than a block is read on selection (the heatmap's
scale grows with the blocks read until ``set_heat_scale`` gives the exact one).
``data(index)`` is the displayed text. Counts stay within what Qt can hold (``grid_limits``): a
vector too long for one column is wrapped, an axis too long is shown through a window.

Digits: by default as many significant digits as the dtype holds (``auto_digits``: bfloat16 4,
float16 5, float32 7, float64 10, integers exact); ``set_precision(n)`` overrides, 0 is "auto".
With the heatmap on, the text of a coloured cell is black or white, whichever reads on the cell's
colour (``text_on``), so it stays readable in a dark palette.

Editing: ``tensor_index(row, col)`` maps a cell to its full index in the tensor. With a
``cell_editor(index_tuple, text) -> error or None`` set, cells are editable and ``setData`` hands
the typed text to it (the window turns it into an undoable core edit); a refusal is emitted as
``editRefused(message)`` and ``setData`` returns False: the model never shows a message box.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal

from ...core.model import dtypes
from ...core.model.slice2d import Slice2D
from .grid_limits import GridLimits
from .grid_format import (AUTO_PRECISION, BAD_BG, BAD_FG, DEFAULT_PRECISION, DTYPE_DIGITS,
                          FP8_DIGITS, INT_CHARS, LUT, LUT_TEXT, OTHER_DIGITS, QUANTIZED_DIGITS,
                          GridFormatting, auto_digits, palette_lut, text_on)

__all__ = ["AUTO_PRECISION", "BAD_BG", "BAD_FG", "BLOCK_COLS", "BLOCK_ROWS", "DEFAULT_PRECISION",
           "DTYPE_DIGITS", "EXACT_SCALE_LIMIT", "FP8_DIGITS", "INT_CHARS", "LUT", "LUT_TEXT",
           "MAX_BLOCKS", "OTHER_DIGITS", "QUANTIZED_DIGITS", "TensorTableModel", "auto_digits",
           "numpy_block", "palette_lut", "text_on"]

BLOCK_ROWS, BLOCK_COLS = 256, 64
MAX_BLOCKS = 48                 # about 800k cached cells
EXACT_SCALE_LIMIT = BLOCK_ROWS * BLOCK_COLS  # heatmap scale from the whole tensor up to one block

DISPLAY, EDIT = int(Qt.DisplayRole.value), int(Qt.EditRole.value)
TOOLTIP = int(Qt.ToolTipRole.value)
ALIGN, BACKGROUND = int(Qt.TextAlignmentRole.value), int(Qt.BackgroundRole.value)
FOREGROUND = int(Qt.ForegroundRole.value)
RIGHT = int((Qt.AlignRight | Qt.AlignVCenter).value)  # an int: cheap to hand to Qt


def numpy_block(view: torch.Tensor) -> np.ndarray:
    """A (small, dense) tensor's values as a numpy array, any dtype (see ``app.core.model.dtypes``)."""
    return dtypes.to_numpy(view)


NO_FLAGS = Qt.NoItemFlags
READ_ONLY = Qt.ItemIsEnabled | Qt.ItemIsSelectable
EDITABLE = READ_ONLY | Qt.ItemIsEditable


class TensorTableModel(GridFormatting, GridLimits, QAbstractTableModel):
    """Table over ``view2d()``; see the module docstring."""

    editRefused = Signal(str)
    windowChanged = Signal()  # a window's start moved (``set_window_start``)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.cell_editor = None  # callable(index_tuple, text) -> error message or None
        self._tensor: torch.Tensor | None = None
        self._view: Slice2D | None = None
        self._raw = False
        self._row_axis, self._col_axis, self._fixed = 0, 1, {}
        self._rows = self._cols = 0
        self._blocks: dict[tuple[int, int], list[list]] = {}
        self._kind = "float"
        self._wrap = 0
        self._starts, self._windows = {}, {}
        self._short_row = None  # (last row, cells in it) when a wrapped vector's last row is short
        self._precision, self._scientific = DEFAULT_PRECISION, False
        self._fmt = self._make_fmt()
        self._heatmap = False
        self._lut, self._lut_text = LUT, LUT_TEXT
        self._heat_scale: float | None = None
        self._heat_external = False

    # -- the tensor and its 2-D view ---------------------------------------------------------
    @property
    def tensor(self) -> torch.Tensor | None:
        return self._tensor

    @property
    def row_axis(self) -> int:
        return self._row_axis

    @property
    def col_axis(self) -> int:
        return self._col_axis

    @property
    def fixed(self) -> dict[int, int]:
        return dict(self._fixed)

    def set_tensor(self, tensor: torch.Tensor | None, row_axis: int = 0, col_axis: int = 1,
                   fixed: dict[int, int] | None = None, wrap: int = 0) -> None:
        """Show ``tensor``; ``wrap`` > 0 shows a 1-D tensor in rows of that many elements."""
        self.beginResetModel()
        self._wrap = max(0, int(wrap))
        self._starts = {}
        self._tensor = tensor.detach() if tensor is not None else None
        if self._heatmap:  # the palette may have changed since the heatmap was turned on
            self._lut, self._lut_text = palette_lut()
        self._raw = False
        self._heat_scale, self._heat_external = None, False
        self._apply_slice(row_axis, col_axis, fixed or {})
        self.endResetModel()

    @property
    def wrap(self) -> int:
        """Elements per row of a wrapped 1-D tensor, 0 when it is one column (or not 1-D)."""
        return self._view.wrap if self._view is not None else 0

    def set_wrap(self, width: int) -> None:
        """Show a 1-D tensor in rows of ``width`` elements (0: one column)."""
        width = max(0, int(width))
        if width == self._wrap:
            return
        self._wrap = width
        if self._tensor is None or self._tensor.dim() != 1:
            return
        self.beginResetModel()
        self._apply_slice(self._row_axis, self._col_axis, self._fixed)
        self.endResetModel()

    @property
    def raw(self) -> bool:
        return self._raw

    def set_raw(self, on: bool) -> None:
        """Quantized tensors: show the stored integers (True) or the values they stand for."""
        on = bool(on) and self._tensor is not None and self._tensor.is_quantized
        if on == self._raw:
            return
        self._raw = on
        self._heat_scale = None if not self._heat_external else self._heat_scale
        self._apply_slice(self._row_axis, self._col_axis, self._fixed)
        self._changed_all()

    def set_slice(self, row_axis: int, col_axis: int, fixed: dict[int, int] | None = None) -> None:
        """Choose the row and column axes and the indices of the other axes (N-d only)."""
        if self._tensor is None:
            return
        reset = self._would_reshape(row_axis, col_axis)
        if reset:
            self.beginResetModel()
        self._apply_slice(row_axis, col_axis, fixed or {})
        if reset:
            self.endResetModel()
        else:  # same shape, other slice: keep the scroll position and the selection
            self._changed_all()

    def _would_reshape(self, row_axis: int, col_axis: int) -> bool:
        return self._tensor is not None and self._tensor.dim() >= 2 and (
            (row_axis, col_axis) != (self._row_axis, self._col_axis))

    def _apply_slice(self, row_axis: int, col_axis: int, fixed: dict[int, int]) -> None:
        t = self._tensor
        self._blocks.clear()
        if t is None:
            self._view, self._rows, self._cols, self._windows = None, 0, 0, {}
            self._kind = "float"
            self._fmt = self._make_fmt()
            return
        shown, wrap = self._limited(t, row_axis, col_axis)
        self._view = Slice2D(shown, row_axis, col_axis, fixed, raw=self._raw, wrap=wrap)
        if t.dim() >= 2:
            self._row_axis, self._col_axis = self._view.row_axis, self._view.col_axis
            self._fixed = dict(self._view.fixed)
        self._kind = self._view.kind
        self._fmt = self._make_fmt()
        self._rows, self._cols = self._view.rows, self._view.cols
        tail = self._view.length - (self._rows - 1) * self._view.wrap if self._view.wrap else 0
        self._short_row = (self._rows - 1, tail) if 0 < tail < self._cols else None

    def view2d(self) -> Slice2D | None:
        """The 2-D window the table shows (``block(r0, r1, c0, c1)`` reads cells as numpy)."""
        return self._view

    def tensor_index(self, row: int, col: int) -> tuple[int, ...] | None:
        """The full index in the tensor of cell (row, col); None for a cell past the end of a
        wrapped vector."""
        if self._view is None:
            return ()
        return self._to_tensor(self._view.index(row, col))

    def cell_of(self, index) -> tuple[int, int]:
        """The (row, col) of the cell that shows element ``index`` of the tensor (``show_index``
        first moves the windows of an axis too long to show whole)."""
        return self._view.cell_of(self._to_view(index)) if self._view is not None else (0, 0)

    def invalidate(self) -> None:
        """Forget the cached blocks (the tensor was edited in place) and repaint."""
        self._blocks.clear()
        if not self._heat_external:
            self._heat_scale = None
        self._changed_all()

    def _changed_all(self) -> None:
        if self._rows and self._cols:
            self.dataChanged.emit(self.index(0, 0), self.index(self._rows - 1, self._cols - 1))

    # -- reading -------------------------------------------------------------------------------
    def read_block(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Cells [r0:r1, c0:c1] of the view as a numpy array of values (see ``Slice2D``)."""
        return self._view.block(r0, r1, c0, c1)

    def _block(self, br: int, bc: int) -> list[list]:
        r0, c0 = br * BLOCK_ROWS, bc * BLOCK_COLS
        arr = self.read_block(r0, r0 + BLOCK_ROWS, c0, c0 + BLOCK_COLS)
        if self._heatmap and not self._heat_external and self._kind in ("float", "int") \
                and self._tensor.numel() > EXACT_SCALE_LIMIT:
            self._grow_heat_scale(arr)
        if len(self._blocks) >= MAX_BLOCKS:
            del self._blocks[next(iter(self._blocks))]
        block = arr.tolist()
        past = self._view.past_end(r0, r0 + BLOCK_ROWS, c0, c0 + BLOCK_COLS)
        if past is not None:  # the short last row of a wrapped vector: no value there
            for r, c in zip(*np.nonzero(past)):
                block[r][c] = None
        self._blocks[(br, bc)] = block
        return block

    def value(self, row: int, col: int):
        """The Python value (float, int, bool) of a cell, from the block cache."""
        br, bc = row // BLOCK_ROWS, col // BLOCK_COLS
        block = self._blocks.get((br, bc))
        if block is None:
            block = self._block(br, bc)
        return block[row - br * BLOCK_ROWS][col - bc * BLOCK_COLS]

    # -- display settings ----------------------------------------------------------------------
    def heat_scale(self) -> float | None:
        if self._heat_scale is None and self._tensor is not None and self._kind in ("float", "int"):
            if self._tensor.numel() <= EXACT_SCALE_LIMIT and not dtypes.is_sparse(self._tensor):
                self._grow_heat_scale(numpy_block(dtypes.raw_integers(self._tensor)
                                                  if self._raw else self._tensor))
            else:  # too big to scan here: the blocks read so far (set_heat_scale overrides)
                for block in self._blocks.values():
                    self._grow_heat_scale(block)
        return self._heat_scale

    def _grow_heat_scale(self, arr) -> None:
        if isinstance(arr, list) and self._short_row is not None:  # cached rows hold None cells
            arr = [[x for x in row if x is not None] for row in arr]
            arr = [x for row in arr for x in row]
        arr = np.asarray(arr, dtype=np.float64)
        fin = arr[np.isfinite(arr)]
        if fin.size:
            m = float(np.abs(fin).max())
            if m > 0 and (self._heat_scale is None or m > self._heat_scale):
                self._heat_scale = m


    # -- QAbstractTableModel -------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else self._rows

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else self._cols

    # Qt calls flags() for every painted cell: it returns a precomputed constant.
    def flags(self, index):
        if not index.isValid():
            return NO_FLAGS
        if self._short_row is not None and index.row() == self._short_row[0] \
                and index.column() >= self._short_row[1]:
            return NO_FLAGS  # past the end of a wrapped vector
        return EDITABLE if self.cell_editor is not None else READ_ONLY

    def setData(self, index, value, role=Qt.EditRole) -> bool:
        if self.cell_editor is None or not index.isValid() or int(role) != EDIT:
            return False
        where = self.tensor_index(index.row(), index.column())
        if where is None:
            return False
        error = self.cell_editor(where, str(value).strip())
        if error:
            self.editRefused.emit(error)
            return False
        return True  # the editor's edit invalidates the model through the window

    def data(self, index, role=DISPLAY):
        if not index.isValid():
            return None
        role = int(role)
        if role == DISPLAY:
            return self._fmt(self.value(index.row(), index.column()))
        if role == EDIT:  # the exact value, to be retyped
            x = self.value(index.row(), index.column())
            return "" if x is None else repr(x) if isinstance(x, float) else str(x)
        if role == ALIGN:
            return RIGHT
        if role == FOREGROUND:
            if self._kind == "float":
                x = self.value(index.row(), index.column())
                if x is not None and not math.isfinite(x):
                    return BAD_FG
            if self._heatmap:
                i = self._heat_index(index.row(), index.column())
                return None if i is None else self._lut_text[i]
            return None
        if role == BACKGROUND:
            return self._background(index.row(), index.column())
        if role == TOOLTIP:
            idx = self.tensor_index(index.row(), index.column())
            if idx is None:
                return None
            x = self.value(index.row(), index.column())
            text = f"[{', '.join(map(str, idx))}] = {x!r}"
            if self._tensor.is_quantized:
                raw, scale, zp = dtypes.quant_at(self._tensor, idx)
                text += f"\nstored {raw}, scale {scale:.6g}, zero point {zp}: ({raw} - {zp}) × {scale:.6g}"
            return text
        return None

    def _background(self, row: int, col: int):
        if self._kind == "float":
            x = self.value(row, col)
            if x is not None and not math.isfinite(x):
                return BAD_BG
        if not self._heatmap:
            return None
        i = self._heat_index(row, col)
        return None if i is None else self._lut[i]

    def _heat_index(self, row: int, col: int) -> int | None:
        """The heatmap colour of a finite cell as an index into ``LUT``, None when uncoloured."""
        if self._kind not in ("float", "int"):
            return None
        x = self.value(row, col)
        if x is None or (self._kind == "float" and not math.isfinite(x)):
            return None
        scale = self._heat_scale if self._heat_scale is not None else self.heat_scale()
        if not scale:
            return None
        f = x / scale
        return int((min(1.0, max(-1.0, f)) + 1.0) * 128.0 + 0.5)

    def headerData(self, section, orientation, role=DISPLAY):
        if int(role) != DISPLAY:
            return None
        wrap = self._view.wrap if self._view is not None else 0
        if orientation == Qt.Horizontal:
            if wrap:
                return f"+{section}"
            if self._tensor is not None and self._tensor.dim() < 2:
                return "value"
            return str(section + self._start(self._col_axis))
        if wrap:
            return str(self._start(0) + section * wrap)  # the index of the row's first element
        return str(section + self._start(self._row_axis if self._tensor.dim() >= 2 else 0)
                   if self._tensor is not None else section)
