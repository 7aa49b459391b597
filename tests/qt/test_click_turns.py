"""A click's work comes in short turns of the event loop: the grid is shown and painted first
(once), the statistics on a later turn (of a burst of clicks only the last's), the histogram
laid out before it is painted (once), and nothing stale shows afterwards."""
import pytest
import torch
from PySide6.QtCore import QEvent, QObject, QThreadPool

from app.core.model.document import Document
from app.qt.views import stats_panel as sp
from app.qt.views.histogram_axes import CountAxis, ValueAxis
from app.qt.views.stats_panel import StatsPanel
from app.qt.views.tensor_view import TensorView


class Paints(QObject):
    """Appends ``name`` to ``log`` for each Paint event the watched widget gets."""

    def __init__(self, widget, name: str, log: list):
        super().__init__(widget)
        self.name, self.log = name, log
        widget.installEventFilter(self)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Paint:
            self.log.append(self.name)
        return False


def tensors():
    g = torch.Generator().manual_seed(0)
    return {"a.weight": torch.randn(64, 64, generator=g), "b.bias": torch.randn(3000, generator=g),
            "c.weight": torch.randn(5, 7, generator=g), "d.weight": torch.randn(9, 3, generator=g)}


@pytest.fixture
def shown(qtbot, window):
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    window.open_document(Document.from_object(tensors()), "t")
    assert window.select_name("a.weight")
    qtbot.waitUntil(lambda: window.stats_panel.label == "a.weight"
                    and not window.stats_panel.is_busy)
    qtbot.wait(20)
    return window


def test_a_click_paints_the_grid_before_the_statistics_are_computed(qtbot, shown):
    log = []
    Paints(shown.tensor_view.grid.viewport(), "grid", log)
    shown.stats_panel.statsReady.connect(lambda stats: log.append(("stats", stats.numel)))
    assert shown.select_name("b.bias")
    # the grid shows it at once; the panel knows what comes, keeps the old figures meanwhile
    assert shown.tensor_view.name == "b.bias" and shown.tensor_view.tensor.numel() == 3000
    panel = shown.stats_panel
    assert panel.label == "b.bias" and panel.is_busy and panel.current_stats.numel == 64 * 64
    qtbot.waitUntil(lambda: not panel.is_busy)
    assert panel.current_stats.numel == 3000 and panel.table.values()["numel"] == "3,000"
    assert "grid" in log and log.index("grid") < log.index(("stats", 3000)), log


def test_a_burst_of_clicks_computes_the_statistics_of_the_last_only(qtbot, shown):
    computed = []
    shown.stats_panel.statsReady.connect(lambda stats: computed.append(stats.numel))
    for name in ("b.bias", "c.weight", "d.weight", "b.bias", "c.weight"):
        assert shown.select_name(name)  # as fast as keys repeat: no turn of the loop between
    qtbot.waitUntil(lambda: not shown.stats_panel.is_busy)
    qtbot.wait(20)
    assert computed == [35]
    assert shown.stats_panel.label == "c.weight" == shown.tensor_view.name
    assert shown.stats_panel.table.values()["numel"] == "35"


def test_statistics_shown_at_once_are_never_replaced_by_ones_asked_for_before(qtbot):
    panel = StatsPanel()
    qtbot.addWidget(panel)
    panel.show()
    a, b = torch.zeros(10), torch.arange(20.0)
    panel.show_tensors_later("a", [a])
    panel.show_tensors("b", [b])  # e.g. the gradient view, after the window's selection
    assert not panel.is_busy and panel.current_stats.numel == 20
    qtbot.wait(30)
    assert panel.label == "b" and panel.current_stats.numel == 20
    panel.show_tensors_later("a", [a])
    panel.clear()
    qtbot.wait(30)
    assert panel.label == "" and panel.current_stats is None and not panel.is_busy


