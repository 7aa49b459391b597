"""The edit dialog's preview plot: before / after histograms on shared bins (computed on the
preview worker, over a robust range when a few outliers would squash them), a spike of "after"
drawn clipped with its count, and the plot in the palette's colours. ``PreviewPlot`` is mixed into
``edit_dialog.EditDialog``."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtGui import QColor, QPalette

from ...core.stats_range import outliers_dominate, percentile_range, value_sample

BINS = 60
SPIKE = 4.0   # an "after" bar this many times the tallest "before" bar is drawn clipped


def _histograms(before: torch.Tensor, after: torch.Tensor):
    """Edges and counts of before / after on shared bins, and a note on the range shown
    (computed on the worker). A few outliers would squash both into one bar: then the bins
    span the 0.1–99.9th percentiles of both, and the note says how many lie outside."""
    b = before.double().flatten()
    a = after.double().flatten()
    b, a = b[torch.isfinite(b)], a[torch.isfinite(a)]
    both = torch.cat([b, a])
    if both.numel() == 0:
        return None
    lo, hi = float(both.min()), float(both.max())
    note = ""
    robust = percentile_range(value_sample([both]))
    if outliers_dominate((lo, hi), robust) and robust[1] > robust[0]:
        lo, hi = robust
        outside = int(((b < lo) | (b > hi)).sum()) + int(((a < lo) | (a > hi)).sum())
        note = f"0.1–99.9th percentile; {outside:,} outliers not shown"
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, BINS + 1)
    return edges, np.histogram(b.numpy(), edges)[0], np.histogram(a.numpy(), edges)[0], note



class PreviewPlot:
    """Drawing the preview's histograms in ``EditDialog`` (its ``plot``, ``_before``, ``_after``
    and ``_spike``)."""

    def _set_plot(self, hist) -> None:
        """Draw before / after on shared bins. When "after" piles up in a spike far above
        "before" (a fill, a clamp), the y axis stops above "before" and the spike's count is
        written on it, so "before" stays readable."""
        self._spike.setVisible(False)
        if hist is None:
            self._before.setData([0, 1], [0])
            self._after.setData([0, 1], [0])
            self.plot.setTitle(None)
            self.plot.enableAutoRange()
            return
        edges, before, after, note = hist
        self.plot.setTitle(note or None, size="8pt", color=self.palette().color(QPalette.Text))
        self._before.setData(edges, before)
        self._after.setData(edges, after)
        top_before = float(np.max(before)) if len(before) else 0.0
        top_after = float(np.max(after)) if len(after) else 0.0
        if top_before > 0 and top_after > SPIKE * top_before:
            ceiling = 1.25 * top_before
            self.plot.enableAutoRange(x=True, y=False)
            self.plot.setYRange(0, ceiling, padding=0)
            i = int(np.argmax(after))
            self._spike.setText(f"▲ {int(after[i]):,}")
            self._spike.setPos((edges[i] + edges[i + 1]) / 2, ceiling)
            self._spike.setVisible(True)
        else:
            self.plot.enableAutoRange()

    def _clear_after(self) -> None:
        self._after.clear()  # no data at all: the x range stays that of "before"
        self.plot.enableAutoRange()
        self._spike.setVisible(False)

    def _style_preview_plot(self) -> None:
        """The plot in the palette's colours (a dark palette gets a dark plot)."""
        pal = self.palette()
        text = pal.color(QPalette.Text)
        self.plot.setBackground(pal.color(QPalette.Base))
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setPen(text)
            axis.setTextPen(text)
            axis.label.setDefaultTextColor(text)
        self._spike.setColor(text)
        outline = QColor(text)
        outline.setAlpha(190)
        self._before.setPen(pg.mkPen(outline, width=2))  # readable on light and dark
        legend = self.plot.getPlotItem().legend
        if legend is not None:
            legend.setLabelTextColor(text)

