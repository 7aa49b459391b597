"""What the statistics dock shows: robust range, integer bins, axes, scalars, hover, palette,
the empty state, the title that never widens the dock, and the settings kept between runs."""
import numpy as np
import pyqtgraph as pg
import pytest
import torch
from PySide6.QtCore import QPoint, QThreadPool
from PySide6.QtGui import QColor, QFontMetrics, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QLabel, QSpinBox, QWidget

from app.qt.colours import contrast
from app.qt.views.histogram_axes import CountAxis, ValueAxis
from app.qt.views.stats_panel import StatsPanel


def make_panel(qtbot, width=420, height=640):
    p = StatsPanel()
    qtbot.addWidget(p)
    p.resize(width, height)
    p.show()
    qtbot.waitExposed(p)
    return p


@pytest.fixture
def panel(qtbot):
    p = make_panel(qtbot)
    yield p
    p.clear()
    QThreadPool.globalInstance().waitForDone(30_000)


def outliers():
    t = torch.randn(256, 512, generator=torch.Generator().manual_seed(0)) * 0.02
    t[3, 7], t[100, 200], t[5, 5] = 250.0, -180.0, 90.0
    return t


def shown(panel):
    h = panel.histogram
    return h.edges, h.counts, h.below, h.above


def test_outliers_get_the_robust_range_by_default_and_full_on_request(panel, qtbot):
    t = outliers()
    panel.show_tensors("w", [t])
    qtbot.waitUntil(lambda: panel._view_task is None, timeout=30_000)  # exact counts
    edges, counts, below, above = shown(panel)
    assert edges[-1] - edges[0] < 1.0  # not -180 … 250
    assert counts.sum() + below + above == t.numel()
    assert below >= 1 and above >= 2  # the outliers are counted at the edges
    assert int((t < edges[0]).sum()) == below and int((t > edges[-1]).sum()) == above
    text = panel.findChild(QLabel, "rangeLabel").text()
    assert "Outliers" in text and "percentile" in text
    assert panel.findChild(QLabel, "aboveLabel").isVisible()
    assert panel.findChild(QLabel, "belowLabel").text().startswith("◀")
    combo = panel.findChild(QComboBox, "rangeCombo")
    combo.setCurrentIndex(combo.findData("full"))
    edges, counts, below, above = shown(panel)
    assert (edges[0], edges[-1]) == (-180.0, 250.0) and below == above == 0
    assert panel.findChild(QLabel, "rangeLabel").text().startswith("Full range")
    assert not panel.findChild(QLabel, "aboveLabel").isVisible()


def test_a_clean_tensor_keeps_its_full_range_in_auto(panel):
    t = torch.randn(5000, generator=torch.Generator().manual_seed(1))
    panel.show_tensors("w", [t])
    edges, counts, below, above = shown(panel)
    assert (edges[0], edges[-1]) == (float(t.min()), float(t.max())) and below == above == 0
    panel.set_range_mode("robust")  # on request, any tensor
    assert shown(panel)[2] > 0


def test_big_tensor_robust_counts_become_exact(panel, qtbot):
    t = torch.randn(200_000, generator=torch.Generator().manual_seed(3))  # more than sampled
    t[:5] = 1e4
    panel.show_tensors("big", [t])
    assert panel.is_exact and panel._view_task is not None  # the sample's estimate, then exact
    qtbot.waitUntil(lambda: panel._view_task is None, timeout=60_000)
    edges, counts, below, above = shown(panel)
    assert edges[-1] < 10 and above >= 5
    assert counts.sum() + below + above == t.numel()
    ref = np.histogram(t.numpy(), edges)[0]
    # float32 binning: a value within a rounding of an edge may sit in the neighbouring bin
    assert np.abs(counts - ref).sum() <= 1e-4 * t.numel()