def test_a_big_tensors_worker_result_never_shows_after_a_later_click(qtbot):
    panel = StatsPanel()
    qtbot.addWidget(panel)
    panel.show()
    big = torch.randn(4 * sp.SYNC_LIMIT, generator=torch.Generator().manual_seed(1))
    panel.show_tensors_later("big", [big])
    qtbot.waitUntil(lambda: panel._task is not None)  # sampling in a worker
    panel.show_tensors_later("small", [torch.ones(7)])
    qtbot.waitUntil(lambda: not panel.is_busy)
    QThreadPool.globalInstance().waitForDone(30_000)
    qtbot.wait(30)  # the big one's results, if any, are delivered now
    assert panel.label == "small" and panel.current_stats.numel == 7
    assert not panel.current_stats.approximate


def test_a_new_tensor_paints_the_grid_once(qtbot):
    view = TensorView()
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    qtbot.waitExposed(view)
    view.show_tensor("a", torch.randn(64, 64))
    qtbot.wait(30)
    log = []
    Paints(view.grid.viewport(), "grid", log)
    view.show_tensor("b", torch.randn(300_000))  # wrapped: a wider row header than 64 rows'
    qtbot.waitUntil(lambda: bool(log))
    qtbot.wait(50)
    assert log == ["grid"]


def test_new_statistics_paint_the_histogram_once(qtbot):
    panel = StatsPanel()
    qtbot.addWidget(panel)
    panel.resize(420, 640)
    panel.show()
    qtbot.waitExposed(panel)
    panel.show_tensors("a", [torch.randn(64, 64)])
    qtbot.wait(30)
    log = []
    Paints(panel.plot.viewport(), "plot", log)
    # a count that takes two lines in the table, and other ranges: the panel lays out anew
    panel.show_tensors("b", [torch.arange(-3.0, 2000.0)])
    qtbot.waitUntil(lambda: bool(log))
    qtbot.wait(50)
    assert log == ["plot"]


def test_a_heat_scale_repaints_the_grid_a_turn_later_and_only_when_changed(qtbot):
    view = TensorView()
    qtbot.addWidget(view)
    view.heatmap_check.setChecked(True)
    t = torch.tensor([[1.0, -4.0], [2.0, 0.5]])
    view.show_tensor("t", t)
    assert view.model.heat_scale() == 4.0  # small: scanned whole
    changed = []
    view.model.dataChanged.connect(lambda *_: changed.append(1))
    view.set_heat_scale(4.0)  # the exact statistics agree
    qtbot.wait(30)
    assert changed == []
    view.set_heat_scale(8.0)
    assert changed == []  # on a later turn: not in the statistics' paint
    qtbot.waitUntil(lambda: changed == [1])
    assert view.model.heat_scale() == 8.0
    view.set_heat_scale(2.0)
    view.show_tensor("u", t)  # another tensor first: the old scale is never applied to it
    qtbot.wait(30)
    assert view.model.heat_scale() == 4.0


@pytest.mark.parametrize("kind, side", [(ValueAxis, "bottom"), (CountAxis, "left")])
def test_the_histogram_has_one_level_of_ticks_and_grid_lines(qtbot, kind, side):
    assert len(kind(side).tickSpacing(0.0, 1000.0, 300)) == 1


class Resizes(QObject):
    def __init__(self, widget, log: list):
        super().__init__(widget)
        self.log = log
        widget.installEventFilter(self)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Resize:
            self.log.append(event.size())
        return False


def test_sampling_a_big_tensor_never_resizes_the_histogram(qtbot):
    """The "sampling…" note and its progress bar come and go without moving the plot: a
    resize would lay it out and paint it whole, twice per click."""
    panel = StatsPanel()
    qtbot.addWidget(panel)
    panel.resize(420, 640)
    panel.show()
    qtbot.waitExposed(panel)
    panel.show_tensors("small", [torch.randn(100)])
    qtbot.wait(30)
    resized = []
    Resizes(panel.plot, resized)
    panel.show_tensors_later("big", [torch.randn(4 * sp.SYNC_LIMIT)])
    qtbot.waitUntil(lambda: panel.approx_label.isVisible())
    qtbot.waitUntil(lambda: not panel.is_busy, timeout=30_000)
    qtbot.wait(30)
    assert panel.is_exact and not panel.approx_label.isVisible()
    assert resized == []
