"""The grid inside the window: drag-over highlight, Tab order, a wrapped bias edited by a real
double click, settings kept between runs."""
from __future__ import annotations

import torch
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QDragLeaveEvent
from PySide6.QtWidgets import QApplication, QWidget

from app.core.model.document import Document
from tests.helpers.qt import drag_enter, drop, mime_for, wait_for_document


def test_dragging_a_checkpoint_over_the_window_highlights_it(qtbot, demo_window, tied_file):
    overlay = demo_window.findChild(QWidget, "dropOverlay")
    qtbot.waitExposed(demo_window) if demo_window.isVisible() else demo_window.show()
    assert overlay is not None and not overlay.isVisible()
    assert not drag_enter(demo_window, mime_for(text="not a file"))
    assert not overlay.isVisible()  # refused: no promise shown
    assert drag_enter(demo_window, mime_for([tied_file[0]]))
    assert overlay.isVisible() and "tied.pt" in overlay.text
    assert overlay.geometry() == demo_window.rect()
    QApplication.sendEvent(demo_window, QDragLeaveEvent())
    assert not overlay.isVisible()
    # over a child that takes drops itself (the histogram's view): the same highlight
    plot = next(w for w in demo_window.findChildren(QWidget) if w.acceptDrops() and w is not demo_window)
    assert drag_enter(plot, mime_for([tied_file[0]])) and overlay.isVisible()
    QApplication.sendEvent(plot, QDragLeaveEvent())
    assert not overlay.isVisible()
    assert drop(demo_window, mime_for([tied_file[0]]))
    assert not overlay.isVisible()  # cleared on drop
    wait_for_document(qtbot, demo_window, tied_file[0])


def focus_walk(qtbot, window, start: QWidget, steps: int) -> list[str]:
    start.setFocus(Qt.TabFocusReason)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is start)
    names = [start.objectName()]
    for _ in range(steps):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Tab)
        w = QApplication.focusWidget()
        names.append(w.objectName() or type(w).__name__)
    return names


def test_tab_walks_filter_tree_controls_grid_stats(qtbot, window):
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    window.open_document(Document.from_object({"w": torch.randn(4, 5, 6)}), "t")
    qtbot.waitUntil(lambda: window.tensor_view.name == "w")
    qtbot.waitUntil(lambda: not window.stats_panel.is_busy)  # its controls shown a turn later
    names = focus_walk(qtbot, window, window.tree_panel.filter, 30)
    order = ["treeFilter", "nonfiniteButton", "moduleTree", "precisionSpin", "scientificCheck", "heatmapCheck",
             "rowAxisCombo", "colAxisCombo", "sliceAxis0", "tensorGrid"]
    assert names[:len(order)] == order, names
    # then the statistics panel's controls, and round again to the filter
    back = names.index("treeFilter", 1)
    stats = {w.objectName() or type(w).__name__ for w in window.stats_panel.findChildren(QWidget)}
    assert back > len(order) and set(names[len(order):back]) <= stats, names


def test_a_wrapped_bias_is_edited_at_the_right_element(qtbot, window):
    from tests.qt.test_edit_flows import edit_cell
    bias = torch.arange(100, dtype=torch.float32)
    window.show()
    qtbot.waitExposed(window)
    window.open_document(Document.from_object({"fc.bias": bias}), "bias")
    qtbot.waitUntil(lambda: window.tensor_view.name == "fc.bias")
    view, model = window.tensor_view, window.tensor_view.model
    view.wrap_combo.setCurrentIndex(view.wrap_combo.findData(16))
    assert model.wrap == 16 and (model.rowCount(), model.columnCount()) == (7, 16)
    assert model.headerData(2, Qt.Vertical) == "32" and model.headerData(3, Qt.Horizontal) == "+3"
    edit_cell(qtbot, window, 2, 3, "-7.5")  # row of 32.., column +3: element 35
    qtbot.waitUntil(lambda: float(bias[35]) == -7.5)
    assert torch.equal(bias[:35], torch.arange(35.)) and torch.equal(bias[36:], torch.arange(36., 100))
    assert model.index(2, 3).data() == "-7.5"
    assert model.index(6, 4).flags() == Qt.NoItemFlags  # past element 99: nothing to edit
    assert not model.setData(model.index(6, 4), "1", Qt.EditRole)