@pytest.mark.parametrize("dtype", [torch.int8, torch.int32, torch.uint8])
def test_integers_get_one_bin_per_integer(panel, dtype):
    t = (torch.randn(128, 64, generator=torch.Generator().manual_seed(2)) * 30).round()
    t = (t.abs() if dtype == torch.uint8 else t).clamp(-128, 127).to(dtype)
    panel.show_tensors("q", [t])
    edges, counts, _, _ = shown(panel)
    assert (np.diff(edges) == 1).all() and edges[0] == int(t.min()) - 0.5
    assert counts.sum() == t.numel()
    assert (counts == np.bincount(t.numpy().astype(np.int64).ravel() - int(t.min()))).all()


def test_bool_gets_two_bins(panel):
    t = torch.rand(40, 40, generator=torch.Generator().manual_seed(4)) > 0.7
    panel.show_tensors("mask", [t])
    edges, counts, _, _ = shown(panel)
    assert list(edges) == [-0.5, 0.5, 1.5] and list(counts) == [int((~t).sum()), int(t.sum())]
    ticks = [v for _s, vs in panel.plot.getAxis("bottom").tickValues(-0.5, 1.5, 300) for v in vs]
    assert set(ticks) == {0.0, 1.0}  # integer ticks only


def label_boxes(axis, lo, hi, size):
    """Pixel extents of the major tick labels an axis of ``size`` px draws for lo..hi."""
    levels = axis.tickValues(lo, hi, size)
    spacing, values = levels[0]
    texts = axis.tickStrings(values, 1.0, spacing)
    fm = QFontMetrics(axis.font())
    boxes = []
    for v, s in zip(values, texts):
        x = (v - lo) / (hi - lo) * size
        w = fm.horizontalAdvance(s)
        boxes.append((x - w / 2, x + w / 2))
    return texts, boxes


@pytest.mark.parametrize("lo,hi", [(0, 8000), (-0.0625, 0.0619), (25300.6, 25301.4),
                                   (-1.5e6, 2.5e6)])
@pytest.mark.parametrize("size", [120, 200, 400])
def test_value_tick_labels_never_overlap(qtbot, lo, hi, size):
    axis = ValueAxis("bottom")
    texts, boxes = label_boxes(axis, lo, hi, size)
    assert len(texts) >= 1
    for (a0, a1), (b0, b1) in zip(boxes, boxes[1:]):
        assert b0 - a1 > 0, (texts, boxes)


def test_counts_on_the_y_axis_are_whole_numbers(qtbot):
    axis = CountAxis("left")
    for hi, size in ((3, 400), (7.5, 300), (131072, 300), (1.2, 500)):
        for spacing, values in axis.tickValues(0, hi, size):
            assert spacing >= 1
            assert all(float(v).is_integer() for v in values)
    assert axis.tickStrings([0, 2000, 4000], 1, 2000) == ["0", "2k", "4k"]
    axis.setLogMode(False, True)
    levels = axis.tickValues(np.log10(0.5), np.log10(131072), 300)
    assert all(float(v).is_integer() and v >= 0 for _s, vs in levels for v in vs)
    assert axis.tickStrings([0, 3, 5], 1, 1) == ["1", "1k", "100k"]


def test_axis_label_and_log_y(panel):
    panel.show_tensors("w", [torch.randn(1000)])
    assert panel.plot.getAxis("bottom").labelText == "value"
    panel.findChild(QCheckBox, "logYCheck").click()
    assert panel.plot.getAxis("left").logMode and panel.plot.getAxis("left").labelText == "count (log)"


@pytest.mark.parametrize("t,text", [(torch.tensor(25301.0), "25301"),
                                    (torch.tensor([0.125]), "0.125")])
def test_a_single_element_shows_as_its_value(panel, t, text):
    panel.show_tensors("s", [t])
    value = panel.findChild(QLabel, "scalarValue")
    assert value.isVisible() and text in value.text()
    assert not panel.plot.isVisible() and not panel.findChild(QSpinBox, "binsSpin").isVisible()
    panel.show_tensors("w", [torch.randn(100)])
    assert panel.plot.isVisible() and not value.isVisible()


