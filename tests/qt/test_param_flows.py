"""What a live module owns, through the window: ties, registration, promote / demote,
train / eval and module info, on models built like the tutorials' examples."""
from __future__ import annotations

import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

from app.qt.models.tree_model import DEVICE, GRAD, TYPE
from tests.qt.driving import child, click_ok, ok_button, open_dialog, pick, retype
from tests.qt.live_models import Net, TiedLM, cell, open_live  # noqa: F401  (open_live: a fixture)


def test_tie_and_untie_through_the_window(qtbot, open_live):
    model = TiedLM()
    model(torch.tensor([[1, 2, 3]])).sum().backward()
    head = model.head.weight
    win = open_live(model)
    assert cell(win, "rnn.weight_ih_l0", GRAD).data() not in ("", "none")  # the LSTM's grads
    assert "3 " not in win.param_flows.counts_label.text()
    numel = sum(p.numel() for p in model.parameters())

    assert win.select_name("head.weight")
    win.prompts.answer(choice=lambda title, label, candidates: (
        "embed.weight" if "embed.weight" in candidates else None))
    win.param_flows.actionTie.trigger()
    assert model.head.weight is model.embed.weight
    for name, other in (("head.weight", "embed.weight"), ("embed.weight", "head.weight")):
        tip = cell(win, name, 0).data(Qt.ToolTipRole)
        assert "Tied" in tip and other in tip
    counts = win.param_flows.counts_label.text()
    assert "5 parameters (6 with remove_duplicate=False)" in counts
    assert f"{numel - 72:,} elements" in counts
    assert win.controller.document.parameter_count() == numel - 72

    win.actionUndo.trigger()
    assert model.head.weight is head
    win.actionRedo.trigger()
    assert win.select_name("head.weight")
    win.param_flows.actionUntie.trigger()
    assert model.head.weight is not model.embed.weight
    assert torch.equal(model.head.weight, model.embed.weight)
    assert isinstance(model.head.weight, torch.nn.Parameter)
    win.actionUndo.trigger()
    assert model.head.weight is model.embed.weight


def test_shape_mismatch_and_shared_layer_refusals(qtbot, open_live):
    shared = torch.nn.Linear(4, 4)
    model = torch.nn.Sequential(shared, torch.nn.ReLU(), shared, torch.nn.Linear(4, 2))
    win = open_live(model)
    win.select_name("2.weight")
    win.param_flows.actionUntie.trigger()
    box = win.edit_flows.message_box
    assert box is not None and "module is used at several places" in box.text()
    box.close()
    win.select_name("3.bias")
    win.prompts.answer(choice=lambda title, label, candidates: candidates[0] if candidates else None)
    assert win.param_flows.tie_candidates("3.bias") == []
    win.param_flows.actionTie.trigger()
    assert "no other tensor has the shape [2]" in win.edit_flows.message_box.text()


