"""The grid model's data() for every dtype torch has: text for every role, never an exception,
and qtmodeltester's checks on the odd kinds."""
import warnings

import pytest
import torch
from PySide6.QtCore import Qt

from app.core.model import dtypes
from app.qt.models.grid_model import TensorTableModel
from tests.core.test_dtypes_all import ALL, make

warnings.filterwarnings("ignore", category=UserWarning)
ROLES = (Qt.DisplayRole, Qt.EditRole, Qt.ToolTipRole, Qt.BackgroundRole, Qt.ForegroundRole)


@pytest.mark.parametrize("dtype", ALL, ids=dtypes.dtype_name)
def test_data_of_every_dtype(qapp, dtype):
    t = make(dtype)
    model = TensorTableModel()
    model.set_tensor(t)
    model.set_heatmap(True)
    assert (model.rowCount(), model.columnCount()) == (3, 4)
    for r in range(3):
        for c in range(4):
            for role in ROLES:
                model.data(model.index(r, c), role)
            assert isinstance(model.data(model.index(r, c)), str)
    if dtype == torch.bool:
        assert model.data(model.index(2, 3)) == str(bool(t[2, 3]))
    elif not dtypes.is_raw(dtype):
        shown = float(complex(model.data(model.index(2, 3), Qt.EditRole)).real)
        ref = t.dequantize() if t.is_quantized else t.to(dtypes.value_dtype(dtype))
        assert shown == pytest.approx(float(ref[2, 3].real if ref.is_complex() else ref[2, 3]))


@pytest.mark.parametrize("make_t", [
    lambda: torch.randn(5, 7).to(torch.float8_e5m2),
    lambda: torch.quantize_per_channel(torch.randn(5, 7), torch.rand(7) + 0.1,
                                       torch.zeros(7, dtype=torch.long), 1, torch.qint8),
    lambda: torch.randn(5, 7).relu().to_sparse_csc(),
    lambda: torch.randn(3, 1, 4).expand(3, 6, 4),
], ids=["fp8", "quantized", "csc", "expanded"])
def test_model_tester_on_odd_kinds(qtmodeltester, make_t):
    model = TensorTableModel()
    model.set_tensor(make_t())
    qtmodeltester.check(model)
    model.set_raw(True)
    qtmodeltester.check(model)
