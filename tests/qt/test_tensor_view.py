"""TensorView: slice controls driven through their widgets, goto, copy, refresh."""
import pytest
import torch
from PySide6.QtCore import QItemSelection, QItemSelectionModel, QPoint, Qt
from PySide6.QtWidgets import QApplication, QComboBox, QLabel, QSpinBox, QTableView

from app.qt.views.tensor_view import TensorView


def grid_values(view):
    """The cells' exact values (their edit text; the shown text has the dtype's digits)."""
    m = view.grid.model()
    return [[float(m.index(r, c).data(Qt.EditRole)) for c in range(m.columnCount())]
            for r in range(m.rowCount())]


@pytest.fixture
def view(qtbot):
    v = TensorView()
    qtbot.addWidget(v)
    v.resize(900, 600)
    v.show()
    qtbot.waitExposed(v)
    return v


@pytest.fixture
def t4():
    return torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)


def test_widgets_have_their_names(view):
    grid = view.findChild(QTableView, "tensorGrid")
    assert grid is view.grid
    view.show_tensor("enc.weight", torch.zeros(3, 4, 5))
    for name in ("rowAxisCombo", "colAxisCombo"):
        assert view.findChild(QComboBox, name) is not None
    assert [view.findChild(QSpinBox, f"sliceAxis{a}") is not None for a in range(3)] == [True] * 3
    title = view.findChild(QLabel, "tensorTitle").text()
    assert "enc.weight" in title and "3×4×5" in title and "float32" in title


def test_2d_grid_shows_the_tensor(view):
    t = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    view.show_tensor("w", t)
    got = grid_values(view)
    assert len(got) == 6 and all(len(r) == 4 for r in got)
    assert sum(got, []) == pytest.approx(t.flatten().tolist(), rel=1e-7)
    assert view.row_combo.isVisible() and not any(s.isVisible() for s in view._spins)


def test_nd_default_is_the_last_two_axes(view, t4):
    view.show_tensor("x", t4)
    assert (view.model.row_axis, view.model.col_axis) == (2, 3)
    assert grid_values(view) == t4[0, 0].tolist()
    visible = [view.findChild(QSpinBox, f"sliceAxis{a}").isVisible() for a in range(4)]
    assert visible == [True, True, False, False]


def test_spin_boxes_pick_the_slice(view, qtbot, t4):
    view.show_tensor("x", t4)
    view.findChild(QSpinBox, "sliceAxis0").setValue(1)
    spin1 = view.findChild(QSpinBox, "sliceAxis1")
    spin1.setFocus()
    qtbot.keyClick(spin1, Qt.Key_Up)
    qtbot.keyClick(spin1, Qt.Key_Up)
    assert spin1.value() == 2
    assert grid_values(view) == t4[1, 2].tolist()


def test_axis_combos_pick_rows_and_columns(view, t4):
    view.show_tensor("x", t4)
    view.findChild(QSpinBox, "sliceAxis1").setValue(2)
    view.findChild(QComboBox, "rowAxisCombo").setCurrentIndex(0)  # rows: axis 0, columns: axis 3
    assert (view.model.rowCount(), view.model.columnCount()) == (2, 5)
    assert grid_values(view) == t4[:, 2, 0, :].tolist()
    assert [view.findChild(QSpinBox, f"sliceAxis{a}").isVisible() for a in range(4)] == \
        [False, True, True, False]
    view.findChild(QSpinBox, "sliceAxis2").setValue(3)
    assert grid_values(view) == t4[:, 2, 3, :].tolist()


def test_choosing_the_other_combos_axis_swaps_them(view, t4):
    view.show_tensor("x", t4)
    view.col_combo.setCurrentIndex(2)  # the row axis: rows and columns swap
    assert (view.model.row_axis, view.model.col_axis) == (3, 2)
    assert view.row_combo.currentData() == 3
    assert grid_values(view) == t4[0, 0].t().tolist()


def test_goto_index_sets_slice_scrolls_and_selects(view, t4):
    view.show_tensor("x", t4)
    view.goto_index((1, 2, 3, 4))
    assert view.findChild(QSpinBox, "sliceAxis0").value() == 1
    assert view.findChild(QSpinBox, "sliceAxis1").value() == 2
    current = view.grid.currentIndex()
    assert (current.row(), current.column()) == (3, 4)
    assert view.grid.selectionModel().isSelected(current)
    assert float(current.data()) == t4[1, 2, 3, 4]


