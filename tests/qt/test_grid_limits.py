"""Tensors with an axis past 2^31 - 1 elements in the grid (issue 15): Qt's 32-bit counts and
header lengths never overflow. A vector is wrapped (even with wrapping off), a too-long axis is
shown through a window whose start the user picks; the last element is reached and read."""
from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from app.qt.models import grid_limits
from app.qt.models.grid_limits import MAX_COLS, MAX_ROWS, least_wrap
from app.qt.models.grid_model import TensorTableModel
from app.qt.views.tensor_view import TensorView

BIG = 3_000_000_000  # past 2^31 - 1; expanded (stride 0): no memory
INT_MAX = 2 ** 31 - 1


@pytest.fixture
def view(qtbot):
    v = TensorView()
    qtbot.addWidget(v)
    v.resize(900, 600)
    v.show()
    qtbot.waitExposed(v)
    return v


def _fits(view) -> None:
    m, grid = view.model, view.grid
    assert m.rowCount() <= MAX_ROWS and m.columnCount() <= MAX_COLS
    for header in (grid.verticalHeader(), grid.horizontalHeader()):
        assert 0 < header.length() < INT_MAX  # pixels: a 32-bit int in Qt


def _scroll_to_last(qtbot, view):
    m = view.model
    last = m.index(m.rowCount() - 1, m.columnCount() - 1)
    view.grid.scrollTo(last)
    qtbot.wait(10)
    rect = view.grid.visualRect(last)
    assert rect.isValid() and view.grid.viewport().rect().contains(rect.center())
    return last


def test_a_vector_of_3e9_elements_unwrapped_is_wrapped_and_its_end_is_read(qtbot, view):
    view.wrap_check.setChecked(False)  # one column asked: 3e9 rows would overflow Qt
    view.show_tensor("huge", torch.full((1,), 2.5).expand(BIG))
    m = view.model
    _fits(view)
    assert m.wrap == least_wrap(BIG, 0) == 200 and m.rowCount() == BIG // 200
    note = view.findChild(QLabel, "gridLimitNote")
    assert note.isVisible() and "200 per row" in note.text()
    last = _scroll_to_last(qtbot, view)
    assert m.tensor_index(last.row(), last.column()) == (BIG - 1,)
    assert m.data(last) == "2.5"
    assert m.headerData(m.rowCount() - 1, Qt.Vertical) == str(BIG - 200)


@pytest.mark.parametrize("rows", [1, 2])
def test_rows_of_3e9_columns_are_windowed_and_the_window_moves_to_the_end(qtbot, view, rows):
    view.show_tensor("row", torch.arange(float(rows)).view(rows, 1).expand(rows, BIG))
    m = view.model
    _fits(view)
    assert m.columnCount() == MAX_COLS and m.rowCount() == rows
    spin = view.findChild(QLabel, "gridLimitNote").parent().spins[1]
    assert spin.objectName() == "windowStart1" and spin.maximum() == BIG - MAX_COLS
    spin.setValue(spin.maximum())  # as the user types the last start
    assert m.windows()[0].start == BIG - MAX_COLS
    last = _scroll_to_last(qtbot, view)
    assert m.tensor_index(last.row(), last.column()) == (rows - 1, BIG - 1)
    assert m.data(last) == str(rows - 1)
    assert m.headerData(last.column(), Qt.Horizontal) == str(BIG - 1)
    assert "of 3,000,000,000 shown" in view.window_controls.note.text()


def test_an_index_past_32_bits_on_a_fixed_axis_is_picked(qtbot, view):
    t = torch.arange(4.0).view(1, 2, 2).expand(BIG, 2, 2)
    view.show_tensor("stack", t)  # shows axes 1 and 2; axis 0 is picked with a spin box
    spin = view._spins[0]
    spin.setValue(BIG - 1)
    assert view.model.fixed == {0: BIG - 1}
    assert view.model.tensor_index(1, 1) == (BIG - 1, 1, 1) and view.model.index(1, 1).data() == "3"


def test_go_to_an_element_outside_the_window_moves_it(qtbot, view):
    view.show_tensor("row", torch.zeros(1, 1).expand(1, BIG))
    view.goto_index((0, BIG - 10))
    current = view.grid.currentIndex()
    assert view.model.tensor_index(current.row(), current.column()) == (0, BIG - 10)
    assert int(view.window_controls.spins[1].value()) == view.model.windows()[0].start


def test_windowed_cells_map_to_their_own_elements(qapp, monkeypatch):
    monkeypatch.setattr(grid_limits, "MAX_COLS", 100)  # a small limit: values differ per column
    monkeypatch.setattr(grid_limits, "MAX_ROWS", 50)
    m = TensorTableModel()
    m.set_tensor(torch.arange(300 * 7).view(7, 300).T.contiguous())  # 300 x 7
    assert (m.rowCount(), m.columnCount()) == (50, 7)
    m.set_window_start(0, 120)
    assert m.index(0, 3).data() == str(3 * 300 + 120) and m.tensor_index(0, 3) == (120, 3)
    assert m.headerData(0, Qt.Vertical) == "120" and m.cell_of((130, 2)) == (10, 2)
    m.set_window_start(0, 10_000)  # kept inside the axis
    assert m.windows()[0].start == 250 and m.index(49, 6).data() == str(6 * 300 + 299)
    m.set_tensor(torch.arange(30_000))  # a vector: wrapped past 50 rows, windowed past 50 x 100
    assert m.wrap == 100 and m.rowCount() == 50
    m.set_window_start(0, 29_000)
    assert m.tensor_index(49, 99) == (29_999,) and m.index(49, 99).data() == "29999"
    assert m.headerData(1, Qt.Vertical) == "25100"