def test_all_nan_says_so(panel):
    panel.show_tensors("n", [torch.full((10,), float("nan"))])
    assert "no finite values" in panel.findChild(QLabel, "scalarValue").text()


def test_hover_shows_the_bins_range_and_count(panel, qtbot):
    t = torch.tensor([0, 1, 1, 2, 2, 2, 3], dtype=torch.int32)
    panel.show_tensors("i", [t])
    QApplication.processEvents()
    vb = panel.plot.getPlotItem().getViewBox()
    scene_pos = vb.mapViewToScene(pg.Point(2.0, 1.0))
    pos = panel.plot.mapFromScene(scene_pos)
    QTest.mouseMove(panel.plot.viewport(), QPoint(int(pos.x()), int(pos.y())))
    hover = panel.findChild(QLabel, "histogramHover")
    qtbot.waitUntil(lambda: "3 elements" in hover.text())
    assert hover.text() == "value 2: 3 elements" and panel.plot.toolTip() == hover.text()
    assert panel.histogram.bin_description(panel.histogram.bin_at(0.9)) == "value 1: 2 elements"


def dark_palette():
    p = QPalette()
    for role, c in [(QPalette.Window, "#2b2b2b"), (QPalette.Base, "#1e1e1e"),
                    (QPalette.Text, "#e0e0e0"), (QPalette.WindowText, "#e0e0e0"),
                    (QPalette.Highlight, "#3d7ad6")]:
        p.setColor(role, QColor(c))
    return p


def test_the_plot_follows_the_palette(panel):
    panel.show_tensors("w", [torch.randn(1000)])
    panel.setPalette(dark_palette())
    QApplication.processEvents()
    assert panel.plot.backgroundBrush().color().name() == "#1e1e1e"
    assert panel.plot.getAxis("left").textPen().color().name() == "#e0e0e0"
    bar = pg.mkBrush(panel.histogram.curve.opts["fillBrush"]).color()
    assert (bar.red(), bar.green(), bar.blue()) == (0x3d, 0x7a, 0xd6)


def test_outlier_counts_stay_readable_in_a_dark_theme_with_a_dark_link_colour(panel):
    """A dark palette that keeps the default dark-blue Link: the "N below / N above" marks
    must still stand out from the plot's background."""
    palette = dark_palette()
    palette.setColor(QPalette.Link, QColor("#0000ff"))
    panel.setPalette(palette)
    panel.show_tensors("w", [outliers()])
    QApplication.processEvents()
    label = panel.findChild(QLabel, "belowLabel")
    colour = QColor(label.styleSheet().split("color:")[1].split(";")[0].strip())
    assert contrast(colour, QColor("#1e1e1e")) >= 3, colour.name()


def test_nothing_selected_shows_one_hint_not_empty_axes(panel):
    fresh = StatsPanel()
    fresh.show()
    hint = fresh.findChild(QLabel, "statsEmptyHint")
    assert hint.isVisible()
    assert not fresh.plot.isVisible() and not fresh.findChild(QWidget, "statsPanel").isVisible()
    fresh.show_tensors("w", [torch.randn(10)])
    assert not hint.isVisible() and fresh.plot.isVisible()
    fresh.clear()
    assert hint.isVisible() and not fresh.findChild(QWidget, "statsPanel").isVisible()
    fresh.close()


def test_a_long_name_does_not_widen_the_panel(qtbot):
    short = make_panel(qtbot)
    short.show_tensors("w", [torch.randn(10)])
    long_ = make_panel(qtbot)
    long_.show_tensors("a_very_long_module_name." * 8 + "weight", [torch.randn(10)])
    assert long_.minimumSizeHint().width() == short.minimumSizeHint().width()
    assert long_.sizeHint().width() == short.sizeHint().width()
    title = long_.findChild(QLabel, "statsTitle")
    assert "…" in title.text() and title.toolTip().startswith("a_very_long")
    assert title.text().endswith("weight   (float32)")