def test_goto_index_in_a_long_vector_scrolls_there(view):
    v = torch.arange(100_000, dtype=torch.float32)
    view.wrap_check.setChecked(False)  # one column
    view.show_tensor("v", v)
    view.goto_index((77_777,))
    current = view.grid.currentIndex()
    assert current.row() == 77_777 and current.data() == "77777"
    assert view.grid.rowAt(view.grid.viewport().height() // 2) in range(77_700, 77_850)
    view.wrap_check.setChecked(True)  # rows of w: the same element, in its row and column
    w = view.model.wrap
    assert w > 1 and view.grid.currentIndex().data() == "77777"
    view.goto_index((99_999,))
    current = view.grid.currentIndex()
    assert (current.row(), current.column()) == divmod(99_999, w) and current.data() == "99999"


def test_copy_selection_as_tsv(view, qtbot):
    t = torch.tensor([[1.5, 2.0, 3.0], [4.0, float("nan"), 6.25], [7.0, 8.0, 9.0]])
    view.show_tensor("w", t)
    m = view.model
    sel = QItemSelection(m.index(0, 1), m.index(1, 2))
    view.grid.selectionModel().select(sel, QItemSelectionModel.ClearAndSelect)
    view.grid.setFocus()
    QApplication.clipboard().clear()
    qtbot.keyClick(view.grid, Qt.Key_C, Qt.ControlModifier)
    assert QApplication.clipboard().text() == "2\t3\nnan\t6.25"


def test_copy_of_two_ranges_fills_the_gap(view):
    t = torch.arange(12).reshape(3, 4)
    view.show_tensor("ints", t)
    m, sm = view.model, view.grid.selectionModel()
    sm.select(QItemSelection(m.index(0, 0), m.index(0, 0)), QItemSelectionModel.Select)
    sm.select(QItemSelection(m.index(2, 3), m.index(2, 3)), QItemSelectionModel.Select)
    assert view.grid.copy_selection() == "0\t\t\t\n\t\t\t\n\t\t\t11"


def test_copy_of_a_huge_selection_is_capped(view):
    view.show_tensor("big", torch.ones(1, 100).expand(100_000, 100))
    view.grid.selectAll()
    text, cut = view.grid.selection_text(limit=10_000)
    assert cut and text.count("\n") == 99 and text.split("\n")[0] == "\t".join(["1"] * 100)


def test_bf16_and_bool_display(view):
    b = torch.tensor([[0.1, -2.5]], dtype=torch.bfloat16)
    view.show_tensor("b", b)
    assert view.model.index(0, 0).data() == "0.1001"  # 4 digits: enough for bfloat16
    assert float(view.model.index(0, 0).data(Qt.EditRole)) == b.float()[0, 0].item()
    assert "bfloat16" in view.title.text()
    view.show_tensor("mask", torch.tensor([True, False]))
    assert [view.model.index(r, 0).data() for r in range(2)] == ["True", "False"]
    assert not view.row_combo.isVisible()


def test_settings_widgets_change_the_display(view):
    view.show_tensor("w", torch.tensor([[0.123456789]], dtype=torch.float64))
    view.precision_spin.setValue(3)
    assert view.model.index(0, 0).data() == "0.123"
    view.scientific_check.setChecked(True)
    assert view.model.index(0, 0).data() == "1.23e-01"
    view.heatmap_check.setChecked(True)
    assert view.model.heatmap


def test_refresh_after_in_place_edit_and_clear(view):
    t = torch.zeros(3, 3)
    view.show_tensor("w", t)
    assert view.model.index(1, 1).data() == "0"
    t.mul_(0).add_(2)
    view.refresh()
    assert view.model.index(1, 1).data() == "2"
    view.clear()
    assert view.model.rowCount() == 0 and view.tensor is None
    assert "No tensor" in view.title.text()
    view.goto_index((0, 0))  # nothing shown: no error


def test_select_all_on_a_huge_grid_selects_every_cell(view):
    """The repaint time of this case is measured by benchmarks/bench_gui.py (it took seconds
    when the headers walked every cell); here: the whole grid is selected, as one range."""
    view.show_tensor("huge", torch.ones(1, 4096).expand(50_000, 4096))
    QApplication.processEvents()
    view.grid.selectAll()
    view.grid.repaint()
    ranges = view.grid.selectionModel().selection()
    assert len(ranges) == 1
    assert (ranges[0].height(), ranges[0].width()) == (50_000, 4096)


def test_clicking_a_header_selects_its_column(view, qtbot):
    view.show_tensor("w", torch.zeros(5, 4))
    header = view.grid.horizontalHeader()
    x = header.sectionViewportPosition(2) + header.sectionSize(2) // 2
    qtbot.mouseClick(header.viewport(), Qt.LeftButton, pos=QPoint(x, 5))
    sm = view.grid.selectionModel()
    assert sm.isColumnSelected(2) and not sm.isColumnSelected(1)
    assert view.grid.copy_selection() == "0\n0\n0\n0\n0"


def test_default_axes_skip_trailing_size_one_axes(qtbot):
    """A [2048, 512, 1, 1] convolution opens as 2048 x 512, not as one column."""
    from app.core.model.slice2d import default_axes
    from app.qt.views.tensor_view import TensorView
    assert default_axes((2048, 512, 1, 1)) == (0, 1)
    assert default_axes((2048, 512, 1)) == (0, 1)
    assert default_axes((64, 3, 7, 7)) == (2, 3)   # a real kernel keeps the last two axes
    assert default_axes((5,)) == (0, 1)
    view = TensorView()
    qtbot.addWidget(view)
    view.show_tensor("conv.weight", torch.randn(32, 16, 1, 1))
    model = view.model
    assert (model.rowCount(), model.columnCount()) == (32, 16)
    assert (view.row_combo.currentData(), view.col_combo.currentData()) == (0, 1)
    view.show()
    assert [s.isVisible() for s in view._spins] == [False] * 4  # size-1 axes: nothing to pick
