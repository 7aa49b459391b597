"""ref["NAME"] in the edit dialog: the reference of File > Compare With… is what it reads."""
from __future__ import annotations

import torch
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit

from tests.helpers.qt import wait_for_document
from tests.qt.driving import child, click_ok, open_dialog
from tests.qt.test_compare_flows import compared, pair  # noqa: F401 - pair is a fixture
from tests.qt.test_recipe_gui import export_recipe

EXPR = 'w + 0.5 * (ref["enc.0.weight"] - w)'


def _expression_dialog(qtbot, window, text: str):
    dialog = open_dialog(qtbot, window, window.actionEdit, "editDialog")
    combo = child(dialog, QComboBox, "operation")
    combo.setCurrentIndex(combo.findData("expr"))
    qtbot.keyClicks(child(dialog, QLineEdit, "expression"), text)
    return dialog


def test_an_expression_reads_the_reference_applies_undoes_and_is_recorded(qtbot, window, pair,
                                                                          tmp_path):
    flows = compared(qtbot, window, pair)
    pa, pb, a, b = pair
    doc = window.controller.document
    assert window.select_name("enc.0.weight")
    dialog = _expression_dialog(qtbot, window, EXPR)
    qtbot.waitUntil(lambda: dialog.changed_count == 1, timeout=10_000)  # one element differs
    assert child(dialog, QLabel, "errorLabel").text() == ""
    click_ok(qtbot, dialog)
    w, r = a["enc.0.weight"], b["enc.0.weight"]
    expected = w + 0.5 * (r - w)
    qtbot.waitUntil(lambda: torch.equal(doc.tensor("enc.0.weight"), expected), timeout=10_000)
    window.actionUndo.trigger()
    assert torch.equal(doc.tensor("enc.0.weight"), w)
    window.actionRedo.trigger()
    assert torch.equal(doc.tensor("enc.0.weight"), expected)
    assert flows.reference is not None
    recipe = export_recipe(window, tmp_path / "r.recipe.json")
    assert recipe["inputs"] == {"ref": pb}
    assert recipe["steps"] == [{"op": "expr", "target": "enc.0.weight", "expr": EXPR}]


def test_without_a_reference_the_dialog_says_how_to_open_one(qtbot, window, pair):
    pa, _pb, _a, _b = pair
    window.open_path(pa)
    wait_for_document(qtbot, window, pa)
    assert window.select_name("enc.0.weight")
    dialog = _expression_dialog(qtbot, window, EXPR)
    label = child(dialog, QLabel, "errorLabel")
    qtbot.waitUntil(lambda: "no reference is open: File > Compare With…" in label.text(),
                    timeout=10_000)
    dialog.reject()
