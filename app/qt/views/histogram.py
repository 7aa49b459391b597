"""A step histogram on a pyqtgraph plot, repainted cheaply: one PlotDataItem, updated by setData.

Drawn as in pyqtgraph's examples/histogram.py (``stepMode="center"``, filled to zero). The counts
are kept as given (``counts``/``edges`` read them back); the log-y view is pyqtgraph's own log
mode (empty bins show as gaps). Elements outside the shown range (a robust range) are counted at
the edges (``belowLabel`` / ``aboveLabel`` over the plot's corners). Hovering a bar emits
``hovered`` with its range and count. Colours come from the widget's palette
(``apply_palette``), so a dark palette gets a dark plot.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPalette
from PySide6.QtWidgets import QLabel

from ..colours import contrast
from .histogram_axes import CountAxis, ValueAxis, compact_count

LOG_FLOOR = float(np.log10(0.5))


def bin_text(lo: float, hi: float, count: int, integer: bool) -> str:
    """What hovering a bar says: its range (or its integer) and its count."""
    if integer:
        a, b = int(np.ceil(lo)), int(np.floor(hi))
        where = f"value {a}" if a == b else f"values {a} … {b}"
    else:
        where = f"[{lo:.6g}, {hi:.6g})"
    return f"{where}: {int(count):,} element{'s' if count != 1 else ''}"


class Histogram(QObject):
    """Owns the one curve of ``plot`` (a ``pg.PlotWidget``); ``set_data`` never adds items."""

    hovered = Signal(str)   # the hovered bar's range and count; "" when the mouse leaves

    def __init__(self, plot: pg.PlotWidget):
        super().__init__(plot)
        self.plot = plot
        self.item = plot.getPlotItem()
        self.item.setAxisItems({"left": CountAxis("left"), "bottom": ValueAxis("bottom")})
        # Room for the widest count ("88.8M") from the start: pyqtgraph measures the labels
        # while it paints and widens the axis then, which lays the plot out again after the
        # paint and paints it a second time.
        fm = QFontMetrics(self.item.getAxis("left").font())
        self.item.getAxis("left").setStyle(autoExpandTextSpace=False,
                                           tickTextWidth=fm.horizontalAdvance("88.8M") + 2)
        self.item.showGrid(x=True, y=True, alpha=0.2)
        for name in ("left", "bottom"):  # "value (x0.001)" hides the scale next to the ticks
            self.item.getAxis(name).enableAutoSIPrefix(False)
        self.item.setLabel("left", "count")
        self.item.setLabel("bottom", "value")
        self.item.setMenuEnabled(False)
        self.item.hideButtons()
        self.item.getViewBox().setMouseEnabled(x=False, y=False)  # a wheel must not lose the bars
        self._edges = np.zeros(0)
        self._counts = np.zeros(0, dtype=np.int64)
        self.below = self.above = 0
        self.integer = False
        self._log = False
        self.curve = pg.PlotDataItem(np.array([0.0, 1.0]), np.array([0.0]), stepMode="center",
                                     fillLevel=0, fillOutline=True)
        self.curve.setVisible(False)
        self.item.addItem(self.curve)
        self.below_label = QLabel(plot, objectName="belowLabel")
        self.above_label = QLabel(plot, objectName="aboveLabel")
        for label in (self.below_label, self.above_label):
            label.setVisible(False)
            label.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.item.getViewBox().sigResized.connect(self._place_edge_labels)
        plot.scene().sigMouseMoved.connect(self._mouse_moved)
        self.apply_palette(plot.palette())

    # -- data ---------------------------------------------------------------------------------
    @property
    def counts(self) -> np.ndarray:
        return self._counts

    @property
    def edges(self) -> np.ndarray:
        return self._edges

    def set_data(self, edges: np.ndarray, counts: np.ndarray, below: int = 0, above: int = 0,
                 integer: bool = False) -> None:
        """Show ``counts`` between ``edges`` (len(edges) == len(counts) + 1); ``below`` and
        ``above`` elements lie outside the edges; ``integer``: the bins hold whole integers."""
        edges = np.asarray(edges, dtype=np.float64)
        counts = np.asarray(counts)
        if counts.size == 0 or edges.size != counts.size + 1:
            self.clear()
            return
        self._edges, self._counts, self.integer = edges, counts, integer
        self.item.getAxis("bottom").integer = integer  # no tick at 0.5 between two integers
        self.below, self.above = int(below), int(above)
        self._draw()

    def clear(self) -> None:
        self._edges, self._counts = np.zeros(0), np.zeros(0, dtype=np.int64)
        self.below = self.above = 0
        self.curve.setVisible(False)
        self._show_edge_labels()
        self.hovered.emit("")

    def bin_at(self, x: float) -> int | None:
        """The index of the bar under value ``x``, or None."""
        if self._counts.size == 0 or not (self._edges[0] <= x <= self._edges[-1]):
            return None
        return int(min(np.searchsorted(self._edges, x, side="right") - 1, self._counts.size - 1))

    def bin_description(self, i: int) -> str:
        return bin_text(self._edges[i], self._edges[i + 1], int(self._counts[i]), self.integer)

    # -- view ---------------------------------------------------------------------------------
    @property
    def log_y(self) -> bool:
        return self._log

    def set_log_y(self, on: bool) -> None:
        if on == self._log:
            return
        self._log = on
        self.item.setLogMode(y=on)
        # move the y axis into the new units at once: left linear, its range (0..max count)
        # would be read as powers of ten until the next auto-range (overflow warnings)
        top = float(self._counts.max()) if self._counts.size else 1.0
        lo, hi = (LOG_FLOOR, np.log10(max(top, 1.0))) if on else (0.0, top)
        self.item.setYRange(lo, hi if hi > lo else lo + 1)
        self.item.enableAutoRange()
        self.item.setLabel("left", "count (log)" if on else "count")
        if self._counts.size:
            self._draw()

    def apply_palette(self, pal: QPalette) -> None:
        """Background, axes, text and bars in the palette's colours (light or dark)."""
        base, text = pal.color(QPalette.Base), pal.color(QPalette.Text)
        bar = QColor(pal.color(QPalette.Highlight))
        dark = base.lightness() < 128
        self.plot.setBackground(base)
        for name in ("left", "bottom"):
            axis = self.item.getAxis(name)
            axis.setPen(text)
            axis.setTextPen(text)
            axis.label.setDefaultTextColor(text)
        fill = QColor(bar)
        fill.setAlpha(170 if dark else 140)
        line = bar.lighter(140) if dark else bar.darker(130)
        self.curve.setBrush(fill)
        self.curve.setPen(pg.mkPen(line, width=1))
        mark = pal.color(QPalette.Link)
        if contrast(mark, base) < 3:  # a dark theme that kept the default dark-blue link
            mark = mark.lighter(250) if dark else mark.darker(250)
            if contrast(mark, base) < 3:
                mark = text
        for label in (self.below_label, self.above_label):
            label.setStyleSheet(f"color: {mark.name()}; background: transparent;"
                                " font-weight: bold;")

    def _draw(self) -> None:
        # in log mode the fill level is in log10 units: fill down to half a count (empty bins
        # are gaps there); the counts themselves go in unchanged
        self.curve.setFillLevel(LOG_FLOOR if self._log else 0)
        with np.errstate(divide="ignore"):  # log10 of empty bins: gaps
            self.curve.setData(self._edges, self._counts)
        self.curve.setVisible(True)
        self.item.enableAutoRange()
        # the new range and transform now: pyqtgraph would fit them as the paint begins, and
        # what that changes (the axes, the curve's place) would ask for a second paint
        self.item.getViewBox().prepareForPaint()
        self._show_edge_labels()

    def _show_edge_labels(self) -> None:
        for label, n, text in ((self.below_label, self.below, "◀ {} below"),
                               (self.above_label, self.above, "{} above ▶")):
            label.setText(text.format(compact_count(n)) if n else "")
            label.setToolTip(f"{n:,} element{'s' if n != 1 else ''} outside the shown range"
                             if n else "")
            label.setVisible(bool(n))
            label.adjustSize()
        self._place_edge_labels()

    def _place_edge_labels(self) -> None:
        rect = self.item.getViewBox().sceneBoundingRect()
        top_left = self.plot.mapFromScene(rect.topLeft())
        top_right = self.plot.mapFromScene(rect.topRight())
        self.below_label.move(top_left.x() + 4, top_left.y() + 2)
        self.above_label.move(top_right.x() - self.above_label.width() - 4, top_right.y() + 2)

    def _mouse_moved(self, pos: QPointF) -> None:
        vb = self.item.getViewBox()
        i = None
        if vb.sceneBoundingRect().contains(pos):
            i = self.bin_at(vb.mapSceneToView(pos).x())
        text = self.bin_description(i) if i is not None else ""
        self.plot.setToolTip(text)
        self.hovered.emit(text)
