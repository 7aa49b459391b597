"""How the tensor grid formats its cells: significant digits per dtype (``auto_digits``), the
number format, and the heatmap's colours with a text colour that reads on each (``text_on``).
``GridFormatting`` is the display-settings part of ``grid_model.TensorTableModel``."""
from __future__ import annotations

import numpy as np
import torch
from PySide6.QtGui import QColor, QGuiApplication

from ..colours import luminance

AUTO_PRECISION = 0              # set_precision(0): as many digits as the dtype holds
DEFAULT_PRECISION = AUTO_PRECISION

#: significant digits shown by default: bfloat16 and float16 texts read back to the same value
#: (1 + mantissa bits x log10 2, rounded up); float32 and float64 a little less, so that columns
#: stay narrow (the edit text of a cell is always the exact value)
DTYPE_DIGITS = {torch.bfloat16: 4, torch.float16: 5, torch.complex32: 5, torch.float32: 7,
                torch.complex64: 7, torch.float64: 10, torch.complex128: 10}
FP8_DIGITS, QUANTIZED_DIGITS, OTHER_DIGITS = 4, 7, 7  # dequantized: float32 values
INT_CHARS = {torch.int8: 4, torch.uint8: 3, torch.int16: 6, torch.int32: 11, torch.bool: 5}


def auto_digits(dtype: torch.dtype) -> int:
    """Significant digits shown by default for values stored as ``dtype``."""
    if dtype in DTYPE_DIGITS:
        return DTYPE_DIGITS[dtype]
    if "float8" in str(dtype):
        return FP8_DIGITS
    if dtype in (torch.qint8, torch.quint8, torch.qint32, torch.quint4x2, torch.quint2x4):
        return QUANTIZED_DIGITS
    return OTHER_DIGITS


BAD_FG = QColor(200, 0, 0)          # NaN / Inf text
BAD_BG = QColor(255, 224, 160)      # NaN / Inf cell
DARK_TEXT, LIGHT_TEXT = QColor(0, 0, 0), QColor(255, 255, 255)


def text_on(colour: QColor) -> QColor:
    """Black or white, whichever reads better on ``colour`` (WCAG relative luminance)."""
    return DARK_TEXT if luminance(colour) > 0.179 else LIGHT_TEXT


def _diverging_lut(n: int = 257, zero=(255, 255, 255)) -> list[QColor]:
    """Blue - ``zero`` - red (coolwarm-like); odd length, so that zero is exactly ``zero`` (the
    palette's base colour: white, or dark in a dark palette)."""
    lo, mid, hi = np.array([70, 110, 215]), np.array(zero, dtype=float), np.array([215, 60, 50])
    out = []
    for i in range(n):
        f = i / (n - 1) * 2 - 1
        c = mid + (hi - mid) * f * 0.75 if f >= 0 else mid + (lo - mid) * -f * 0.75
        out.append(QColor(*(int(round(v)) for v in c)))
    return out


LUT = _diverging_lut()
LUT_TEXT = [text_on(c) for c in LUT]
_LUTS: dict[tuple, tuple[list[QColor], list[QColor]]] = {(255, 255, 255): (LUT, LUT_TEXT)}


def palette_lut() -> tuple[list[QColor], list[QColor]]:
    """The heatmap colours centred on the application palette's base colour, and the text
    colour that reads on each."""
    base = QGuiApplication.palette().base().color()
    key = (base.red(), base.green(), base.blue())
    if key not in _LUTS:
        lut = _diverging_lut(zero=key)
        _LUTS[key] = (lut, [text_on(c) for c in lut])
    return _LUTS[key]

class GridFormatting:
    """Digits, number format and heatmap colours of ``TensorTableModel`` (mixed into it)."""

    @property
    def precision(self) -> int:
        """Significant digits shown now (the dtype's ``auto_digits`` unless overridden)."""
        if self._precision:
            return self._precision
        if self._tensor is None:
            return OTHER_DIGITS
        return auto_digits(self._tensor.dtype)

    @property
    def precision_setting(self) -> int:
        """The digits asked for: ``AUTO_PRECISION`` (0) or an override from 1 to 17."""
        return self._precision

    def set_precision(self, digits: int) -> None:
        digits = int(digits)
        self._precision = AUTO_PRECISION if digits <= 0 else min(17, digits)
        self._fmt = self._make_fmt()
        self._changed_all()

    @property
    def scientific(self) -> bool:
        return self._scientific

    def set_scientific(self, on: bool) -> None:
        self._scientific = bool(on)
        self._fmt = self._make_fmt()
        self._changed_all()

    @property
    def heatmap(self) -> bool:
        return self._heatmap

    def set_heatmap(self, on: bool) -> None:
        self._heatmap = bool(on)
        self._lut, self._lut_text = palette_lut()
        self._changed_all()

    def set_heat_scale(self, scale: float | None) -> None:
        """Use ``scale`` (max |value|, e.g. from exact statistics) for the heatmap colours."""
        scale = float(scale) if scale else None
        same = scale == self._heat_scale  # e.g. a small tensor's, scanned whole already
        self._heat_scale = scale
        self._heat_external = scale is not None
        if self._heatmap and not same:  # a repaint of the grid beside the statistics' own
            self._changed_all()

    def _make_fmt(self):
        if self._kind in ("int", "bool"):
            return lambda x: "" if x is None else str(x)
        digits = self.precision
        spec = f".{digits - 1}e" if self._scientific else f".{digits}g"
        return lambda x: "" if x is None else format(x, spec)

    def format_value(self, x) -> str:
        return self._fmt(x)

    def cell_chars(self) -> int:
        """Characters the widest value of this dtype takes at the current digits."""
        t = self._tensor
        if t is None:
            return 8
        if self._kind in ("int", "bool"):
            dtype = torch.int8 if self._raw else t.dtype
            return INT_CHARS.get(dtype, 20)
        chars = self.precision + 6  # sign, point, e-XX
        return 2 * chars + 3 if self._kind == "complex" else chars
