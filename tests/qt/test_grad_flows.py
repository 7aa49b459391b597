"""Gradients of live models through the window: after a real ``backward()``, with an optimizer
step afterwards."""
from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QApplication, QMenu, QPushButton

from app.core.model.grads import format_norm
from app.qt.models.tree_model import DEVICE, GRAD, RATIO
from tests.qt.live_models import Net, backward, cell, open_live, shows, wait_grads  # noqa: F401

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
    win.prompts.answer(number=0.05, choice="all selected tensors together")
    gradients_menu = win.findChild(QMenu, "modelMenu").findChild(QMenu, "gradientsMenu")
    assert gradients_menu.isEnabled() and win.param_flows.actionClipGrad.isEnabled()
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
    win.prompts.answer(number=2.0)
    win.param_flows.actionScaleGrad.trigger()
    assert torch.equal(model.fc.weight.grad, before["fc.weight"] * 2)

    w0 = model.fc.weight.detach().clone()
    opt.step()  # the optimizer built before the editor steps on the edited gradients
    assert torch.equal(model.fc.weight.detach(), w0 - before["fc.weight"] * 2)
    assert {n: id(p) for n, p in model.named_parameters()} == ids


def test_a_model_spread_over_devices_shows_each_device(qtbot, open_live):
    model = Net()
    model.fc.to("meta")  # a second device that exists on every machine
    weight = model.features[0][0].weight
    weight.grad = torch.ones_like(weight)
    win = open_live(model)
    assert not win.tree_view.isColumnHidden(DEVICE)
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
    assert win.tree_view.isColumnHidden(DEVICE)  # all on the CPU: the tooltip says so
    assert "Device: cpu" in cell(win, "fc.weight", 0).data(Qt.ToolTipRole)
    assert cell(win, "fc.weight", GRAD).data() == "none"
    backward(model)
    win.param_flows.actionRefresh.trigger()
    wait_grads(qtbot, win)
    assert not win.tree_view.isColumnHidden(GRAD) and not win.tree_view.isColumnHidden(RATIO)
    assert win.tree_view.columnWidth(GRAD) > 0



def test_a_layer_used_twice_has_one_gradient_counted_once(qtbot, open_live):
    shared = torch.nn.Linear(4, 4)
    model = torch.nn.Sequential(shared, torch.nn.Tanh(), shared, torch.nn.Linear(4, 2))
    backward(model)
    win = open_live(model)
    norm = float(shared.weight.grad.norm())
    assert cell(win, "0.weight", GRAD).data() == cell(win, "2.weight", GRAD).data() \
        == format_norm(norm)
    total = float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]))
    assert float(win.tree_model.params.text(win.tree_model.root, 0)) == pytest.approx(total, rel=1e-2)
    twice = (total ** 2 + float(shared.weight.grad.norm()) ** 2
             + float(shared.bias.grad.norm()) ** 2) ** 0.5
    assert float(win.tree_model.params.text(win.tree_model.root, 0)) != pytest.approx(twice, rel=1e-3)
    win.select_name("2")
    win.prompts.answer(number=0.5)
    before = shared.weight.grad.clone()
    win.param_flows.actionScaleGrad.trigger()
    assert torch.equal(shared.weight.grad, before * 0.5)  # scaled once, not once per place


def test_gradients_are_read_on_the_gui_thread_not_in_the_worker(qtbot, open_live):
    """backward() and zero_grad() rebind .grad from C++ without the GIL's protection: a worker
    reading .grad while the user's session trains crashed the process. The window reads .grad
    when it starts the computation; the worker only computes norms of what was read."""
    from PySide6.QtCore import QThreadPool
    from tests.qt.driving import PoolBlocked
    model = Net()
    backward(model)
    win = open_live(model)
    wait_grads(qtbot, win)
    expected = format_norm(float(model.fc.weight.grad.norm()))
    blocked = PoolBlocked()  # the norms task waits in the queue
    try:
        win.param_flows.refresh_grads()
        model.zero_grad(set_to_none=True)  # what the user's session does meanwhile
    finally:
        blocked.release()
    assert QThreadPool.globalInstance().waitForDone(20_000)
    wait_grads(qtbot, win)  # the new result is delivered
    assert cell(win, "fc.weight", GRAD).data() == expected  # as .grad was when it started
