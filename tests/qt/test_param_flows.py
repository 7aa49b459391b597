"""The parameter model through the window, on live models built like the tutorials' examples:
gradients after a real ``backward()`` (and an optimizer step afterwards), ties, registration,
train / eval and module info."""
from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QLabel, QMenu, QPushButton

import app
from app.core.grads import format_norm
from app.qt.models.tree_model import DEVICE, GRAD, RATIO, TYPE, NodeRole
from tests.qt.driving import child, click_ok, ok_button, open_dialog, pick, retype


class Net(torch.nn.Module):
    """Nested Sequential blocks, a LayerNorm, a buffer."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU()),
            torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()))
        self.norm = torch.nn.LayerNorm(8)
        self.fc = torch.nn.Linear(8, 3)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        return self.fc(self.norm(self.features(x)))


class TiedLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(12, 6)
        self.rnn = torch.nn.LSTM(6, 6, batch_first=True)
        self.head = torch.nn.Linear(6, 12, bias=False)

    def forward(self, ids):
        out, _ = self.rnn(self.embed(ids))
        return self.head(out)


@pytest.fixture
def open_live(qtbot):
    def open_(model):
        win = app.open_editor(model)
        qtbot.addWidget(win)
        win.ask_save_changes = lambda: "discard"
        qtbot.waitUntil(lambda: bool(win.tree_model.params.grads)
                        or not any(True for _ in model.parameters()), timeout=5000)
        return win
    return open_


def backward(model, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(5, 4)
    model(x).square().mean().backward()


def cell(win, name, column):
    source = win.tree_model.find(name)
    return win.tree_model.index(source.row(), column, source.parent())


def shows(win, tensor) -> bool:
    """The grid shows this very tensor (it keeps a detached view of the same memory)."""
    t = win.tensor_view.tensor
    return t is not None and tensor is not None and t.data_ptr() == tensor.data_ptr() \
        and t.shape == tensor.shape


def wait_grads(qtbot, win):
    qtbot.waitUntil(lambda: not win.param_flows.grads_pending, timeout=5000)


def test_grad_column_pooled_norms_and_the_gradient_switch(qtbot, open_live):
    torch.manual_seed(0)
    model = Net()
    model.features[0][0].bias.requires_grad_(False)
    backward(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    win = open_live(model)
    w = model.fc.weight
    assert cell(win, "fc.weight", GRAD).data() == format_norm(float(w.grad.norm()))
    ratio = float(w.grad.norm() / w.detach().norm())
    assert float(cell(win, "fc.weight", RATIO).data()) == pytest.approx(ratio, rel=1e-2)
    assert cell(win, "features.0.0.bias", GRAD).data() == "none"  # .grad is None
    assert cell(win, "calls", GRAD).data() == ""                  # a buffer has none
    assert cell(win, "fc.weight", DEVICE).data() == "cpu"
    fc = cell(win, "fc", GRAD)
    pooled = float(torch.nn.utils.get_total_norm([model.fc.weight.grad, model.fc.bias.grad]))
    assert float(fc.data()) == pytest.approx(pooled, rel=1e-2)
    assert "Pooled gradient norm" in fc.data(Qt.ToolTipRole)
    assert not win.tree_view.isColumnHidden(GRAD)

    assert win.select_name("fc.weight")
    values_text = win.tensor_view.model.index(0, 0).data()
    win.param_flows.actionShowGradients.trigger()
    assert win.param_flows.actionShowGradients.isChecked()
    assert shows(win, w.grad)
    assert win.tensor_view.model.index(0, 0).data() != values_text
    assert win.stats_panel.label == "fc.weight.grad"
    qtbot.waitUntil(lambda: win.stats_panel.is_exact, timeout=5000)
    assert win.stats_panel.current_stats.max == pytest.approx(float(w.grad.max()))
    assert win.tensor_view.model.cell_editor is None  # gradients are read-only in the grid
    assert win.select_name("features.0.0.bias")
    assert win.tensor_view.tensor is None and "no gradient" in win.tensor_view.title.text()
    assert win.select_name("features")
    assert win.stats_panel.label == "features gradients"

    win.param_flows.actionShowGradients.trigger()  # back to values
    assert win.select_name("fc.weight") and shows(win, w)
    before = w.detach().clone()
    opt.step()
    assert torch.allclose(w.detach(), before - 0.1 * w.grad)


def test_nonfinite_gradients_are_found_like_values(qtbot, open_live):
    model = Net()
    backward(model)
    model.fc.weight.grad[1, 2] = float("nan")
    model.fc.weight.grad[0, 0] = float("inf")
    win = open_live(model)
    assert cell(win, "fc.weight", GRAD).data(Qt.ForegroundRole) is not None
    assert cell(win, "fc", GRAD).data(Qt.ForegroundRole) is not None
    assert "2 NaN/Inf" in cell(win, "fc.weight", GRAD).data(Qt.ToolTipRole)
    assert cell(win, "fc.bias", GRAD).data(Qt.ForegroundRole) is None
    win.param_flows.actionShowGradients.setChecked(True)
    win.select_name("fc.weight")
    qtbot.waitUntil(lambda: win.stats_panel.is_exact, timeout=5000)
    assert (win.stats_panel.current_stats.nan, win.stats_panel.current_stats.inf) == (1, 1)
    nan_button = win.stats_panel.findChild(QPushButton, "nanButton")
    qtbot.mouseClick(nan_button, Qt.LeftButton)  # jumps to the NaN in the gradient's grid
    qtbot.waitUntil(lambda: win.tensor_view.grid.currentIndex().isValid(), timeout=5000)
    current = win.tensor_view.grid.currentIndex()
    assert (current.row(), current.column()) == (1, 2)


def test_activation_and_refresh_read_new_gradients_and_structure(qtbot, open_live):
    model = Net()
    backward(model)
    win = open_live(model)
    win.param_flows.actionShowGradients.setChecked(True)
    win.select_name("fc.weight")
    old = model.fc.weight.grad
    model.zero_grad()               # set_to_none: the next backward makes new .grad tensors
    backward(model, seed=5)
    assert model.fc.weight.grad is not old
    QApplication.sendEvent(win, QEvent(QEvent.WindowActivate))
    assert shows(win, model.fc.weight.grad)
    wait_grads(qtbot, win)
    assert cell(win, "fc.weight", GRAD).data() == format_norm(float(model.fc.weight.grad.norm()))

    # values changed in the notebook are re-read in place: the grid keeps its place
    win.param_flows.actionShowGradients.setChecked(False)
    win.select_name("features.1.0.weight")
    win.tensor_view.grid.setCurrentIndex(win.tensor_view.model.index(5, 6))
    with torch.no_grad():
        model.features[1][0].weight[5, 6] = 42.0
    QApplication.sendEvent(win, QEvent(QEvent.WindowActivate))
    current = win.tensor_view.grid.currentIndex()
    assert (current.row(), current.column()) == (5, 6)
    assert float(current.data()) == 42.0

    model.fc.register_parameter("gate", torch.nn.Parameter(torch.ones(3)))
    win.param_flows.actionRefresh.trigger()
    assert win.tree_model.find("fc.gate").isValid()
    wait_grads(qtbot, win)
    assert cell(win, "fc.gate", GRAD).data() == "none"
    assert "9 parameters" in win.param_flows.counts_label.text()


def test_clip_zero_scale_gradients_undo_then_step(qtbot, open_live):
    torch.manual_seed(1)
    model, reference = Net(), Net()
    reference.load_state_dict(model.state_dict())
    backward(model)
    backward(reference)
    params = dict(model.named_parameters())
    ids = {n: id(p) for n, p in params.items()}
    before = {n: p.grad.clone() for n, p in params.items()}
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    win = open_live(model)

    win.select_name("features")
    win.param_flows.ask_clip = lambda: (0.05, False)
    win.param_flows.actionClipGrad.trigger()
    torch.nn.utils.clip_grad_norm_(list(reference.features.parameters()), 0.05)
    for n, p in reference.features.named_parameters():
        assert torch.equal(params["features." + n].grad, p.grad)
    assert torch.equal(params["fc.weight"].grad, before["fc.weight"])  # outside the subtree
    wait_grads(qtbot, win)
    assert float(cell(win, "features", GRAD).data()) == pytest.approx(0.05, rel=1e-2)
    win.actionUndo.trigger()
    assert all(torch.equal(p.grad, before[n]) for n, p in params.items())

    win.select_name("fc.weight")
    win.param_flows.actionZeroGradNone.trigger()
    assert model.fc.weight.grad is None
    wait_grads(qtbot, win)
    assert cell(win, "fc.weight", GRAD).data() == "none"
    win.actionUndo.trigger()
    assert torch.equal(model.fc.weight.grad, before["fc.weight"])

    win.param_flows.actionZeroGrad.trigger()
    assert torch.count_nonzero(model.fc.weight.grad) == 0
    win.actionUndo.trigger()
    win.param_flows.ask_scale_factor = lambda: 2.0
    win.param_flows.actionScaleGrad.trigger()
    assert torch.equal(model.fc.weight.grad, before["fc.weight"] * 2)

    w0 = model.fc.weight.detach().clone()
    opt.step()  # the optimizer built before the editor steps on the edited gradients
    assert torch.equal(model.fc.weight.detach(), w0 - before["fc.weight"] * 2)
    assert {n: id(p) for n, p in model.named_parameters()} == ids


def test_tie_and_untie_through_the_window(qtbot, open_live):
    model = TiedLM()
    model(torch.tensor([[1, 2, 3]])).sum().backward()
    head = model.head.weight
    win = open_live(model)
    assert cell(win, "rnn.weight_ih_l0", GRAD).data() not in ("", "none")  # the LSTM's grads
    assert "3 " not in win.param_flows.counts_label.text()
    numel = sum(p.numel() for p in model.parameters())

    assert win.select_name("head.weight")
    win.param_flows.ask_tie_source = lambda name, candidates: (
        "embed.weight" if "embed.weight" in candidates else None)
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
    win.param_flows.ask_tie_source = lambda name, candidates: candidates[0] if candidates else None
    assert win.param_flows.tie_candidates("3.bias") == []
    win.param_flows.actionTie.trigger()
    assert "no other tensor has the shape [2]" in win.edit_flows.message_box.text()


def test_add_parameter_dialog_validates_like_register_parameter(qtbot, open_live):
    model = Net()
    win = open_live(model)
    win.select_name("fc")
    menu_actions = []
    win.param_flows.add_to_menu(QMenu(win))
    dialog = open_dialog(qtbot, win, win.param_flows.actionAddParameter, "addParameterDialog")
    name, error = child(dialog, type(dialog.name_edit), "parameterName"), dialog.error
    for typed, expected in (("a.b", 'parameter name can\'t contain "."'),
                            ("weight", "attribute 'weight' already exists"),
                            ("forward", "attribute 'forward' already exists")):
        retype(qtbot, name, typed)
        assert error.text() == expected and not ok_button(dialog).isEnabled()
    retype(qtbot, name, "gate")
    retype(qtbot, dialog.shape_edit, "3, 4")
    pick(dialog.init_combo, "xavier_uniform_")
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
    assert cell(win, "norm.mask", TYPE).data() == "buffer"


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
    from tests.qt.conftest import wait_for_document
    window.open_path(tied_file[0])
    wait_for_document(qtbot, window, tied_file[0])
    assert window.tree_view.isColumnHidden(GRAD) and window.tree_view.isColumnHidden(DEVICE)
    assert not window.param_flows.actionShowGradients.isEnabled()
    assert not window.param_flows.counts_label.isVisible()


def test_tie_in_a_file_is_shared_storage_when_saved(qtbot, window, tmp_path):
    from tests.qt.conftest import wait_for_document
    sd = {"embed.weight": torch.randn(10, 4), "head.weight": torch.randn(10, 4),
          "head.bias": torch.zeros(10)}
    path = tmp_path / "lm.pt"
    torch.save(sd, path)
    window.open_path(str(path))
    wait_for_document(qtbot, window, str(path))
    assert window.select_name("head.weight")
    flows = window.param_flows
    assert flows.tie_candidates("head.weight") == ["embed.weight"]
    flows.ask_tie_source = lambda name, candidates: candidates[0]
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


def test_a_model_spread_over_devices_shows_each_device(qtbot, open_live):
    model = Net()
    model.fc.to("meta")  # a second device that exists on every machine
    weight = model.features[0][0].weight
    weight.grad = torch.ones_like(weight)
    win = open_live(model)
    assert cell(win, "fc.weight", DEVICE).data() == "meta"
    assert cell(win, "features.0.0.weight", DEVICE).data() == "cpu"
    root_devices = {win.tree_model.params.device(win.tree_model.root)}
    assert root_devices == {"cpu, meta"}
    assert cell(win, "fc.weight", GRAD).data() == ""  # no values, no norm
    assert cell(win, "features.0.0.weight", GRAD).data() == format_norm(
        float(torch.ones(8, 4).norm()))
    if torch.cuda.is_available():
        model.features.to("cuda")
        model.features[0][0].weight.grad = torch.ones(8, 4, device="cuda")
        win.param_flows.actionRefresh.trigger()
        wait_grads(qtbot, win)
        assert cell(win, "features.0.0.weight", DEVICE).data() == "cuda:0"
        assert cell(win, "features.0.0.weight", GRAD).data() == format_norm(
            float(torch.ones(8, 4).norm()))


def test_gradient_columns_appear_once_there_are_gradients(qtbot, open_live):
    model = Net()
    win = open_live(model)
    wait_grads(qtbot, win)
    assert win.tree_view.isColumnHidden(GRAD) and win.tree_view.isColumnHidden(RATIO)
    assert not win.tree_view.isColumnHidden(DEVICE)
    assert cell(win, "fc.weight", GRAD).data() == "none"
    backward(model)
    win.param_flows.actionRefresh.trigger()
    wait_grads(qtbot, win)
    assert not win.tree_view.isColumnHidden(GRAD) and not win.tree_view.isColumnHidden(RATIO)
    assert win.tree_view.columnWidth(GRAD) > 0


def test_a_plain_tensor_attribute_becomes_a_parameter(qtbot, open_live):
    model = Net()
    mask = torch.ones(8)
    model.norm.scale = mask  # a plain attribute: not in state_dict, not in the tree
    win = open_live(model)
    assert not win.tree_model.find("norm.scale").isValid()
    win.select_name("norm")
    assert win.param_flows.actionPromoteAttribute.isEnabled()
    win.param_flows.ask_attribute = lambda path, names: names[0] if names == ["scale"] else None
    win.param_flows.actionPromoteAttribute.trigger()
    assert isinstance(model.norm.scale, torch.nn.Parameter)
    assert model.norm.scale.data_ptr() == mask.data_ptr()
    assert "norm.scale" in dict(model.named_parameters())
    assert cell(win, "norm.scale", TYPE).data() == "Parameter"
    win.actionUndo.trigger()
    assert model.norm.scale is mask and "norm.scale" not in dict(model.named_parameters())


def test_torchscript_documents_get_no_live_actions(qtbot, window, tmp_path):
    from tests.qt.conftest import wait_for_document
    path = tmp_path / "scripted.pt"
    torch.jit.script(Net()).save(str(path))
    window.open_path(str(path))
    wait_for_document(qtbot, window, str(path))
    window.select_name("fc.weight")
    flows = window.param_flows
    assert not flows.actionShowGradients.isEnabled() and not flows.actionTie.isEnabled()
    assert not flows.actionAddParameter.isEnabled() and not flows.actionDemote.isEnabled()