def test_bins_log_y_and_range_mode_are_kept_between_runs(qtbot):
    first = make_panel(qtbot)
    first.findChild(QSpinBox, "binsSpin").setValue(40)
    first.findChild(QCheckBox, "logYCheck").setChecked(True)
    first.set_range_mode("full")
    second = make_panel(qtbot)
    assert second.bins == 40 and second.histogram.log_y and second.range_mode == "full"
    assert second.findChild(QCheckBox, "logYCheck").isChecked()


def test_long_figures_wrap_instead_of_widening_the_table(qtbot):
    from app.core.stats import Stats
    from app.qt.views.stats_table import StatsTable
    table = StatsTable()
    qtbot.addWidget(table)
    figures = dict(numel=50_000_000, dtype="float32", min=-0.123456, max=0.123456)
    table.set_stats(Stats(**figures))
    exact = table.minimumSizeHint().width()
    table.set_stats(Stats(**figures, approximate=True, sampled=1_048_576))
    assert "sampled" in table.values()["numel"]
    assert table.minimumSizeHint().width() < exact + 60  # not + "  (≈ from 1,048,576 sampled)"


def test_a_module_of_many_tensors_gets_its_range_in_a_worker(panel, qtbot):
    from app.qt.views import stats_panel as sp
    g = torch.Generator().manual_seed(5)
    tensors = [torch.randn(200, generator=g) * 0.02 for _ in range(sp.SYNC_TENSORS + 6)]
    tensors[0][0] = 500.0
    with qtbot.waitSignal(panel.statsReady, timeout=30_000):
        panel.show_tensors("many", tensors)
    assert panel._view_task is not None  # nothing sampled per tensor on the GUI thread
    qtbot.waitUntil(lambda: panel._view_task is None, timeout=30_000)
    edges, counts, below, above = shown(panel)
    assert edges[-1] < 1.0 and above >= 1
    assert counts.sum() + below + above == sum(t.numel() for t in tensors)
    title = panel.findChild(QLabel, "statsTitle")
    assert "<b>" not in title.text() and title.text().startswith("many")


def test_rich_text_titles_show_as_plain_text(qtbot):
    from app.qt.views.elided_label import ElidedLabel
    label = ElidedLabel()
    qtbot.addWidget(label)
    label.setText("<b>encoder</b> &nbsp; (70 tensors)")
    assert label.full_text.startswith("encoder") and label.full_text.endswith("(70 tensors)")
    assert "<" not in label.full_text and "&nbsp;" not in label.full_text


def test_the_statistics_dock_keeps_its_width_for_a_long_name(qtbot, window):
    from app.core.model.document import Document
    long_name = "a_very_long_module_name.with.many.levels.of.nesting." * 3 + "weight"
    window.open_document(Document.from_object({"w": torch.randn(4, 4),
                                               long_name: torch.randn(4, 4)}), "t")
    window.resize(1024, 700)
    window.show()
    qtbot.waitExposed(window)
    assert window.select_name("w")
    qtbot.wait(50)
    width = window.stats_dock.width()
    assert window.select_name(long_name)
    qtbot.wait(50)
    assert window.stats_dock.width() == width
    assert window.findChild(QLabel, "statsTitle").toolTip().startswith(long_name)


def test_a_narrow_axis_keeps_more_than_one_label(qtbot):
    """±0.1 on 243 px: a step of 0.1 puts ticks only at the ends, where pyqtgraph hides their
    labels, leaving "0.0" alone; the axis takes 0.05 when those labels still do not touch."""
    from app.qt.views.histogram_axes import ValueAxis, _inner_ticks
    axis = ValueAxis("bottom")
    lo, hi = -0.10013742737514934, 0.10003866247875652
    (major, _), *_minor = axis.tickSpacing(lo, hi, 243.4)
    margin = axis._label_extent(lo, hi) * (hi - lo) / 243.4
    assert _inner_ticks(lo, hi, major, margin) >= 2, major
