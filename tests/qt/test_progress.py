"""Progress reports by the hundred redraw the status-bar bar in whole percent steps only."""
from __future__ import annotations

from PySide6.QtWidgets import QProgressBar

from app.qt.progress import show_progress


def test_bar_moves_in_percent_steps(qtbot):
    bar = QProgressBar()
    qtbot.addWidget(bar)
    bar.setRange(0, 0)  # busy, before the first report
    values = []
    bar.valueChanged.connect(values.append)
    total = 5000
    for done in range(0, total + 1, 7):
        show_progress(bar, done, total)
    show_progress(bar, total, total)
    show_progress(bar, 1, 0)  # no total: ignored
    assert bar.maximum() == 1000 and bar.value() == 1000
    assert 90 <= len(values) <= 102
