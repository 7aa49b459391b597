"""StatsPanel: stats equal torch's, histogram counts, log-y, preview then exact, cancel, goto."""
import math

import pyqtgraph as pg
import pytest
import torch
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import QApplication, QCheckBox, QLabel, QPushButton, QSpinBox, QWidget

from app.qt.views import stats_panel as sp
from app.qt.views import stats_workers
from app.qt.views.stats_panel import StatsPanel


@pytest.fixture
def panel(qtbot):
    p = StatsPanel()
    qtbot.addWidget(p)
    p.resize(420, 640)
    p.show()
    qtbot.waitExposed(p)
    yield p
    p.clear()
    QThreadPool.globalInstance().waitForDone(30_000)


def torch_reference(t):
    f = t.double().flatten()
    fin = f[torch.isfinite(f)]
    return {"min": fin.min().tolist(), "max": fin.max().tolist(), "mean": fin.mean().tolist(),
            "std": fin.std().tolist(), "l2": fin.norm().tolist(),
            "nan": int(torch.isnan(f).sum()), "inf": int(torch.isinf(f).sum()),
            "zeros": int((f == 0).sum())}


def assert_equals_torch(stats, t):
    ref = torch_reference(t)
    for k in ("min", "max", "mean", "std", "l2"):
        assert math.isclose(getattr(stats, k), ref[k], rel_tol=1e-6, abs_tol=1e-9), k
    assert (stats.nan, stats.inf, stats.zeros) == (ref["nan"], ref["inf"], ref["zeros"])


def plotted_counts(panel):
    """The counts as drawn: read back from the plot's PlotDataItem."""
    plot = panel.findChild(pg.PlotWidget, "histogramPlot")
    items = [i for i in plot.getPlotItem().listDataItems() if i.isVisible()]
    assert len(items) == 1
    return items[0].yData, items[0].xData


@pytest.fixture
def weights():
    g = torch.Generator().manual_seed(4)
    t = torch.randn(64, 50, generator=g) * 2 + 0.5
    t[3, :4] = float("nan")
    t[7, 9] = float("inf")
    t[9, :6] = 0
    return t


def test_named_widgets_exist(panel):
    assert panel.findChild(pg.PlotWidget, "histogramPlot") is panel.plot
    assert isinstance(panel.findChild(QWidget, "statsPanel"), QWidget)
    assert panel.findChild(QCheckBox, "logYCheck") and panel.findChild(QSpinBox, "binsSpin")


def test_stats_equal_torch_and_histogram_counts_finite(panel, qtbot, weights):
    with qtbot.waitSignal(panel.statsReady) as blocker:
        panel.show_tensors("enc.weight", [weights])
    stats = blocker.args[0]
    assert stats is panel.current_stats and panel.is_exact
    assert_equals_torch(stats, weights)
    counts, edges = plotted_counts(panel)
    assert counts.sum() == weights.numel() - 5 == stats.finite
    assert len(edges) == len(counts) + 1 == 101
    shown = panel.findChild(QWidget, "statsPanel").values()
    assert shown["nan"].startswith("4") and shown["inf"].startswith("1")
    assert shown["zeros"].startswith("6 (") and shown["numel"] == "3,200"
    assert float(shown["min"]) == pytest.approx(stats.min, rel=1e-5)
    assert not panel.findChild(QLabel, "approxLabel").isVisible()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.int32, torch.uint8])
def test_other_dtypes(panel, dtype):
    t = (torch.randn(40, 30, generator=torch.Generator().manual_seed(2)) * 20).to(dtype)
    if dtype == torch.uint8:
        t = torch.arange(1200).remainder(256).to(torch.uint8)
    panel.show_tensors("t", [t])
    assert_equals_torch(panel.current_stats, t)
    assert plotted_counts(panel)[0].sum() == t.numel()


def test_log_y_toggle_and_bins(panel, weights):
    panel.show_tensors("w", [weights])
    before = plotted_counts(panel)[0].copy()
    panel.findChild(QCheckBox, "logYCheck").click()
    assert panel.plot.getPlotItem().getAxis("left").logMode and panel.histogram.log_y
    after = plotted_counts(panel)[0]
    assert (after == before).all()  # the data stay counts; only the axis is logarithmic
    QApplication.processEvents()
    panel.findChild(QSpinBox, "binsSpin").setValue(37)
    counts, edges = plotted_counts(panel)
    assert len(counts) == 37 and counts.sum() == weights.numel() - 5
    panel.findChild(QCheckBox, "logYCheck").click()
    assert not panel.plot.getPlotItem().getAxis("left").logMode


