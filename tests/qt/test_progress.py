"""Progress reports by the hundred redraw the bar in whole percent steps, at most ``MAX_RATE``
times a second."""
from __future__ import annotations

import pytest
from PySide6.QtWidgets import QProgressBar

from app.qt import progress
from app.qt.progress import show_progress


class FakeClock:
    def __init__(self, step: float):
        self.now, self.step = 1000.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def bar(qtbot):
    bar = QProgressBar()
    qtbot.addWidget(bar)
    bar.setRange(0, 0)  # busy, before the first report
    return bar


def report(bar, total=5000, every=7):
    values = []
    bar.valueChanged.connect(values.append)
    for done in range(0, total + 1, every):
        show_progress(bar, done, total)
    show_progress(bar, total, total)
    show_progress(bar, 1, 0)  # no total: ignored
    return values


def test_bar_moves_in_percent_steps(bar, monkeypatch):
    monkeypatch.setattr(progress, "clock", FakeClock(step=1.0))  # slow reports: every percent
    values = report(bar)
    assert bar.maximum() == 1000 and bar.value() == 1000
    assert 90 <= len(values) <= 102


def test_fast_reports_repaint_at_most_max_rate_a_second(bar, monkeypatch):
    clock = FakeClock(step=0.001)  # a report every millisecond: 715 of them in 0.7 s
    monkeypatch.setattr(progress, "clock", clock)
    values = report(bar)
    assert bar.value() == 1000  # the end always shows
    assert len(values) <= 0.72 * progress.MAX_RATE + 2


def test_a_step_is_painted_by_the_event_loop_not_at_once(bar, qtbot):
    """``setValue`` alone paints synchronously (and flushes the window): the step waits for
    the event loop's next paint instead."""
    from PySide6.QtCore import QEvent, QObject

    class Paints(QObject):
        count = 0

        def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
            if event.type() == QEvent.Paint:
                self.count += 1
            return False
    bar.show()
    qtbot.waitExposed(bar)
    show_progress(bar, 0, 10)  # the first report makes it a 0..1000 bar
    qtbot.wait(50)
    paints = Paints()
    bar.installEventFilter(paints)
    show_progress(bar, 5, 10)
    show_progress(bar, 10, 10)
    assert bar.value() == 1000 and paints.count == 0
    qtbot.waitUntil(lambda: paints.count > 0, timeout=2000)
