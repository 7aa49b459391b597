"""A step histogram on a pyqtgraph plot, repainted cheaply: one PlotDataItem, updated by setData.

Drawn as in pyqtgraph's examples/histogram.py (``stepMode="center"``, filled to zero). The counts
are kept as given (``counts``/``edges`` read them back); the log-y view is pyqtgraph's own log
mode (empty bins show as gaps).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

FILL = (86, 140, 200, 150)
LINE = (40, 90, 160)
LOG_FLOOR = float(np.log10(0.5))


class Histogram:
    """Owns the one curve of ``plot`` (a ``pg.PlotWidget``); ``set_data`` never adds items."""

    def __init__(self, plot: pg.PlotWidget):
        self.plot = plot
        self.item = plot.getPlotItem()
        self.item.showGrid(x=True, y=True, alpha=0.2)
        self.item.setLabel("left", "count")
        self.item.setMenuEnabled(False)
        self.item.hideButtons()
        self._edges = np.zeros(0)
        self._counts = np.zeros(0, dtype=np.int64)
        self._log = False
        self.curve = pg.PlotDataItem(np.array([0.0, 1.0]), np.array([0.0]), stepMode="center",
                                     fillLevel=0, fillOutline=True, brush=FILL,
                                     pen=pg.mkPen(LINE, width=1))
        self.curve.setVisible(False)
        self.item.addItem(self.curve)

    # -- data ---------------------------------------------------------------------------------
    @property
    def counts(self) -> np.ndarray:
        return self._counts

    @property
    def edges(self) -> np.ndarray:
        return self._edges

    def set_data(self, edges: np.ndarray, counts: np.ndarray) -> None:
        """Show ``counts`` between ``edges`` (len(edges) == len(counts) + 1)."""
        edges = np.asarray(edges, dtype=np.float64)
        counts = np.asarray(counts)
        if counts.size == 0 or edges.size != counts.size + 1:
            self.clear()
            return
        self._edges, self._counts = edges, counts
        self._draw()

    def clear(self) -> None:
        self._edges, self._counts = np.zeros(0), np.zeros(0, dtype=np.int64)
        self.curve.setVisible(False)

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

    def _draw(self) -> None:
        # in log mode the fill level is in log10 units: fill down to half a count (empty bins
        # are gaps there); the counts themselves go in unchanged
        self.curve.setFillLevel(LOG_FLOOR if self._log else 0)
        with np.errstate(divide="ignore"):  # log10 of empty bins: gaps
            self.curve.setData(self._edges, self._counts)
        self.curve.setVisible(True)
        self.item.enableAutoRange()
