"""The grid model: cell texts equal the tensor's values for every rank and dtype, read in blocks."""

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication

from app.qt.models.grid_model import (BAD_BG, BAD_FG, BLOCK_COLS, BLOCK_ROWS, TensorTableModel,
                                      auto_digits)


def texts(model):
    return [[model.index(r, c).data() for c in range(model.columnCount())]
            for r in range(model.rowCount())]


def expected_values(t2d):
    """The tensor's values as Python numbers (bf16 through float32, as the grid reads it)."""
    if t2d.dtype == torch.bfloat16:
        t2d = t2d.float()
    return t2d.tolist()


def assert_cells_equal(model, t2d):
    """Shown to the dtype's digits (bf16 and fp16 texts read back to the same value); the edit
    text is the exact value."""
    got, want = texts(model), expected_values(t2d)
    rel = 0.5 * 10.0 ** (1 - model.precision)
    exact = [[model.index(r, c).data(Qt.EditRole) for c in range(model.columnCount())]
             for r in range(model.rowCount())]
    assert exact == [[repr(v) if isinstance(v, float) else str(v) for v in row] for row in want]
    assert len(got) == len(want) and all(len(g) == len(w) for g, w in zip(got, want))
    for grow, wrow in zip(got, want):
        for text, value in zip(grow, wrow):
            if isinstance(value, bool):
                assert text == str(value)
            elif isinstance(value, int):
                assert text == str(value)
            else:
                assert float(text) == pytest.approx(value, rel=rel, abs=0, nan_ok=True)
                if t2d.dtype in (torch.bfloat16, torch.float16):
                    assert torch.tensor(float(text)).to(t2d.dtype).item() == value


@pytest.fixture
def model(qtbot):
    return TensorTableModel()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16,
                                   torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
                                   torch.bool])
def test_cells_equal_tensor_values_for_every_dtype(model, dtype):
    g = torch.Generator().manual_seed(1)
    base = torch.randn(23, 9, generator=g) * 50
    t = base > 0 if dtype == torch.bool else base.to(dtype)
    if dtype == torch.int64:
        t[0, 0] = 2**62 + 1  # beyond float64's exact integers: shown exactly
    model.set_tensor(t)
    assert (model.rowCount(), model.columnCount()) == (23, 9)
    assert_cells_equal(model, t)
    if dtype == torch.int64:
        assert model.index(0, 0).data() == str(2**62 + 1)


def test_zero_dim_and_one_dim(model):
    model.set_tensor(torch.tensor(3.25))
    assert (model.rowCount(), model.columnCount()) == (1, 1)
    assert model.index(0, 0).data() == "3.25" and model.tensor_index(0, 0) == ()
    v = torch.arange(7, dtype=torch.float64) / 3
    model.set_tensor(v)
    assert (model.rowCount(), model.columnCount()) == (7, 1)
    assert_cells_equal(model, v.unsqueeze(1))
    assert model.headerData(4, Qt.Vertical) == "4" and model.tensor_index(4, 0) == (4,)


def test_nd_slice_picks_the_right_slice(model):
    t = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    model.set_tensor(t, 2, 3, {0: 1, 1: 2})
    assert_cells_equal(model, t[1, 2])
    model.set_slice(0, 3, {1: 1, 2: 3})
    assert (model.rowCount(), model.columnCount()) == (2, 5)
    assert_cells_equal(model, t[:, 1, 3, :])
    model.set_slice(3, 1, {0: 1, 2: 0})  # rows after columns: transposed
    assert_cells_equal(model, t[1, :, 0, :].t())
    assert model.tensor_index(4, 2) == (1, 2, 0, 4)
    assert t[model.tensor_index(4, 2)] == float(model.index(4, 2).data())


def test_headers_are_indices(model):
    model.set_tensor(torch.zeros(5, 12))
    assert [model.headerData(i, Qt.Horizontal) for i in (0, 11)] == ["0", "11"]
    assert [model.headerData(i, Qt.Vertical) for i in (0, 4)] == ["0", "4"]