def test_add_parameter_dialog_validates_like_register_parameter(qtbot, open_live):
    model = Net()
    win = open_live(model)
    win.select_name("fc")
    win.param_flows.add_to_menu(QMenu(win))
    dialog = open_dialog(qtbot, win, win.param_flows.actionAddParameter, "addParameterDialog")
    name, error = child(dialog, type(dialog.name_edit), "parameterName"), dialog.error
    for typed, expected in (("a.b", 'parameter name can\'t contain "."'),
                            ("weight", "attribute 'weight' already exists"),
                            ("forward", "attribute 'forward' already exists")):
        retype(qtbot, name, typed)
        assert error.text() == expected and not ok_button(dialog).isEnabled()
    retype(qtbot, name, "gate")
    pick(dialog.init_combo, "xavier_uniform_")
    retype(qtbot, dialog.shape_edit, "3")
    assert "xavier_uniform_ needs" in error.text() and not ok_button(dialog).isEnabled()
    retype(qtbot, dialog.shape_edit, "-3")
    assert "not a size" in error.text()
    retype(qtbot, dialog.shape_edit, "3, 4")
    retype(qtbot, dialog.seed_edit, "3")
    click_ok(qtbot, dialog)
    gate = model.fc.gate
    assert isinstance(gate, torch.nn.Parameter) and gate.shape == (3, 4)
    expected = torch.nn.init.xavier_uniform_(torch.zeros(3, 4),
                                             generator=torch.Generator().manual_seed(3))
    assert torch.equal(gate.detach(), expected)
    assert win.tree_model.find("fc.gate").isValid()
    win.actionUndo.trigger()
    assert not hasattr(model.fc, "gate") and not win.tree_model.find("fc.gate").isValid()

    win.select_name("norm")
    dialog = open_dialog(qtbot, win, win.param_flows.actionAddParameter, "addParameterDialog")
    retype(qtbot, dialog.name_edit, "mask")
    pick(dialog.kind_combo, "buffer")
    pick(dialog.dtype_combo, "bool")
    retype(qtbot, dialog.shape_edit, "8")
    dialog.persistent.setChecked(False)
    click_ok(qtbot, dialog)
    assert dict(model.named_buffers())["norm.mask"].dtype == torch.bool
    assert "norm.mask" not in model.state_dict()
    assert cell(win, "norm.mask", TYPE).data() == "buffer (non-persistent, not saved)"


def test_promote_demote_buffers_with_undo(qtbot, open_live):
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    mean = model[1].running_mean
    win = open_live(model)
    win.select_name("1.running_mean")
    assert win.param_flows.actionPromote.isEnabled() and not win.param_flows.actionDemote.isEnabled()
    win.param_flows.actionPromote.trigger()
    assert isinstance(model[1].running_mean, torch.nn.Parameter)
    assert model[1].running_mean.data_ptr() == mean.data_ptr()
    assert cell(win, "1.running_mean", TYPE).data() == "Parameter"
    win.actionUndo.trigger()
    assert model[1].running_mean is mean
    weight = model[0].weight
    win.select_name("0.weight")
    win.param_flows.actionDemote.trigger()
    assert "0.weight" not in dict(model.named_parameters())
    assert cell(win, "0.weight", TYPE).data() == "buffer"
    win.actionUndo.trigger()
    assert model[0].weight is weight


def test_module_info_and_eval_on_a_subtree(qtbot, open_live):
    model = Net()
    win = open_live(model)
    tip = cell(win, "features.0.0", TYPE).data(Qt.ToolTipRole)
    assert "Linear(in_features=4, out_features=8, bias=True)" in tip and "training" in tip
    win.select_name("features")
    win.param_flows.actionEval.trigger()
    assert not model.features.training and not model.features[1][0].training and model.training
    assert cell(win, "features.1.0", TYPE).data() == "Linear (eval)"
    assert "eval" in cell(win, "features", TYPE).data(Qt.ToolTipRole)
    win.actionUndo.trigger()
    assert model.features.training and cell(win, "features.1.0", TYPE).data() == "Linear"


def test_file_documents_hide_the_live_columns(qtbot, window, tied_file):
    from tests.helpers.qt import wait_for_document
    window.open_path(tied_file[0])
    wait_for_document(qtbot, window, tied_file[0])
    assert window.tree_view.isColumnHidden(GRAD) and window.tree_view.isColumnHidden(DEVICE)
    assert not window.param_flows.actionShowGradients.isEnabled()
    assert not window.param_flows.counts_label.isVisible()


