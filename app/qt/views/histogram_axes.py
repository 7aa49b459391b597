"""Histogram axes whose tick labels never overlap, and whose counts are whole numbers; one level
of ticks (and grid lines), the labelled one.

pyqtgraph picks tick spacing from the axis length alone and lets labels fill up to 80 % of it,
so at a narrow width long labels touch ("02000400060008000"). These axes measure their own
labels with the font and keep one label's width (or height) of space between two.
"""
from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtGui import QFontMetrics

GAP_EM = 1.5   # free space between two labels, in widths of "0"


def nice_step(raw: float) -> float:
    """The smallest of 1, 2, 5 x 10^k that is at least ``raw``."""
    if not math.isfinite(raw) or raw <= 0:
        return 1.0
    exp = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        step = m * 10.0 ** exp
        if step >= raw * (1 - 1e-9):
            return step
    return 10.0 ** (exp + 1)


def compact_count(n: float) -> str:
    """12 -> "12", 12000 -> "12k", 3500000 -> "3.5M": short labels for counts."""
    a = abs(n)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{int(round(n))}"


def _inner_ticks(lo: float, hi: float, step: float, margin: float) -> int:
    """Ticks of ``step`` at least half a label (``margin`` in value units) inside [lo, hi]."""
    first = math.ceil((lo + margin / 2) / step)
    last = math.floor((hi - margin / 2) / step)
    return max(0, last - first + 1)


class _SpacedAxis(pg.AxisItem):
    """An axis that spaces its major ticks by how long its labels are."""

    integer = False   # never a step below 1

    def _label_extent(self, lo: float, hi: float) -> float:
        fm = QFontMetrics(self.style.get("tickFont") or self.font())
        if self.orientation in ("left", "right"):
            return fm.height() * 1.6
        step = nice_step((hi - lo) / 4)
        texts = self.tickStrings([lo, hi, lo + step], 1.0, step)
        return max(fm.horizontalAdvance(t) for t in texts) + GAP_EM * fm.horizontalAdvance("0")

    def tickSpacing(self, minVal, maxVal, size):
        if self.logMode or not (math.isfinite(minVal) and math.isfinite(maxVal)) \
                or maxVal <= minVal or size <= 0:
            return super().tickSpacing(minVal, maxVal, size)
        span = maxVal - minVal
        extent = self._label_extent(minVal, maxVal)
        labels = max(1, int(size // extent))
        major = nice_step(span / labels)
        if self.integer:
            major = max(1.0, major)
        # pyqtgraph hides a label that would cross the axis' end: with ticks only near the ends,
        # one label is left. Take the next smaller step while its labels still do not touch.
        finer = nice_step(major * 0.45)
        if self.orientation not in ("left", "right") and _inner_ticks(minVal, maxVal, major, extent
                                                                      * span / size) < 2 \
                and finer * size / span >= extent * 0.8 and not (self.integer and finer < 1):
            major = finer
        # Major ticks only: each level is a set of grid lines drawn across the whole plot, and
        # the minor level's four lines per major step were a third of each repaint's time.
        return [(major, 0.0)]


class ValueAxis(_SpacedAxis):
    """The bottom axis: tensor values, labels as short as the step allows."""

    def tickStrings(self, values, scale, spacing):
        if self.logMode:
            return super().tickStrings(values, scale, spacing)
        places = max(0, math.ceil(-math.log10(spacing * scale))) if spacing > 0 else 0
        out = []
        for v in values:
            vs = v * scale
            if vs != 0 and (abs(vs) < 1e-3 or abs(vs) >= 1e5):
                out.append(f"{vs:.3g}")
            else:
                out.append(f"{vs:.{min(places, 12)}f}")
        return out


class CountAxis(_SpacedAxis):
    """The left axis: counts, whole numbers only (12k, 3.5M), in log mode too."""

    integer = True

    def tickStrings(self, values, scale, spacing):
        if self.logMode:
            return [compact_count(10 ** v) if 10 ** v >= 1 else "" for v in values]
        return [compact_count(v * scale) for v in values]

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        """Powers of ten only (1, 10, 100, ...): no fractional counts."""
        lo, hi = max(0, math.floor(minVal)), math.ceil(maxVal)
        step = max(1, math.ceil((hi - lo + 1) * QFontMetrics(self.font()).height() * 1.6
                                / max(size, 1)))
        return [(float(step), [float(v) for v in range(lo, hi + 1, step) if minVal <= v <= maxVal])]
