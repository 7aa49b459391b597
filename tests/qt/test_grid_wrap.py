"""A vector wrapped into rows: cells, headers, the short last row, copy, sparse, the toggle."""
from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt

from app.qt.models.grid_model import TensorTableModel
from app.qt.views.tensor_view import WRAP_MIN, TensorView, auto_wrap


@pytest.fixture
def view(qtbot):
    v = TensorView()
    qtbot.addWidget(v)
    v.resize(1000, 600)
    v.show()
    qtbot.waitExposed(v)
    return v


def test_model_wraps_a_vector_into_rows(qapp):
    m = TensorTableModel()
    m.set_tensor(torch.arange(23.0), wrap=10)
    assert (m.rowCount(), m.columnCount()) == (3, 10)
    assert [m.headerData(r, Qt.Vertical) for r in range(3)] == ["0", "10", "20"]
    assert m.headerData(4, Qt.Horizontal) == "+4"
    assert m.index(1, 4).data() == "14" and m.tensor_index(1, 4) == (14,)
    assert m.index(2, 2).data() == "22" and m.index(2, 3).data() == ""  # past the end
    assert m.tensor_index(2, 3) is None and m.index(2, 3).flags() == Qt.NoItemFlags
    assert m.index(2, 3).data(Qt.ToolTipRole) is None
    assert m.cell_of((22,)) == (2, 2)
    m.set_wrap(0)  # one column again
    assert (m.rowCount(), m.columnCount()) == (23, 1) and m.index(14, 0).data() == "14"
    assert m.headerData(0, Qt.Horizontal) == "value"


def test_heatmap_of_a_wrapped_vector_skips_the_missing_cells(qapp):
    m = TensorTableModel()
    m.set_tensor(torch.linspace(-1, 1, 23), wrap=10)
    m.set_heatmap(True)
    assert m.index(0, 0).data(Qt.BackgroundRole) is not None
    assert m.index(2, 5).data(Qt.BackgroundRole) is None
    assert m.index(2, 5).data(Qt.ForegroundRole) is None


def test_sparse_and_bf16_vectors_wrap(qapp):
    dense = torch.zeros(50)
    dense[[3, 17, 49]] = torch.tensor([1.5, -2.0, 7.0])
    m = TensorTableModel()
    m.set_tensor(dense.to_sparse(), wrap=16)
    assert (m.rowCount(), m.columnCount()) == (4, 16)
    assert [m.index(r, c).data() for r, c in ((0, 3), (1, 1), (3, 1), (3, 0))] == \
        ["1.5", "-2", "7", "0"]
    m.set_tensor(torch.arange(40).to(torch.bfloat16), wrap=16)
    assert m.index(2, 7).data() == "39"


def test_a_long_vector_wraps_by_default_a_short_one_does_not(view):
    view.show_tensor("bias", torch.arange(3000.0))
    m = view.model
    assert view.wrap_check.isChecked() and m.wrap > 1
    assert m.columnCount() == m.wrap and m.rowCount() == -(-3000 // m.wrap)
    # as many as fit the pane (no horizontal scrolling), a round number
    assert view.grid.horizontalHeader().length() <= view.grid.viewport().width()
    assert m.wrap * 2 * view.cell_width() > view.grid.viewport().width()
    assert auto_wrap(1000, 100) == 10 and auto_wrap(900, 100) == 8 and auto_wrap(700, 100) == 7 and auto_wrap(1900, 100) == 16
    view.show_tensor("short", torch.arange(float(WRAP_MIN)))
    assert (m.rowCount(), m.columnCount()) == (WRAP_MIN, 1)
    assert not view.wrap_check.isEnabled()
    view.show_tensor("w", torch.zeros(3, 4))  # matrices: no wrap controls
    assert view.wrap_check.isHidden() and view.wrap_combo.isHidden()


def test_fixed_width_toggle_and_resize(view, qtbot):
    view.show_tensor("bias", torch.arange(1000.0))
    view.wrap_combo.setCurrentIndex(view.wrap_combo.findData(16))
    m = view.model
    assert (m.rowCount(), m.columnCount()) == (63, 16)
    view.grid.setCurrentIndex(m.index(10, 5))  # element 165
    qtbot.mouseClick(view.wrap_check, Qt.LeftButton)  # off: one column, same element current
    assert (m.rowCount(), m.columnCount()) == (1000, 1)
    assert view.grid.currentIndex().row() == 165
    qtbot.mouseClick(view.wrap_check, Qt.LeftButton)
    view.wrap_combo.setCurrentIndex(view.wrap_combo.findData(0))  # auto: follows the width
    wide = m.wrap
    view.resize(500, 600)
    qtbot.waitUntil(lambda: m.wrap < wide)
    assert view.grid.currentIndex().data() == "165"


def test_copy_of_a_wrapped_selection_leaves_missing_cells_empty(view):
    view.show_tensor("bias", torch.arange(40.0))
    view.wrap_combo.setCurrentIndex(view.wrap_combo.findData(16))
    m = view.model
    sel = QItemSelection(m.index(1, 14), m.index(2, 15))
    view.grid.selectionModel().select(sel, QItemSelectionModel.ClearAndSelect)
    assert view.grid.selection_text()[0] == "30\t31\n\t"
