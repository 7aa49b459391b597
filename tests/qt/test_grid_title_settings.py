"""The grid's title (name elided in the middle, shape and dtype kept) and its settings kept
between runs."""
from __future__ import annotations

import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.qt.views import grid_settings
from app.qt.views.tensor_view import TensorView

LONG = "model.encoder.layers.11.self_attention.query_key_value.weight"


def make_view(qtbot, width: int) -> TensorView:
    v = TensorView()
    qtbot.addWidget(v)
    v.resize(width, 500)
    v.show()
    qtbot.waitExposed(v)
    return v


def test_a_long_name_elides_in_the_middle_and_keeps_shape_and_dtype(qtbot):
    view = make_view(qtbot, 320)
    view.show_tensor(LONG, torch.zeros(3072, 1024, dtype=torch.bfloat16))
    title = view.title
    text = title.text()
    assert "3072×1024" in text and "bfloat16" in text  # never cut
    shown = text[text.index("<b>") + 3:text.index("</b>")]
    assert "…" in shown and shown.startswith("model.") and shown.endswith("weight")
    fm = title.fontMetrics()
    assert title.width() >= fm.horizontalAdvance("3072×1024  bfloat16")
    assert LONG in title.toolTip() and "3072×1024" in title.toolTip()
    view.resize(1400, 500)  # room enough: the whole name and the element count
    qtbot.waitUntil(lambda: LONG in title.text())
    assert "3,145,728 elements" in title.text()


def test_title_stays_readable_when_very_narrow(qtbot):
    view = make_view(qtbot, 120)
    view.show_tensor(LONG, torch.zeros(2048, 512, 1, 1))
    assert "2048×512×1×1" in view.title.text() and "float32" in view.title.text()
    assert view.title.width() >= view.title.fontMetrics().horizontalAdvance("2048×512×1×1 float32")


def test_other_title_text_is_shown_as_given(qtbot):
    view = make_view(qtbot, 600)
    view.show_tensor("w", torch.zeros(2))
    view.title.setText("<b>w</b> has no gradient (never computed)")
    view.resize(700, 500)
    QApplication.processEvents()
    assert view.title.text() == "<b>w</b> has no gradient (never computed)"


def test_settings_are_kept_between_runs(qtbot):
    first = make_view(qtbot, 800)
    first.show_tensor("w", torch.randn(100))
    first.precision_spin.setValue(3)
    qtbot.mouseClick(first.scientific_check, Qt.LeftButton)
    qtbot.mouseClick(first.heatmap_check, Qt.LeftButton)
    first.wrap_combo.setFocus()
    qtbot.keyClick(first.wrap_combo, Qt.Key_Down)  # a user's pick: 8 per row
    assert first.wrap_combo.currentData() == 8 and first.model.wrap == 8
    qtbot.mouseClick(first.wrap_check, Qt.LeftButton)  # off
    kept = grid_settings.load()
    assert kept == {grid_settings.DIGITS: 3, grid_settings.SCIENTIFIC: True,
                    grid_settings.HEATMAP: True, grid_settings.WRAP: False,
                    grid_settings.WRAP_WIDTH: 8}
    second = make_view(qtbot, 800)  # the next run
    assert second.precision_spin.value() == 3 and second.model.precision == 3
    assert second.scientific_check.isChecked() and second.model.scientific
    assert second.heatmap_check.isChecked() and second.model.heatmap
    assert not second.wrap_check.isChecked() and second.wrap_combo.currentData() == 8
    second.show_tensor("b", torch.arange(100.0))
    assert second.model.columnCount() == 1  # wrap off, as the user left it
    # a flow's choice (the heatmap of a difference) is not the user's: not kept
    second.heatmap_check.setChecked(False)
    assert grid_settings.load()[grid_settings.HEATMAP]


def test_unreadable_settings_fall_back_to_defaults(qtbot):
    from app.qt.settings import settings
    settings().setValue(grid_settings.DIGITS, "lots")
    settings().setValue(grid_settings.WRAP_WIDTH, -5)
    kept = grid_settings.load()
    assert kept[grid_settings.DIGITS] == 0 and kept[grid_settings.WRAP_WIDTH] == 0
    view = make_view(qtbot, 600)
    assert view.precision_spin.text() == "digits: auto"