@pytest.mark.parametrize("shape", [(), (6,), (5, 7), (2, 3, 4), (0, 3), (3, 0, 2)])
def test_qt_model_tester(qtmodeltester, model, shape):
    model.set_tensor(torch.randn(shape))
    qtmodeltester.check(model)


def test_model_tester_after_slice_changes(qtmodeltester, model):
    model.set_tensor(torch.randn(3, 4, 5))
    model.set_slice(0, 2, {1: 2})
    qtmodeltester.check(model)
    model.set_tensor(None)
    qtmodeltester.check(model)


def test_nan_and_inf_cells_stand_out(model):
    t = torch.tensor([[1.0, float("nan")], [float("inf"), -float("inf")]])
    model.set_tensor(t)
    assert model.index(0, 1).data() == "nan" and model.index(1, 1).data() == "-inf"
    for r, c in ((0, 1), (1, 0), (1, 1)):
        assert model.index(r, c).data(Qt.ForegroundRole) == BAD_FG
        assert model.index(r, c).data(Qt.BackgroundRole) == BAD_BG
    assert model.index(0, 0).data(Qt.ForegroundRole) is None
    assert model.index(0, 0).data(Qt.BackgroundRole) is None


def test_heatmap_is_diverging_and_centred_at_zero(model):
    t = torch.tensor([[-4.0, 0.0, 4.0, 1.0, float("nan")]])
    model.set_tensor(t)
    assert model.index(0, 0).data(Qt.BackgroundRole) is None  # off by default
    model.set_heatmap(True)
    neg, zero, pos, small = (QColor(model.index(0, c).data(Qt.BackgroundRole)) for c in range(4))
    assert zero == QColor(255, 255, 255)
    assert neg.blue() > neg.red() and pos.red() > pos.blue()
    assert small.red() > small.blue() and small.green() > pos.green()  # paler: scaled by max |x|
    assert model.index(0, 4).data(Qt.BackgroundRole) == BAD_BG
    model.set_heat_scale(1.0)  # e.g. from exact statistics
    assert QColor(model.index(0, 3).data(Qt.BackgroundRole)) == pos


def test_default_digits_follow_the_dtype(model):
    x = 0.1234567891234
    for dtype, text in ((torch.float64, "0.1234567891"), (torch.float32, "0.1234568"),
                        (torch.float16, "0.12347"), (torch.bfloat16, "0.1235")):
        model.set_tensor(torch.tensor([[x]], dtype=dtype))
        assert model.index(0, 0).data() == text, dtype
    assert (auto_digits(torch.float8_e4m3fn), auto_digits(torch.qint8)) == (4, 7)
    model.set_tensor(torch.tensor([[2**62 + 1]]))
    assert model.index(0, 0).data() == str(2**62 + 1)  # integers exact
    model.set_precision(3)  # the user's choice overrides every dtype's
    model.set_tensor(torch.tensor([[x]], dtype=torch.float64))
    assert model.index(0, 0).data() == "0.123"
    model.set_precision(0)  # back to auto
    assert model.index(0, 0).data() == "0.1234567891"


def test_precision_and_scientific(model):
    model.set_tensor(torch.tensor([[0.123456789, 12345.678]], dtype=torch.float64))
    assert model.index(0, 0).data() == "0.123456789"
    model.set_precision(3)
    assert [model.index(0, c).data() for c in (0, 1)] == ["0.123", "1.23e+04"]
    model.set_scientific(True)
    assert [model.index(0, c).data() for c in (0, 1)] == ["1.23e-01", "1.23e+04"]
    model.set_tensor(torch.tensor([[7, -3]]))
    assert [model.index(0, c).data() for c in (0, 1)] == ["7", "-3"]  # ints stay exact


def test_invalidate_after_in_place_edit(model, qtbot):
    t = torch.zeros(4, 4)
    model.set_tensor(t)
    assert model.index(2, 3).data() == "0"
    t[2, 3] = 5.5
    with qtbot.waitSignal(model.dataChanged):
        model.invalidate()
    assert model.index(2, 3).data() == "5.5"


def test_parameter_requiring_grad_is_readable(model):
    p = torch.nn.Parameter(torch.ones(2, 3))
    model.set_tensor(p)
    assert model.index(1, 2).data() == "1"


