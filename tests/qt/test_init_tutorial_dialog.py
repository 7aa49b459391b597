"""The initializer dialog on a live model, the tutorials' way: a substring / regex type filter,
normalisation weights left out of "weights" (and the preview says so), a seeded reset."""
from __future__ import annotations

import torch
from PySide6.QtWidgets import QCheckBox, QLabel, QLineEdit, QSpinBox
from torch import nn

import app
from tests.helpers.prompts import FakePrompts
from tests.qt.driving import child, click_ok, open_dialog, retype


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv1d(2, 4, 3), nn.BatchNorm1d(4), nn.ReLU(),
                                   nn.Conv1d(4, 4, 1))
        self.head = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))


def open_window(qtbot, model):
    win = app.open_editor(model)
    qtbot.addWidget(win)
    win.prompts = FakePrompts(save_changes="discard")
    return win


def test_all_weights_preview_and_regex_filter(qtbot):
    model = Net()
    bn, ln = model.block[1].weight.detach().clone(), model.head[1].weight.detach().clone()
    win = open_window(qtbot, model)
    win.select_name("block")
    dialog = open_dialog(qtbot, win, win.actionInitialize, "initializerDialog")
    dialog.scope_combo.setCurrentIndex(dialog.scope_combo.findData("subtree"))
    dialog.which_combo.setCurrentIndex(dialog.which_combo.findData("weights"))
    dialog.function_combo.setCurrentIndex(dialog.function_combo.findData("zeros_"))
    preview = child(dialog, QLabel, "targetsLabel").text()
    assert "2 tensors will change" in preview
    assert "1 normalisation weight (block.1.weight)" in preview
    retype(qtbot, child(dialog, QLineEdit, "moduleTypeFilter"), "Conv")  # substring
    assert dialog.targets() == ["block.0.weight", "block.3.weight"]
    retype(qtbot, child(dialog, QLineEdit, "moduleTypeFilter"), "^Batch.*d$")  # regex
    assert dialog.targets() == ["block.1.weight"]
    retype(qtbot, child(dialog, QLineEdit, "moduleTypeFilter"), "Conv1d")
    click_ok(qtbot, dialog)
    assert torch.count_nonzero(model.block[0].weight) == 0
    assert torch.equal(model.block[1].weight, bn) and torch.equal(model.head[1].weight, ln)


def test_reset_parameters_takes_a_seed(qtbot):
    model, reference = Net(), Net()
    torch.manual_seed(9)
    for m in reference.head.modules():
        if callable(getattr(m, "reset_parameters", None)):
            m.reset_parameters()
    win = open_window(qtbot, model)
    win.select_name("head")
    dialog = open_dialog(qtbot, win, win.actionInitialize, "initializerDialog")
    dialog.scope_combo.setCurrentIndex(dialog.scope_combo.findData("subtree"))
    child(dialog, QCheckBox, "resetParametersCheck").setChecked(True)
    seed = child(dialog, QCheckBox, "seedCheck")
    assert seed.isEnabled()
    seed.setChecked(True)
    child(dialog, QSpinBox, "seedSpin").setValue(9)
    click_ok(qtbot, dialog)
    assert torch.equal(model.head[0].weight, reference.head[0].weight)
    assert "seed 9" in win.actionUndo.text()