def test_big_tensor_shows_approximate_then_exact(panel, qtbot):
    t = torch.randn(30_000_000, generator=torch.Generator().manual_seed(7))
    t[12_345_678] = float("nan")
    previews = []
    panel.previewReady.connect(previews.append)
    with qtbot.waitSignal(panel.statsReady, timeout=60_000) as blocker:
        with qtbot.waitSignal(panel.previewReady, timeout=60_000):
            panel.show_tensors("big", [t])  # the preview too is sampled in a worker
        assert previews and panel.current_stats.approximate and not panel.is_exact
        assert panel.findChild(QLabel, "approxLabel").isVisible()
        assert "≈" in panel.findChild(QWidget, "statsPanel").values()["mean"]
        assert panel.is_busy
    stats = blocker.args[0]
    assert panel.is_exact and stats is panel.current_stats and not stats.approximate
    assert not panel.findChild(QLabel, "approxLabel").isVisible()
    assert_equals_torch(stats, t)
    assert plotted_counts(panel)[0].sum() == t.numel() - 1


def test_switching_tensors_cancels_the_old_computation(panel, qtbot):
    big = torch.randn(40_000_000)
    small = torch.ones(10)
    seen = []
    panel.statsReady.connect(seen.append)
    panel.show_tensors("big", [big])
    old = panel._task
    assert old is not None
    panel.show_tensors("small", [small])
    assert old.is_cancelled and panel.current_stats.numel == 10
    QThreadPool.globalInstance().waitForDone(30_000)
    qtbot.wait(50)
    assert [s.numel for s in seen] == [10]  # the big result never arrived
    assert panel.current_stats.numel == 10 and panel.is_exact


def test_clicking_nan_count_requests_goto(panel, qtbot, weights):
    panel.show_tensors("w", [weights])
    button = panel.findChild(QPushButton, "nanButton")
    assert button.isEnabled()
    with qtbot.waitSignal(panel.gotoRequested) as blocker:
        qtbot.mouseClick(button, Qt.LeftButton)
    assert blocker.args[0] == (3, 0)
    with qtbot.waitSignal(panel.gotoRequested) as blocker:
        qtbot.mouseClick(panel.findChild(QPushButton, "infButton"), Qt.LeftButton)
    assert blocker.args[0] == (7, 9)


def test_goto_in_a_big_tensor_searches_off_thread(panel, qtbot):
    t = torch.zeros(3, 2_000_000)
    t[2, 1_999_998] = float("nan")
    with qtbot.waitSignal(panel.statsReady, timeout=30_000):
        panel.show_tensors("big", [t])
    with qtbot.waitSignal(panel.gotoRequested, timeout=30_000) as blocker:
        qtbot.mouseClick(panel.findChild(QPushButton, "nanButton"), Qt.LeftButton)
    assert blocker.args[0] == (2, 1_999_998)


def test_clean_tensor_has_no_goto(panel):
    panel.show_tensors("w", [torch.randn(10)])
    assert not panel.findChild(QPushButton, "nanButton").isEnabled()
    assert not panel.findChild(QPushButton, "infButton").isEnabled()


def test_module_pools_its_tensors(panel):
    a, b = torch.randn(100), torch.randn(30, 3) + 5
    b[0, 0] = float("nan")
    panel.show_tensors("encoder", [a, b])
    assert_equals_torch(panel.current_stats, torch.cat([a, b.flatten()]))
    assert plotted_counts(panel)[0].sum() == 189
    assert not panel.findChild(QPushButton, "nanButton").isEnabled()  # no single grid to go to
    assert "2 tensors" in panel.title.text()


def test_big_module_preview_then_exact(panel, qtbot):
    parts = [torch.randn(3_000_000), torch.randn(2_000_000) + 3]
    with qtbot.waitSignal(panel.statsReady, timeout=60_000) as blocker:
        with qtbot.waitSignal(panel.previewReady, timeout=60_000):
            panel.show_tensors("big module", parts)
        assert panel.current_stats.approximate
    assert_equals_torch(blocker.args[0], torch.cat(parts))


def test_refresh_bursts_coalesce(panel, qtbot, monkeypatch):
    t = torch.zeros(1000)
    panel.show_tensors("w", [t])
    seen = []
    panel.statsReady.connect(seen.append)
    for i in range(200):  # an edit burst
        t[i] = 1.0
        panel.refresh()
    assert seen == []
    qtbot.waitUntil(lambda: len(seen) == 1, timeout=5_000)
    qtbot.wait(3 * sp.THROTTLE_MS)
    assert len(seen) == 1 and seen[0].zeros == 800


def test_clear(panel, weights):
    panel.show_tensors("w", [weights])
    panel.clear()
    assert panel.current_stats is None and panel.histogram.counts.size == 0
    assert panel.findChild(QWidget, "statsPanel").values()["min"] == "—"
    panel.refresh()  # nothing shown: nothing to do
    panel.show_tensors("empty module", [])
    assert panel.current_stats is None


