"""Repaint the histogram thousands of times.

Guards against a broken Qt binding: PySide6 6.12.0 on Python < 3.12 drops a reference to None on
every call of a Qt method that returns nothing, and the process dies after a few thousand
repaints (``Fatal Python error: none_dealloc``). Here that fails the test run instead of a user:
each repaint makes many such calls, so the count of references to None drops by far more than
the check's margin well before the process would die.
"""
import gc
import sys

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

from app.qt.views.histogram import Histogram

REPAINTS = 2_000  # the repaint rate is measured by benchmarks/bench_gui.py, not here


def test_histogram_survives_thousands_of_repaints(qtbot):
    plot = pg.PlotWidget()
    plot.setObjectName("histogramPlot")
    qtbot.addWidget(plot)
    plot.resize(240, 150)  # small, no grid lines, a steady y range: the binding is the test
    plot.show()
    qtbot.waitExposed(plot)
    hist = Histogram(plot)
    hist.item.showGrid(x=False, y=False)
    rng = np.random.default_rng(0)
    edges = np.linspace(-3, 3, 101)
    frames = [rng.integers(0, 1000, 100) for _ in range(16)]
    for f in frames:
        f[0], f[-1] = 1000, 1
    # Garbage of earlier tests freed during the loop would lower None's count too: collect it
    # first and keep the collector out of the loop, so only the binding can move the count.
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)  # other tests' windows go now
    QApplication.processEvents()
    gc.collect()
    gc.disable()
    try:
        none_refs = sys.getrefcount(None)
        for i in range(REPAINTS):
            hist.set_data(edges, frames[i % len(frames)])
            if i % 500 == 250:
                hist.set_log_y(not hist.log_y)
            plot.viewport().repaint()
            if i % 100 == 0:
                QApplication.processEvents()
    finally:
        gc.enable()
    assert hist.counts.sum() == frames[(REPAINTS - 1) % len(frames)].sum()
    assert len(plot.getPlotItem().listDataItems()) == 1  # one curve, reused
    if sys.version_info < (3, 12):  # None is immortal from 3.12 on
        assert sys.getrefcount(None) > none_refs - 1000, "the Qt binding leaks references to None"
