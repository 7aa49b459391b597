"""The live-model API: ``app.open_editor(model)`` / ``app.edit(model)`` on an ``nn.Module``.

Edits go into the model's own tensors: the same ``Parameter`` objects and storage, so an
optimizer built before the edit steps on the edited values; ``requires_grad`` toggles hold for
the next backward pass; the tree mirrors ``named_children``, a shared layer at every place.
"""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import types
import weakref

import pytest
import torch
from PySide6.QtCore import QEvent, QModelIndex, Qt, QTimer
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QDialog, QDialogButtonBox,
                               QLineEdit, QSpinBox)

import app
from app.core.edits.values import FillEdit
from app.qt import live
from app.qt.models.tree_model import TYPE
from tests.helpers.prompts import FakePrompts
from tests.helpers.qt import tree_rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                                        torch.nn.Linear(8, 8))
        self.norm = torch.nn.LayerNorm(8)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.norm(self.body(x)))


class SharedNet(torch.nn.Module):
    """``shared`` is used three times: as itself and twice inside ``encoder``."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.shared = torch.nn.Linear(4, 4)
        self.encoder = torch.nn.Sequential(self.shared, torch.nn.ReLU(), self.shared)
        self.head = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.BatchNorm1d(2))


@pytest.fixture
def open_live(qtbot):
    """``app.open_editor`` whose windows qtbot closes (and so deletes) when the test ends,
    never asking about unsaved edits."""
    def open_(model, **kw):
        win = app.open_editor(model, **kw)
        qtbot.addWidget(win)
        win.prompts = FakePrompts(save_changes="discard")
        return win
    return open_


def _loss(model, seed=1):
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(seed))
    return model(x).square().mean()


def _init_dialog(win, name):
    assert win.select_name(name)
    assert win.actionInitialize.isEnabled()
    win.actionInitialize.trigger()
    dialog = win.edit_flows.dialog
    assert dialog is not None and dialog is win.findChild(QDialog, "initializerDialog")
    return dialog


def _ok(dialog):
    dialog.button_box.button(QDialogButtonBox.Ok).click()


def test_initializer_edits_the_tensors_an_existing_optimizer_steps_on(qtbot, open_live):
    torch.manual_seed(0)
    model = Net()
    weight, bias = model.fc.weight, model.fc.bias
    ptr, original = weight.data_ptr(), weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    win = open_live(model)
    assert win.controller.document.module is model
    assert "Net" in win.windowTitle()

    dialog = _init_dialog(win, "fc.weight")
    functions = dialog.findChild(QComboBox, "functionCombo")
    functions.setCurrentIndex(functions.findData("normal_"))
    dialog.findChild(QLineEdit, "arg_std").setText("0.02")
    dialog.findChild(QCheckBox, "seedCheck").setChecked(True)
    dialog.findChild(QSpinBox, "seedSpin").setValue(7)
    assert dialog.targets() == ["fc.weight"]
    _ok(dialog)

    expected = torch.nn.init.normal_(torch.empty(3, 8), 0.0, 0.02,
                                     generator=torch.Generator().manual_seed(7))
    assert model.fc.weight is weight and weight.data_ptr() == ptr  # same Parameter, same storage
    assert torch.equal(weight.detach(), expected)
    assert win.isWindowModified() and "fc.weight" in win.actionUndo.text()
    assert win.tensor_view.model.value(0, 0) == pytest.approx(float(expected[0, 0]))

    opt.zero_grad()
    _loss(model).backward()
    grad, bias_before = weight.grad.clone(), bias.detach().clone()
    opt.step()
    torch.testing.assert_close(weight.detach(), expected - 0.1 * grad, rtol=0, atol=1e-7)
    torch.testing.assert_close(bias.detach(), bias_before - 0.1 * model.fc.bias.grad)
    assert opt.param_groups[0]["params"][-2] is model.fc.weight

    # the step happened behind the editor's back: coming back to the window reads it anew
    stepped = weight.detach().clone()
    QApplication.sendEvent(win, QEvent(QEvent.WindowActivate))
    assert win.tensor_view.model.value(0, 0) == pytest.approx(float(stepped[0, 0]))
    qtbot.waitUntil(lambda: win.stats_panel.current_stats is not None
                    and win.stats_panel.current_stats.max == pytest.approx(
        float(stepped.max())), timeout=2000)

    win.actionUndo.trigger()  # back to the value before the edit, still in place
    assert torch.equal(weight.detach(), original)
    assert model.fc.weight is weight and weight.data_ptr() == ptr


def test_the_tree_mirrors_named_children_with_a_shared_layer_everywhere(qtbot, open_live):
    model = SharedNet()
    win = open_live(model)
    tree = win.tree_model
    rows = tree_rows(tree)
    shown = {full: name for full, name in rows}
    assert all(full.split(".")[-1] == name for full, name in rows)  # each node's own name

    modules = dict(model.named_modules(remove_duplicate=False))
    tensors = [n for n, _ in model.named_parameters(remove_duplicate=False)] + \
              [n for n, _ in model.named_buffers(remove_duplicate=False)]
    assert set(shown) == (set(modules) - {""}) | set(tensors)
    for name in ("shared.weight", "encoder.0.weight", "encoder.2.bias", "head.1.running_mean"):
        assert name in shown  # a shared layer under every name it is used by

    def children(prefix):
        index = tree.find(prefix) if prefix else QModelIndex()
        return [tree.index(r, 0, index).data(Qt.UserRole) for r in range(tree.rowCount(index))]

    def type_of(full):
        index = tree.find(full)
        return index.siblingAtColumn(TYPE).data()

    for prefix, module in modules.items():  # own tensors first, then named_children in order
        own = [n for n, _ in module.named_parameters(recurse=False, remove_duplicate=False)] + \
              [n for n, _ in module.named_buffers(recurse=False, remove_duplicate=False)]
        kids = [n for n, _ in module._modules.items()]
        dot = prefix + "." if prefix else ""
        assert children(prefix) == [dot + n for n in own + kids]
        if prefix:
            assert type_of(prefix) == type(module).__name__
    assert type_of("encoder") == "Sequential" and type_of("encoder.1") == "ReLU"
    assert type_of("head.1") == "BatchNorm1d"
    assert type_of("scale") == "Parameter" and type_of("steps") == "buffer"

    doc = win.controller.document
    assert sorted(doc.aliases("shared.weight")) == ["encoder.0.weight", "encoder.2.weight",
                                                    "shared.weight"]
    assert "(6 tied)" in win.summary_label.text()  # 2 tensors, each under 3 names
    shared_params = sum(p.numel() for p in model.parameters())  # named_parameters: once each
    assert doc.parameter_count() == shared_params


def test_freezing_leaves_grad_none_at_the_next_backward_and_undo_unfreezes(qtbot, open_live):
    torch.manual_seed(0)
    model = Net()
    win = open_live(model)
    freeze = win.edit_flows.actionFreeze
    assert win.select_name("fc.weight")
    assert freeze.isEnabled() and not win.edit_flows.actionUnfreeze.isEnabled()
    freeze.trigger()
    assert model.fc.weight.requires_grad is False
    assert win.edit_flows.actionUnfreeze.isEnabled() and not freeze.isEnabled()

    assert win.select_name("body")  # a module: every parameter under it
    freeze.trigger()
    assert not any(p.requires_grad for p in model.body.parameters())

    _loss(model).backward()
    assert model.fc.weight.grad is None and model.fc.bias.grad is not None
    assert all(p.grad is None for p in model.body.parameters())

    win.actionUndo.trigger()
    win.actionUndo.trigger()
    assert all(p.requires_grad for p in model.parameters())
    model.zero_grad(set_to_none=True)
    _loss(model).backward()
    assert model.fc.weight.grad is not None and model.body[0].weight.grad is not None


def test_reset_parameters_on_a_live_model_changes_in_place_and_undo_restores(qtbot, open_live):
    torch.manual_seed(0)
    model = Net()
    params = {n: p for n, p in model.named_parameters()}
    before = {n: p.detach().clone() for n, p in params.items()}
    win = open_live(model)

    dialog = _init_dialog(win, "body")
    reset = dialog.findChild(QCheckBox, "resetParametersCheck")
    assert reset is not None and not reset.isHidden()  # offered for live models only
    reset.setChecked(True)
    assert not dialog.findChild(QComboBox, "functionCombo").isEnabled()
    _ok(dialog)

    for n, p in model.named_parameters():
        assert p is params[n]  # same Parameter objects
        assert torch.equal(p.detach(), before[n]) != n.startswith("body."), n
    assert "Reset parameters of 2 modules" in win.actionUndo.text()  # body.0 and body.2

    win.actionUndo.trigger()
    for n, p in model.named_parameters():
        assert p is params[n] and torch.equal(p.detach(), before[n]), n
    win.actionRedo.trigger()  # the same random values as the first time
    assert not torch.equal(model.body[0].weight.detach(), before["body.0.weight"])


def test_open_editor_reuses_the_running_application_and_frees_closed_windows(qtbot, qapp):
    model = Net()
    win = app.open_editor(model, title="my net")
    qtbot.addWidget(win)
    win.prompts = FakePrompts(save_changes="discard")
    assert QApplication.instance() is qapp and live.ensure_app() is qapp
    assert win.isVisible() and "my net" in win.windowTitle()
    assert win in live._open_windows and win.controller.document.path is None
    win.edit_flows.push(FillEdit(["fc.bias"], 1.5))  # unsaved: the close asks, "discard"
    bias = model.fc.bias
    ref, model_ref = weakref.ref(win), weakref.ref(model)
    win.close()
    del win, model
    # the window, its undo history and its hold on the model go; the edit stays
    qtbot.waitUntil(lambda: not live._open_windows and gc.collect() >= 0 and ref() is None,
                    timeout=2000)
    assert model_ref() is None
    assert torch.equal(bias.detach(), torch.full((3,), 1.5))


def test_edit_blocks_until_the_window_is_closed(qtbot, qapp):
    model = Net()
    events = []

    def user():
        win = next(w for w in QApplication.topLevelWidgets()
                   if w.objectName() == "mainWindow" and w.isVisible()
                   and w.controller.document.module is model)
        events.append(("open", win in live._open_windows))
        win.select_name("fc.bias")
        win.edit_flows.push(FillEdit(["fc.bias"], 0.25))
        win.prompts = FakePrompts(save_changes="cancel")  # the unsaved-edits prompt: kept open
        win.close()
        events.append(("kept", win.isVisible()))
        win.prompts = FakePrompts(save_changes="discard")
        events.append("closing")
        win.close()

    def rescue():  # a hang would be worse than a failure
        for w in QApplication.topLevelWidgets():
            if w.objectName() == "mainWindow" and w.isVisible():
                w.prompts = FakePrompts(save_changes="discard")
                w.close()

    QTimer.singleShot(0, user)
    # a rescue timer left running would close the windows of whatever test runs 5 s later
    guard = QTimer(singleShot=True, interval=5000)
    guard.timeout.connect(rescue)
    guard.start()
    try:
        assert app.edit(model) is None
    finally:
        guard.stop()
    events.append("returned")
    assert events == [("open", True), ("kept", True), "closing", "returned"]
    assert torch.equal(model.fc.bias.detach(), torch.full((3,), 0.25))
    assert not live._open_windows


def test_only_a_module_opens(qtbot):
    for call in (app.open_editor, app.edit):
        with pytest.raises(TypeError, match="nn.Module"):
            call({"weight": torch.zeros(2)})
    assert not live._open_windows


def test_a_tensor_on_the_meta_device_is_listed_but_never_read(qtbot, open_live):
    model = Net()
    model.extra = torch.nn.Linear(3, 3, device="meta")
    win = open_live(model)
    assert "extra.weight" in dict(tree_rows(win.tree_model))
    assert win.select_name("extra.weight")
    assert win.tensor_view.model.rowCount() == 0 and win.tensor_view.tensor is None
    assert "meta" in win.statusBar().currentMessage()
    assert win.select_name("extra")  # a module of meta tensors only: nothing to pool
    assert win.stats_panel.current_stats is None
    assert win.select_name("fc.weight")  # a real one still shows
    assert win.tensor_view.model.rowCount() == 3
    win.grab()


def test_open_editor_in_ipython_without_an_event_loop_says_to_run_gui_qt(qtbot, open_live,
                                                                        monkeypatch):
    shell = types.SimpleNamespace(active_eventloop=None)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    with pytest.warns(RuntimeWarning, match="%gui qt"):
        open_live(torch.nn.Linear(2, 2))
    shell.active_eventloop = "qt"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_live(torch.nn.Linear(2, 2))


def test_a_fresh_process_gets_a_qapplication_and_import_app_loads_no_qt(tmp_path):
    script = tmp_path / "session.py"
    script.write_text(
        "import sys, torch\n"
        "import app\n"
        "assert 'PySide6' not in sys.modules, 'import app must not load Qt'\n"
        "model = torch.nn.Linear(3, 2)\n"
        "win = app.open_editor(model)\n"
        "from PySide6.QtCore import QTimer\n"
        "from PySide6.QtWidgets import QApplication\n"
        "assert QApplication.instance() is not None and win.isVisible()\n"
        "win.close()\n"
        "QTimer.singleShot(0, lambda: [w.close() for w in QApplication.topLevelWidgets()"
        " if w.objectName() == 'mainWindow' and w.isVisible()])\n"
        "app.edit(model)\n"
        "print('returned')\n")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, str(script)], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("returned")