def test_tie_in_a_file_is_shared_storage_when_saved(qtbot, window, tmp_path):
    from tests.helpers.qt import wait_for_document
    sd = {"embed.weight": torch.randn(10, 4), "head.weight": torch.randn(10, 4),
          "head.bias": torch.zeros(10)}
    path = tmp_path / "lm.pt"
    torch.save(sd, path)
    window.open_path(str(path))
    wait_for_document(qtbot, window, str(path))
    assert window.select_name("head.weight")
    flows = window.param_flows
    assert flows.tie_candidates("head.weight") == ["embed.weight"]
    window.prompts.answer(choice=lambda title, label, candidates: candidates[0])
    flows.actionTie.trigger()
    assert "Tied" in cell(window, "embed.weight", 0).data(Qt.ToolTipRole)
    assert "(2 tied)" in window.summary_label.text()
    out = tmp_path / "tied.pt"
    assert window.save_flows.save_to(str(out), "torch", wait=True)
    loaded = torch.load(out, weights_only=True)
    assert loaded["head.weight"].untyped_storage().data_ptr() == \
        loaded["embed.weight"].untyped_storage().data_ptr()
    assert torch.equal(loaded["head.weight"], sd["embed.weight"])
    window.actionUndo.trigger()
    assert not window.controller.document.entry("head.weight").shared_with
    assert torch.equal(window.controller.document.tensor("head.weight"), sd["head.weight"])


def test_tree_context_menu_offers_the_parameter_actions(qtbot, open_live):
    win = open_live(Net())
    menu = QMenu(win)
    win.param_flows.add_to_menu(menu)
    names = {a.objectName() for a in menu.actions()}
    assert {"actionAddParameter", "actionTie", "actionUntie", "actionPromote",
            "actionDemote", "actionTrain", "actionEval"} <= names
    for name in ("actionShowGradients", "actionRefresh", "actionAddParameter", "actionTie",
                 "actionUntie"):  # CONTRACT.md section 4
        assert win.findChild(QAction, name) is not None, name
    assert win.findChild(QAction, "actionShowGradients").isCheckable()
    model_menu = win.findChild(QMenu, "modelMenu")
    assert win.param_flows.actionShowGradients in model_menu.actions()
    assert win.param_flows.actionRefresh in model_menu.actions()
    # the right-click menu of the tree is built by EditFlows and includes these
    seen = []
    original = win.param_flows.add_to_menu
    win.param_flows.add_to_menu = lambda m: (seen.append(m), original(m))
    index = win.tree_view.model().index(0, 0)
    rect = win.tree_view.visualRect(index)
    win.tree_view.customContextMenuRequested.emit(rect.center())
    assert seen and any(a.objectName() == "actionAddParameter" for a in seen[0].actions())
    seen[0].close()


def test_a_plain_tensor_attribute_becomes_a_parameter(qtbot, open_live):
    model = Net()
    mask = torch.ones(8)
    model.norm.scale = mask  # a plain attribute: not in state_dict, not in the tree
    win = open_live(model)
    assert not win.tree_model.find("norm.scale").isValid()
    win.select_name("norm")
    assert win.param_flows.actionPromoteAttribute.isEnabled()
    win.prompts.answer(choice=lambda title, label, names: names[0] if names == ["scale"] else None)
    win.param_flows.actionPromoteAttribute.trigger()
    assert isinstance(model.norm.scale, torch.nn.Parameter)
    assert model.norm.scale.data_ptr() == mask.data_ptr()
    assert "norm.scale" in dict(model.named_parameters())
    assert cell(win, "norm.scale", TYPE).data() == "Parameter"
    win.actionUndo.trigger()
    assert model.norm.scale is mask and "norm.scale" not in dict(model.named_parameters())


def test_torchscript_documents_get_no_live_actions(qtbot, window, tmp_path):
    from tests.helpers.qt import wait_for_document
    path = tmp_path / "scripted.pt"
    torch.jit.script(Net()).save(str(path))
    window.open_path(str(path))
    wait_for_document(qtbot, window, str(path))
    window.select_name("fc.weight")
    flows = window.param_flows
    assert not flows.actionShowGradients.isEnabled() and not flows.actionTie.isEnabled()
    assert not flows.actionAddParameter.isEnabled() and not flows.actionDemote.isEnabled()

