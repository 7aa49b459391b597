"""Every dtype kind through the real window: select -> grid text, stats panel, edits, toggles."""
from __future__ import annotations

import warnings

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel

from app.__main__ import main
from tests.helpers.qt import wait_for_document

warnings.filterwarnings("ignore", category=UserWarning)


@pytest.fixture
def kinds_file(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=g)
    d = x.clone()
    d[d.abs() < 0.7] = 0
    sd = {
        "f8": torch.tensor([[0.3, -1.75], [448.0, 2.0]]).to(torch.float8_e4m3fn),
        "f5": torch.tensor([[0.3, -1.75]]).to(torch.float8_e5m2),
        "q": torch.quantize_per_tensor(x, 0.1, 3, torch.quint8),
        "qc": torch.quantize_per_channel(x, torch.rand(5, generator=g) + 0.05,
                                         torch.zeros(5, dtype=torch.long), 1, torch.qint8),
        "coo": d.to_sparse(), "csr": d.to_sparse_csr(),
        "z": torch.tensor([1 + 2j, -3j, 4.0], dtype=torch.complex64),
        "u16": torch.tensor([1, 65535], dtype=torch.uint16),
        "big": torch.ones(1).expand(10 ** 6, 10 ** 6),
    }
    path = tmp_path / "kinds.pt"
    torch.save(sd, path)
    return path, sd, d


def select(qtbot, window, name):
    assert window.select_name(name)
    qtbot.waitUntil(lambda: window.tensor_view.name == name)
    qtbot.waitUntil(lambda: not window.stats_panel.is_busy, timeout=20_000)
    return window.tensor_view.model


def cell(model, r, c):
    return model.data(model.index(r, c))


def stat(window, key):
    return window.stats_panel.table.values()[key]


def test_fp8_shows_values_stats_and_takes_cell_edits(qtbot, window, kinds_file):
    path, sd, _ = kinds_file
    window.open_path(str(path))
    wait_for_document(qtbot, window, path)
    model = select(qtbot, window, "f8")
    assert [cell(model, 0, 0), cell(model, 0, 1), cell(model, 1, 0)] == ["0.3125", "-1.75", "448"]
    assert stat(window, "max") == "448" and stat(window, "min") == "-1.75"
    assert window.stats_panel.histogram.counts.sum() == 4
    assert model.setData(model.index(0, 0), "0.5", Qt.EditRole)
    assert float(window.controller.document.tensor("f8")[0, 0].float()) == 0.5
    refused = []
    model.editRefused.connect(refused.append)
    assert not model.setData(model.index(0, 0), "1e6", Qt.EditRole)
    assert refused and "float8_e4m3fn" in refused[0]
    model = select(qtbot, window, "f5")
    assert cell(model, 0, 1) == "-1.75"


def test_quantized_values_with_raw_integers_one_click_away(qtbot, window, kinds_file):
    path, sd, _ = kinds_file
    window.open_path(str(path))
    wait_for_document(qtbot, window, path)
    for name in ("q", "qc"):
        model = select(qtbot, window, name)
        deq = sd[name].dequantize()
        assert float(cell(model, 1, 2)) == pytest.approx(float(deq[1, 2]), rel=1e-6)
        assert float(stat(window, "mean")) == pytest.approx(float(deq.double().mean()), rel=1e-5)
        tip = model.data(model.index(1, 2), Qt.ToolTipRole)
        assert f"stored {int(sd[name].int_repr()[1, 2])}," in tip and "zero point" in tip
        raw = window.tensor_view.findChild(QCheckBox, "rawIntegersCheck")
        assert not raw.isHidden()
        qtbot.mouseClick(raw, Qt.LeftButton)
        assert cell(model, 1, 2) == str(int(sd[name].int_repr()[1, 2]))
        assert "zero point" in window.tensor_view.findChild(QLabel, "tensorTitle").text()
        refused = []
        model.editRefused.connect(refused.append)
        assert not model.setData(model.index(0, 0), "1", Qt.EditRole)
        assert refused and "\n" not in refused[0]
    select(qtbot, window, "f8")
    assert window.tensor_view.findChild(QCheckBox, "rawIntegersCheck").isHidden()


def test_sparse_shown_dense_with_nnz(qtbot, window, kinds_file):
    path, sd, dense = kinds_file
    window.open_path(str(path))
    wait_for_document(qtbot, window, path)
    for name in ("coo", "csr"):
        model = select(qtbot, window, name)
        shown = [float(cell(model, r, c)) for r in range(4) for c in range(5)]
        assert shown == pytest.approx(dense.flatten().tolist(), rel=1e-6)
        title = window.tensor_view.findChild(QLabel, "tensorTitle").text()
        assert f"nnz {int((dense != 0).sum())}" in title and "sparse" in title
        assert stat(window, "zeros").startswith(f"{int((dense == 0).sum())}")
        row = window.tree_view.currentIndex()
        assert row.siblingAtColumn(3).data() == f"float32, {'sparse_' + name}"


def test_complex_cell_and_stats_by_part(qtbot, window, kinds_file):
    path, sd, _ = kinds_file
    window.open_path(str(path))
    wait_for_document(qtbot, window, path)
    model = select(qtbot, window, "z")
    assert model.setData(model.index(2, 0), "1+2j", Qt.EditRole)
    assert window.controller.document.tensor("z")[2] == complex(1, 2)
    qtbot.waitUntil(lambda: stat(window, "max") == "3")  # |z|: 3 is the largest
    combo = window.stats_panel.findChild(QComboBox, "complexPartCombo")
    assert not combo.isHidden()
    combo.setCurrentIndex(combo.findData("imag"))
    qtbot.waitUntil(lambda: stat(window, "min") == "-3" and stat(window, "max") == "2")


def test_uint16_and_expanded_tensor(qtbot, window, kinds_file):
    path, sd, _ = kinds_file
    window.open_path(str(path))
    wait_for_document(qtbot, window, path)
    model = select(qtbot, window, "u16")
    assert cell(model, 1, 0) == "65535" and stat(window, "max") == "65535"
    model = select(qtbot, window, "big")
    assert model.rowCount() == 10 ** 6 and cell(model, 999_999, 999_999) == "1"
    assert stat(window, "mean") == "1" and stat(window, "std") == "0"
    assert stat(window, "numel").startswith("1,000,000,000,000")


def test_std_tooltip_says_bessel(window):
    tip = window.stats_panel.table.fields["std"].toolTip()
    assert "Bessel" in tip and "torch.Tensor.std()" in tip


def test_screenshot_select_fp8_and_quantized_in_process(tmp_path, kinds_file, qapp):
    path, _, _ = kinds_file
    for name in ("f8", "qc", "csr"):
        out = tmp_path / f"{name}.png"
        assert main(["screenshot", str(path), "-o", str(out), "--select", name,
                     "--size", "600x400"]) == 0
        assert out.stat().st_size > 1000


def test_live_quantized_model_shows_its_packed_weight(qtbot, window):
    from app.core.model.document import Document
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.ao.nn.quantized.Linear(4, 3))
    window.open_document(Document.from_module(m), "quantized model")
    name = "0._packed_params._packed_params.0"
    model = select(qtbot, window, name)
    w = m[0].weight().dequantize()
    assert float(model.data(model.index(2, 1))) == pytest.approx(float(w[2, 1]))
    assert stat(window, "numel").startswith("12")
    refused = []
    model.editRefused.connect(refused.append)
    assert not model.setData(model.index(0, 0), "1", Qt.EditRole)
    assert refused and "\n" not in refused[0]