def test_huge_tensor_reads_blocks_only(model):
    t = torch.arange(4096, dtype=torch.float32).expand(50_000, 4096)  # 2e8 cells, no memory
    model.set_tensor(t)
    assert (model.rowCount(), model.columnCount()) == (50_000, 4096)
    assert model.index(49_999, 4095).data() == "4095"
    assert model.index(12_345, 77).data() == "77"
    assert len(model._blocks) == 2
    block = model._blocks[(12_345 // BLOCK_ROWS, 77 // BLOCK_COLS)]
    assert len(block) == BLOCK_ROWS and len(block[0]) == BLOCK_COLS


def contrast(a: QColor, b: QColor) -> float:
    def lum(c):
        ch = [x / 255 for x in (c.red(), c.green(), c.blue())]
        ch = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in ch]
        return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2]
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_heatmap_text_reads_on_its_cell_whatever_the_palette(model):
    """The text colour of a coloured cell comes from the cell, not from the (maybe dark)
    palette: white palette text on a pale cell would vanish."""
    model.set_tensor(torch.linspace(-1, 1, 41).reshape(1, 41))
    model.set_heatmap(True)
    for c in range(41):
        bg = QColor(model.index(0, c).data(Qt.BackgroundRole))
        fg = model.index(0, c).data(Qt.ForegroundRole)
        assert fg is not None and contrast(QColor(fg), bg) >= 4.5, c
    from app.qt.models.grid_model import text_on
    assert text_on(QColor(20, 20, 80)) == QColor(255, 255, 255)
    assert text_on(QColor(250, 250, 250)) == QColor(0, 0, 0)
    model.set_heatmap(False)
    assert model.index(0, 0).data(Qt.ForegroundRole) is None  # the palette's own text


def test_showing_reads_only_blocks_never_the_whole_tensor(qtbot, monkeypatch):
    """Selecting a big tensor with the heatmap on reads the visible blocks only (the heat scale
    grows with them until exact statistics arrive), through numpy, never per cell."""
    from app.core.model import dtypes
    from app.qt.models import grid_model
    from app.qt.views.tensor_view import TensorView
    read = []
    real = dtypes.values
    monkeypatch.setattr(dtypes, "values", lambda t: read.append(t.numel()) or real(t))
    monkeypatch.setattr(grid_model, "numpy_block",
                        lambda t: read.append(t.numel()) or dtypes.to_numpy(t))
    monkeypatch.setattr(torch.Tensor, "item", lambda self: pytest.fail("item() per cell"))
    view = TensorView()
    qtbot.addWidget(view)
    view.resize(1400, 900)
    view.heatmap_check.setChecked(True)
    view.show()
    qtbot.waitExposed(view)
    for t in (torch.randn(2048, 2048), torch.randn(4_000_000), torch.ones(1).expand(10**9)):
        read.clear()
        view.show_tensor("big", t)
        QApplication.processEvents()  # lays out and paints the grid
        assert read and max(read) <= BLOCK_ROWS * BLOCK_COLS, (t.shape, max(read))
        assert view.model.index(0, 0).data(Qt.BackgroundRole) is not None


def test_heatmap_in_a_dark_palette_is_centred_on_the_dark_base(model):
    from PySide6.QtGui import QGuiApplication, QPalette
    old = QGuiApplication.palette()
    dark = QPalette(old)
    dark.setColor(QPalette.Base, QColor(30, 30, 32))
    QGuiApplication.setPalette(dark)
    try:
        model.set_tensor(torch.tensor([[-1.0, 0.0, 0.3, 1.0]]))
        model.set_heatmap(True)
        cells = [(QColor(model.index(0, c).data(Qt.BackgroundRole)),
                  QColor(model.index(0, c).data(Qt.ForegroundRole))) for c in range(4)]
    finally:
        QGuiApplication.setPalette(old)
    assert cells[1][0] == QColor(30, 30, 32)  # zero: the dark base, not a white glare
    assert cells[1][1] == QColor(255, 255, 255)
    assert all(contrast(fg, bg) >= 4.5 for bg, fg in cells)