def test_a_big_tensor_is_sampled_off_the_gui_thread(panel, qtbot, weights):
    """While every pool thread is busy, selecting a big tensor returns at once: the panel says it
    is sampling and keeps the old plot; once the pool frees, the preview then the exact come."""
    from tests.qt.driving import PoolBlocked
    panel.show_tensors("small", [weights])
    old_counts = plotted_counts(panel)[0].copy()
    big = torch.randn(2 * sp.SYNC_LIMIT, generator=torch.Generator().manual_seed(5))
    blocked = PoolBlocked()
    try:
        panel.show_tensors("big", [big])  # returns: the sampling waits in the queue
        assert panel.is_busy and panel.current_stats.numel == weights.numel()
        label = panel.findChild(QLabel, "approxLabel")
        assert label.isVisible() and "sampling" in label.text()
        assert (plotted_counts(panel)[0] == old_counts).all()  # the old plot stays meanwhile,
        assert panel.histogram.item.opacity() == pytest.approx(sp.FADED)  # faded
    finally:
        blocked.release()
    with qtbot.waitSignal(panel.statsReady, timeout=60_000) as blocker:
        qtbot.waitUntil(lambda: panel.current_stats.numel == big.numel(), timeout=60_000)
    assert blocker.args[0].numel == big.numel() and panel.is_exact
    assert panel.histogram.item.opacity() == 1.0
    assert plotted_counts(panel)[0].sum() == big.numel()


def test_a_stale_preview_is_dropped(panel, qtbot, weights):
    """A preview that arrives after another selection is never shown."""
    from tests.qt.driving import PoolBlocked
    big = torch.randn(2 * sp.SYNC_LIMIT, generator=torch.Generator().manual_seed(6))
    blocked = PoolBlocked()
    try:
        panel.show_tensors("big", [big])
        stale = panel._task
        panel.show_tensors("small", [weights])  # synchronous, while the preview waits
        assert stale.is_cancelled and panel.is_exact
    finally:
        blocked.release()
    shown = []
    panel.previewReady.connect(shown.append)
    panel.statsReady.connect(shown.append)
    QThreadPool.globalInstance().waitForDone(30_000)
    qtbot.wait(50)
    assert shown == [] and panel.current_stats.numel == weights.numel()
    # even a result that ran to the end is dropped by its generation
    panel.show_tensors("big", [big])
    task = panel._task
    panel._generation += 1  # as if something else were selected after it started
    qtbot.waitUntil(lambda: task not in panel._running, timeout=60_000)  # it ended
    assert [s for s in shown if s.numel == big.numel()] == []


def test_exact_pass_progress_repaints_are_throttled(panel, qtbot, monkeypatch):
    """Hundreds of progress reports in an instant move the bar once or twice, not each time."""
    from app.qt import progress
    monkeypatch.setattr(progress, "clock", lambda: 5.0)  # no time passes between reports
    reports, moves = [], []
    bar = panel.findChild(QWidget, "statsProgress")
    bar.valueChanged.connect(moves.append)
    plain = stats_workers.show_progress

    def recording(bar, done, total):  # every report the panel gets, from the first one
        reports.append((done, total))
        plain(bar, done, total)
    monkeypatch.setattr(stats_workers, "show_progress", recording)
    from app.core.stats_source import CHUNK
    big = torch.randn(8 * CHUNK, generator=torch.Generator().manual_seed(8))  # 8 progress steps
    with qtbot.waitSignal(panel.statsReady, timeout=60_000):
        panel.show_tensors("big", [big])
    assert len(reports) > 5 and len([v for v in moves if v]) <= 2


def test_a_big_tensors_range_plan_is_made_in_the_workers(panel, qtbot, monkeypatch):
    """The robust range of a big tensor with outliers is planned (sampled) in the preview and
    exact workers, never on the GUI thread."""
    import threading
    gui, seen = threading.get_ident(), []
    plain = sp.plan_view

    def recording(*args, **kwargs):
        seen.append(threading.get_ident())
        return plain(*args, **kwargs)
    monkeypatch.setattr(stats_workers, "plan_view", recording)  # where the panel plans
    big = torch.randn(2 * sp.SYNC_LIMIT, generator=torch.Generator().manual_seed(9))
    big[:5] = 1e6  # outliers: "auto" shows the percentile range
    with qtbot.waitSignal(panel.statsReady, timeout=60_000):
        panel.show_tensors("big", [big])
    qtbot.waitUntil(lambda: panel._view_task is None, timeout=60_000)  # exact counts, if any
    assert seen and gui not in seen
    assert panel.findChild(QLabel, "rangeLabel").text().startswith("Outliers")
    panel.set_range_mode("full")
    panel.set_range_mode("robust")  # another mode: planned in a worker too
    qtbot.waitUntil(lambda: panel._view_task is None, timeout=60_000)
    assert gui not in seen
    assert panel.findChild(QLabel, "rangeLabel").text().startswith("0.1–99.9th percentile")
