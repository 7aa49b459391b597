"""Issue 9: opening a file comes in short turns of the event loop. The tree is painted first, its
columns are fitted on a later turn, the first tensor is shown after that (each with its paint,
not one stall); the statistics panel keeps its plot in place, faded, between the old document
and the new one's first tensor (hiding it for the empty hint and showing it again a moment later
laid the panel and the plot out twice)."""
from __future__ import annotations


import torch
from PySide6.QtCore import QEvent, QObject

from tests.helpers.qt import wait_for_document


class Log(QObject):
    """Appends ``name`` to ``log`` for each ``kind`` event the watched widget gets."""

    def __init__(self, widget, name: str, log: list, kind=QEvent.Paint):
        super().__init__(widget)
        self.name, self.log, self.kind = name, log, kind
        widget.installEventFilter(self)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if event.type() == self.kind:
            self.log.append(self.name)
        return False


def _checkpoint(path):
    g = torch.Generator().manual_seed(0)
    torch.save({f"layer{i}.weight": torch.randn(40, 40, generator=g) for i in range(6)}, str(path))
    return str(path)


def _opened(qtbot, window, path):
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    panel = window.stats_panel
    qtbot.waitUntil(lambda: panel.label == "layer0.weight" and not panel.is_busy
                    and panel.current_stats is not None)
    qtbot.wait(30)
    return panel


def test_opening_paints_the_tree_before_it_fits_the_columns_and_shows_the_first_tensor(
        qtbot, window, tmp_path):
    _opened(qtbot, window, _checkpoint(tmp_path / "a.pt"))
    other = tmp_path / "b.pt"
    torch.save({"a_much_longer_module_name.weight": torch.ones(3, 3)}, str(other))
    log = []
    Log(window.tree_view.viewport(), "tree painted", log)
    window.tree_view.header().sectionResized.connect(lambda *_: log.append("fitted"))
    window.tree_view.selectionModel().currentRowChanged.connect(lambda *_: log.append("selected"))
    window.open_path(str(other))
    qtbot.waitUntil(lambda: "selected" in log, timeout=60_000)  # a hang detector only
    assert "tree painted" in log and "fitted" in log and "selected" in log, log
    assert log.index("tree painted") < log.index("fitted") < log.index("selected"), log
    assert window.tree_panel.current_node().full_name == "a_much_longer_module_name.weight"
    header, fm = window.tree_view.header(), window.tree_view.fontMetrics()
    assert header.sectionSize(0) > fm.horizontalAdvance("a_much_longer_module_name")


def test_a_reopen_keeps_the_histogram_in_place_until_the_first_tensor(qtbot, window, tmp_path):
    path = _checkpoint(tmp_path / "a.pt")
    panel = _opened(qtbot, window, path)
    log = []
    for widget, name in ((panel.plot, "plot"), (panel.empty_hint, "hint"), (panel.table, "table")):
        Log(widget, f"{name} hidden", log, QEvent.Hide)
        Log(widget, f"{name} shown", log, QEvent.Show)
    resized = []
    panel.histogram.item.getViewBox().sigResized.connect(lambda *_: resized.append(1))
    between = []  # right after the new document is shown, before its first tensor

    def shown(_doc):
        between.append((panel.label, panel.current_stats, panel.table.values()["numel"],
                        panel.range_label.text().strip(),
                        panel.plot.isVisible(), panel.empty_hint.isVisible(),
                        panel.histogram.item.opacity() < 1))
    window.controller.documentChanged.connect(shown)  # after the window's own slots
    curve = panel.histogram.curve
    window.open_path(path)
    qtbot.waitUntil(lambda: bool(between))
    # nothing of the old document's figures, the plot faded in place, no empty hint
    assert between == [("", None, "—", "", True, False, True)]
    qtbot.waitUntil(lambda: panel.label == "layer0.weight" and not panel.is_busy
                    and panel.current_stats is not None)
    qtbot.wait(30)
    assert log == [] and resized == []
    assert panel.histogram.curve is curve and panel.histogram.item.opacity() == 1
    assert panel.table.values()["numel"] == "1,600"


def test_a_document_without_tensors_still_gets_the_empty_hint(qtbot, window, tmp_path):
    panel = _opened(qtbot, window, _checkpoint(tmp_path / "a.pt"))
    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 3}, str(empty))
    old = window.controller.document
    window.open_path(str(empty))
    qtbot.waitUntil(lambda: window.controller.document is not old)
    qtbot.wait(30)
    assert panel.empty_hint.isVisible() and not panel.plot.isVisible()
    assert panel.histogram.item.opacity() == 1


def test_reopening_the_same_file_leaves_the_columns_alone(qtbot, window, tmp_path):
    """Fitted to the same widths, no column changes, not even for a moment: set one by one, the
    columns went to their raw widths and back, and the whole tree was painted again."""
    path = _checkpoint(tmp_path / "a.pt")
    _opened(qtbot, window, path)
    header = window.tree_view.header()
    widths = [header.sectionSize(c) for c in range(header.count())]
    resized = []
    header.sectionResized.connect(lambda *args: resized.append(args))
    old = window.controller.document
    window.open_path(path)
    qtbot.waitUntil(lambda: window.controller.document is not old)
    qtbot.waitUntil(lambda: window.tree_panel.current_node() is not None
                    and not window.stats_panel.is_busy)
    qtbot.wait(30)
    assert resized == []
    assert [header.sectionSize(c) for c in range(header.count())] == widths
