"""The edit dialog's before / after preview: a stale "after" goes on a syntax error, and a tall
"after" spike (a fill) leaves "before" readable."""
import numpy as np
import pytest
import torch
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit

from app.core.model.document import Document
from app.qt.dialogs.edit_dialog import EditDialog
from app.qt.edit_flows import edit_dialog_hooks, shapes_of


@pytest.fixture
def dialog(qtbot):
    t = torch.randn(2000, generator=torch.Generator().manual_seed(0))
    doc = Document.from_object({"w": t})
    d = EditDialog(shapes_of(doc, ["w"]), "w", **edit_dialog_hooks(doc))
    qtbot.addWidget(d)
    d.show()
    qtbot.waitExposed(d)
    yield d
    d.reject()
    QThreadPool.globalInstance().waitForDone(10_000)


def set_expression(qtbot, d, text):
    d.operation.setCurrentIndex(d.operation.findData("expr"))
    d.findChild(QLineEdit, "expression").setText(text)


def test_a_syntax_error_clears_the_stale_after_curve(qtbot, dialog):
    set_expression(qtbot, dialog, "w * 0.5")
    qtbot.waitUntil(lambda: dialog.changed_count == 2000, timeout=10_000)
    assert dialog._after.yData.sum() == 2000
    dialog.findChild(QLineEdit, "expression").setText("w *")
    qtbot.waitUntil(lambda: dialog.findChild(QLabel, "errorLabel").text() != "", timeout=10_000)
    assert dialog._after.yData is None or dialog._after.yData.sum() == 0  # no "after" to show
    assert dialog._before.yData.sum() == 2000      # "before" is still what the tensor holds
    x_lo, x_hi = dialog.plot.getPlotItem().getViewBox().viewRange()[0]
    assert x_hi < 1.5 * float(dialog._before.xData[-1])  # the range is still that of "before"


def test_before_stays_visible_next_to_a_spike(qtbot, dialog):
    dialog.operation.setCurrentIndex(dialog.operation.findData("set"))
    dialog.findChild(QLineEdit, "value").setText("0")
    qtbot.waitUntil(lambda: dialog.changed_count == 2000, timeout=10_000)
    before_top = float(np.max(dialog._before.yData))
    y_lo, y_hi = dialog.plot.getPlotItem().getViewBox().viewRange()[1]
    assert before_top <= y_hi < 2 * before_top      # "before" fills the height, not 1/20th of it
    assert dialog._spike.isVisible() and dialog._spike.textItem.toPlainText() == "▲ 2,000"
    assert dialog._before.zValue() > dialog._after.zValue()
    set_expression(qtbot, dialog, "w * 0.9")  # no spike: the axis fits both again
    qtbot.waitUntil(lambda: not dialog._spike.isVisible(), timeout=10_000)


def test_outliers_do_not_squash_the_preview(qtbot):
    t = torch.randn(5000, generator=torch.Generator().manual_seed(1)) * 0.02
    t[:3] = torch.tensor([250.0, -180.0, 90.0])
    doc = Document.from_object({"w": t})
    d = EditDialog(shapes_of(doc, ["w"]), "w", **edit_dialog_hooks(doc))
    qtbot.addWidget(d)
    d.show()
    set_expression(qtbot, d, "w * 0.5")
    qtbot.waitUntil(lambda: d.changed_count == 5000, timeout=10_000)
    edges = d._before.xData
    assert edges[-1] - edges[0] < 1.0
    assert "outliers not shown" in d.plot.getPlotItem().titleLabel.text
    d.reject()
    QThreadPool.globalInstance().waitForDone(10_000)
