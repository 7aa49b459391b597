"""Editing through the window like a user: the initializer and edit dialogs, grid cells with real
mouse and key events, tied tensors, freeze / unfreeze, undo / redo, the recipe export, the undo
memory cap and copy-on-write of memory-mapped files. Real widgets, real torch: nothing mocked."""
from __future__ import annotations

import json

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox,
                               QLabel, QLineEdit, QSpinBox)

from app.qt.models.tree_model import TYPE
from tests.helpers.qt import wait_for_document
from tests.helpers.tensors import assert_same, snapshot
from tests.qt.driving import child, click_ok, ok_button, open_dialog, pick, retype


# -- helpers -----------------------------------------------------------------------------------

def pick_data(combo: QComboBox, data) -> None:
    i = combo.findData(data)
    assert i >= 0, f"{combo.objectName()} has no item for {data!r}"
    combo.setCurrentIndex(i)


def shown(qtbot, window):
    window.show()
    qtbot.waitExposed(window)
    return window


def undo_text(window) -> str:
    return window.actionUndo.text().replace("&", "")


def tensor(window, name):
    return window.controller.document.tensor(name)


def type_column(window, name) -> str:
    return window.tree_model.find(name).siblingAtColumn(TYPE).data()


# -- the initializer dialog --------------------------------------------------------------------

def test_initializer_dialog_kaiming_normal_with_seed_keeps_the_parameter(qtbot, demo_window):
    window = shown(qtbot, demo_window)
    model = window.controller.document.module
    param = model.head.weight
    ptr, clone = param.data_ptr(), param.detach().clone()
    assert window.select_name("head.weight")
    dialog = open_dialog(qtbot, window, window.actionInitialize, "initializerDialog")
    assert child(dialog, QComboBox, "scopeCombo").currentData() == "tensor"
    pick(child(dialog, QComboBox, "functionCombo"), "kaiming_normal_")
    pick(child(dialog, QComboBox, "arg_mode"), "fan_out")
    pick(child(dialog, QComboBox, "arg_nonlinearity"), "relu")
    retype(qtbot, child(dialog, QLineEdit, "arg_a"), "0.1")
    qtbot.mouseClick(child(dialog, QCheckBox, "seedCheck"), Qt.LeftButton)
    seed = child(dialog, QSpinBox, "seedSpin")
    assert seed.isEnabled()
    seed.setValue(4242)
    assert child(dialog, QLabel, "errorLabel").text() == ""
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible())

    expected = torch.nn.init.kaiming_normal_(clone.clone(), a=0.1, mode="fan_out",
                                             nonlinearity="relu",
                                             generator=torch.Generator().manual_seed(4242))
    assert model.head.weight is param and param.data_ptr() == ptr
    assert torch.equal(param.detach(), expected)
    assert window.undo_stack.count() == 1 and undo_text(window).startswith("Undo ")
    assert "head.weight" in window.tree_model.modified
    window.actionUndo.trigger()
    assert torch.equal(param.detach(), clone) and param.data_ptr() == ptr
    window.actionRedo.trigger()  # redo replays the same seeded values
    assert torch.equal(param.detach(), expected)


def test_subtree_init_weights_and_biases_is_one_undo_step(qtbot, demo_window):
    window = shown(qtbot, demo_window)
    model = window.controller.document.module
    before = snapshot(window.controller.document)
    params = {n: p for n, p in model.named_parameters()}
    ptrs = {n: p.data_ptr() for n, p in params.items()}
    assert window.select_name("rgnet")
    dialog = open_dialog(qtbot, window, window.actionInitialize, "initializerDialog")
    pick_data(child(dialog, QComboBox, "scopeCombo"), "subtree")
    qtbot.keyClicks(child(dialog, QLineEdit, "moduleTypeFilter"), "Linear")
    pick_data(child(dialog, QComboBox, "whichCombo"), "weights")
    pick(child(dialog, QComboBox, "functionCombo"), "xavier_uniform_")
    pick(child(dialog, QComboBox, "biasFunctionCombo"), "zeros_")
    qtbot.mouseClick(child(dialog, QCheckBox, "seedCheck"), Qt.LeftButton)
    child(dialog, QSpinBox, "seedSpin").setValue(7)
    assert child(dialog, QLabel, "errorLabel").text() == ""
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible())

    linears = [m for m in model.rgnet.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 9
    g = torch.Generator().manual_seed(7)
    for m in linears:  # in module order, one generator for the step, as the contract says
        expected = torch.nn.init.xavier_uniform_(before_of(before, model, m.weight).clone(),
                                                 generator=g)
        assert torch.equal(m.weight.detach(), expected)
        assert torch.equal(m.bias.detach(), torch.zeros_like(m.bias))
    for n, p in params.items():  # nothing outside rgnet changed; every Parameter kept
        assert p is model.get_parameter(n) and p.data_ptr() == ptrs[n]
        if not n.startswith("rgnet."):
            assert torch.equal(p.detach(), before[n]), n
    assert window.undo_stack.count() == 1
    text = undo_text(window)
    assert text.startswith("Undo ") and "xavier_uniform_" in text and "zeros_" in text
    window.actionUndo.trigger()
    assert_same(window.controller.document, before)
    assert window.undo_stack.count() == 1 and window.undo_stack.index() == 0
    assert not window.tree_model.modified and not window.isWindowModified()


def before_of(before, model, param):
    name = next(n for n, p in model.named_parameters() if p is param)
    return before[name]


# -- the edit dialog ---------------------------------------------------------------------------

def test_edit_dialog_expression_index_and_mask(qtbot, demo_window):
    window = shown(qtbot, demo_window)
    param = window.controller.document.module.head.weight
    ptr, old = param.data_ptr(), param.detach().clone()
    assert window.select_name("head.weight")
    dialog = open_dialog(qtbot, window, window.actionEdit, "editDialog")
    pick_data(child(dialog, QComboBox, "operation"), "expr")
    qtbot.keyClicks(child(dialog, QLineEdit, "expression"), "w * 2 + 1")
    qtbot.keyClicks(child(dialog, QLineEdit, "index"), "[1:7, ::3]")
    qtbot.keyClicks(child(dialog, QLineEdit, "mask"), "w > 0")

    region = old[1:7, ::3]
    new_region = torch.where(region > 0, region * 2 + 1, region)
    count = int((new_region != region).sum())
    assert 0 < count < region.numel()
    qtbot.waitUntil(lambda: dialog.changed_count == count)
    assert child(dialog, QLabel, "changedLabel").text().startswith(f"{count:,} of {old.numel():,}")
    assert child(dialog, QLabel, "errorLabel").text() == ""
    assert dialog.findChild(object, "previewPlot") is not None

    # a bad expression: a message, Apply disabled, no crash, nothing changed
    expression = child(dialog, QLineEdit, "expression")
    retype(qtbot, expression, "w *")
    qtbot.waitUntil(lambda: child(dialog, QLabel, "errorLabel").text() != "")
    assert not ok_button(dialog).isEnabled() and dialog.changed_count is None
    retype(qtbot, expression, "w.nosuchmethod()")
    qtbot.waitUntil(lambda: child(dialog, QLabel, "errorLabel").text() != "")
    assert not ok_button(dialog).isEnabled()
    ok_button(dialog).click()  # a disabled button does nothing
    assert dialog.isVisible()
    retype(qtbot, expression, "w * 2 + 1")
    qtbot.waitUntil(lambda: dialog.changed_count == count)
    assert ok_button(dialog).isEnabled()

    # a bad index: out of range, then not an index at all
    index = child(dialog, QLineEdit, "index")
    for bad in ("[1:7, 99]", "[1:7, ::3"):
        retype(qtbot, index, bad)
        qtbot.waitUntil(lambda: child(dialog, QLabel, "errorLabel").text() != "")
        assert not ok_button(dialog).isEnabled(), bad
    retype(qtbot, index, "[1:7, ::3]")
    qtbot.waitUntil(lambda: dialog.changed_count == count)
    assert torch.equal(param.detach(), old)  # the preview ran on a copy

    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible())
    expected = old.clone()
    expected[1:7, ::3] = new_region
    assert torch.equal(param.detach(), expected) and param.data_ptr() == ptr
    assert int((param.detach() != old).sum()) == count
    assert "Expression" in undo_text(window)
    window.actionUndo.trigger()
    assert torch.equal(param.detach(), old)


def test_edit_dialog_module_target_with_a_glob(qtbot, demo_window):
    window = shown(qtbot, demo_window)
    before = snapshot(window.controller.document)
    assert window.select_name("rgnet.0.1")
    dialog = open_dialog(qtbot, window, window.actionEdit, "editDialog")
    glob = child(dialog, QLineEdit, "targetGlob")
    assert glob.isVisible()
    pick_data(child(dialog, QComboBox, "operation"), "mul")
    qtbot.keyClicks(child(dialog, QLineEdit, "value"), "-3")
    qtbot.keyClicks(glob, "*weight")
    assert dialog.targets() == ["rgnet.0.1.0.weight", "rgnet.0.1.2.weight"]
    first = before["rgnet.0.1.0.weight"]
    qtbot.waitUntil(lambda: dialog.changed_count == int((first * -3 != first).sum()))
    retype(qtbot, glob, "*nothing*")
    qtbot.waitUntil(lambda: child(dialog, QLabel, "errorLabel").text() != "")
    assert not ok_button(dialog).isEnabled()
    retype(qtbot, glob, "*weight")
    qtbot.waitUntil(lambda: ok_button(dialog).isEnabled())
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible())
    for n, old in before.items():
        now = tensor(window, n)
        if n in ("rgnet.0.1.0.weight", "rgnet.0.1.2.weight"):
            assert torch.equal(now, old * -3), n
        else:
            assert torch.equal(now, old), n
    assert window.tree_model.modified == {"rgnet.0.1.0.weight", "rgnet.0.1.2.weight"}
    window.actionUndo.trigger()
    assert_same(window.controller.document, before)


def test_edit_dialog_still_applies_to_a_tensor_too_large_to_preview(qtbot, window):
    from app.core.model.document import Document
    big = torch.zeros(4097, 4096)  # just over the preview's limit of 1 << 24 elements
    window.open_document(Document.from_object({"big": big, "small": torch.zeros(3)}), "big")
    shown(qtbot, window)
    assert window.select_name("big")
    dialog = open_dialog(qtbot, window, window.actionEdit, "editDialog")
    pick_data(child(dialog, QComboBox, "operation"), "set")
    qtbot.keyClicks(child(dialog, QLineEdit, "value"), "2")
    qtbot.keyClicks(child(dialog, QLineEdit, "index"), "[5000]")  # out of range: refused
    qtbot.waitUntil(lambda: "5000" in child(dialog, QLabel, "errorLabel").text())
    assert not ok_button(dialog).isEnabled()
    retype(qtbot, child(dialog, QLineEdit, "index"), "[1:3]")
    qtbot.waitUntil(lambda: "no preview" in child(dialog, QLabel, "changedLabel").text())
    assert child(dialog, QLabel, "errorLabel").text() == "" and ok_button(dialog).isEnabled()
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible())
    t = tensor(window, "big")
    assert t is big and t[1:3].eq(2).all() and t[0].eq(0).all() and t[3:].eq(0).all()
    window.actionUndo.trigger()
    assert big.eq(0).all()


def test_tied_edit_marks_both_names_and_follows_the_clean_state(qtbot, demo_window):
    window = shown(qtbot, demo_window)
    model = window.controller.document.module
    shared = model.shared.encoder[2].weight
    assert model.shared.decoder[0].weight is shared
    old = shared.detach().clone()
    assert not window.isWindowModified()
    assert window.select_name("shared.encoder.2.weight")
    dialog = open_dialog(qtbot, window, window.actionEdit, "editDialog")
    pick_data(child(dialog, QComboBox, "operation"), "set")
    qtbot.keyClicks(child(dialog, QLineEdit, "value"), "0.25")
    qtbot.keyClicks(child(dialog, QLineEdit, "index"), "[0]")
    qtbot.waitUntil(lambda: dialog.changed_count == 8)
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible())

    doc = window.controller.document
    assert torch.equal(doc.tensor("shared.decoder.0.weight")[0], torch.full((8,), 0.25))
    assert torch.equal(doc.tensor("shared.decoder.0.weight")[1:], old[1:])
    assert {"shared.encoder.2.weight", "shared.decoder.0.weight"} <= window.tree_model.modified
    assert window.tree_model.modified == {"shared.encoder.2.weight", "shared.decoder.0.weight"}
    assert window.isWindowModified()
    window.actionUndo.trigger()
    assert torch.equal(shared.detach(), old)
    assert window.tree_model.modified == set() and not window.isWindowModified()
    window.actionRedo.trigger()
    assert window.isWindowModified()
    assert window.tree_model.modified == {"shared.encoder.2.weight", "shared.decoder.0.weight"}
    window.undo_stack.setClean()  # as a save does: the marks go, the marker goes
    assert not window.isWindowModified() and window.tree_model.modified == set()
    window.actionUndo.trigger()  # relative to the saved state, this is a change again
    assert window.isWindowModified()
    assert "shared.decoder.0.weight" in window.tree_model.modified


# -- grid cells --------------------------------------------------------------------------------

@pytest.fixture
def dtype_file(tmp_path):
    sd = {"f32": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4,
          "i8": torch.tensor([[1, -2], [3, -4]], dtype=torch.int8),
          "u8": torch.tensor([5, 6, 7], dtype=torch.uint8),
          "f16": torch.tensor([[0.5, 1.5], [2.5, 3.5]], dtype=torch.float16)}
    path = tmp_path / "dtypes.pt"
    torch.save(sd, path)
    return str(path), sd


def edit_cell(qtbot, window, row, col, text, enter=True):
    """Double-click the cell, type ``text`` over what the editor shows, press Enter."""
    grid = window.tensor_view.grid
    window.activateWindow()  # a user's click brings the window back after a dialog
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    index = grid.model().index(row, col)
    grid.scrollTo(index)
    pos = grid.visualRect(index).center()
    # a real double click is press, release, double-click: QTest's mouseDClick sends only the
    # last, and QAbstractItemView opens an editor only on the cell that was pressed first
    qtbot.mouseClick(grid.viewport(), Qt.LeftButton, pos=pos)
    qtbot.mouseDClick(grid.viewport(), Qt.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: isinstance(QApplication.focusWidget(), QLineEdit)
                    and grid.isAncestorOf(QApplication.focusWidget()))
    editor = QApplication.focusWidget()
    editor.selectAll()
    qtbot.keyClicks(editor, text)
    if enter:
        qtbot.keyClick(editor, Qt.Key_Return)
    return editor


def status(window) -> str:
    return window.statusBar().currentMessage()


def test_grid_cell_edit_with_real_events(qtbot, window, dtype_file):
    path, sd = dtype_file
    shown(qtbot, window)
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    assert window.select_name("f32")
    grid, model = window.tensor_view.grid, window.tensor_view.model
    qtbot.waitUntil(lambda: model.rowCount() == 3 and model.columnCount() == 4)
    assert grid.objectName() == "tensorGrid"
    t = tensor(window, "f32")
    ptr = t.data_ptr()
    edit_cell(qtbot, window, 1, 2, "-7.125")
    qtbot.waitUntil(lambda: float(tensor(window, "f32")[1, 2]) == -7.125)
    assert tensor(window, "f32") is t and t.data_ptr() == ptr
    expected = sd["f32"].clone()
    expected[1, 2] = -7.125
    assert torch.equal(t, expected)
    assert model.index(1, 2).data() == "-7.125"
    assert "f32" in window.tree_model.modified and window.isWindowModified()
    assert undo_text(window).startswith("Undo Set f32")
    window.actionUndo.trigger()
    assert torch.equal(t, sd["f32"]) and model.index(1, 2).data() == format(float(sd["f32"][1, 2]), ".8g")
    window.actionRedo.trigger()
    assert torch.equal(t, expected)

    # refusals: nothing changes, the status bar says why, the grid stays usable
    count = window.undo_stack.count()
    edit_cell(qtbot, window, 0, 0, "abc")
    qtbot.waitUntil(lambda: "abc" in status(window))
    assert "not a number" in status(window)
    assert torch.equal(t, expected) and window.undo_stack.count() == count
    grid.closePersistentEditor(grid.model().index(0, 0))

    cases = [("i8", (1, 0), "300", "out of range"), ("u8", (2, 0), "300", "out of range"),
             ("u8", (0, 0), "-1", "out of range"), ("i8", (0, 1), "1.5", "whole number"),
             ("f16", (0, 1), "1e6", "too large")]
    for name, (row, col), text, why in cases:
        assert window.select_name(name)
        qtbot.waitUntil(lambda: window.tensor_view.model.tensor is not None
                        and window.tensor_view.model.tensor.dtype == sd[name].dtype)
        window.statusBar().clearMessage()
        edit_cell(qtbot, window, row, col, text)
        qtbot.waitUntil(lambda: status(window) != "")
        assert status(window).startswith("Not changed") and why in status(window), status(window)
        assert torch.equal(tensor(window, name), sd[name]), name
        assert window.undo_stack.count() == count
    # a good value in the int8 tensor then goes through
    assert window.select_name("i8")
    edit_cell(qtbot, window, 1, 1, "-128")
    qtbot.waitUntil(lambda: int(tensor(window, "i8")[1, 1]) == -128)
    assert tensor(window, "i8").dtype == torch.int8


# -- freeze / unfreeze -------------------------------------------------------------------------

def test_freeze_and_unfreeze_a_live_subtree(qtbot, demo_window):
    window = shown(qtbot, demo_window)
    model = window.controller.document.module
    flows = window.edit_flows
    assert window.select_name("shared")
    assert flows.actionFreeze.isEnabled() and not flows.actionUnfreeze.isEnabled()
    flows.actionFreeze.trigger()
    shared = dict(model.shared.named_parameters(remove_duplicate=False))
    assert shared and all(not p.requires_grad for p in shared.values())
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("shared."))
    for n in shared:
        assert type_column(window, f"shared.{n}").endswith("(frozen)"), n
    assert "(frozen)" not in type_column(window, "head.weight")
    assert undo_text(window).startswith("Undo Freeze")
    assert flows.actionUnfreeze.isEnabled() and not flows.actionFreeze.isEnabled()

    assert window.select_name("shared.encoder.0.weight")
    flows.actionUnfreeze.trigger()
    assert model.shared.encoder[0].weight.requires_grad
    assert "(frozen)" not in type_column(window, "shared.encoder.0.weight")
    window.actionUndo.trigger()
    assert not model.shared.encoder[0].weight.requires_grad
    window.actionUndo.trigger()
    assert all(p.requires_grad for p in model.parameters())
    assert "(frozen)" not in type_column(window, "shared.decoder.0.weight")
    window.actionRedo.trigger()
    assert type_column(window, "shared.decoder.0.weight").endswith("(frozen)")


# -- undo / redo texts, the recipe, the memory cap --------------------------------------------

def fill(qtbot, window, name, value, index=""):
    assert window.select_name(name)
    dialog = open_dialog(qtbot, window, window.actionEdit, "editDialog")
    pick_data(child(dialog, QComboBox, "operation"), "set")
    qtbot.keyClicks(child(dialog, QLineEdit, "value"), str(value))
    if index:
        qtbot.keyClicks(child(dialog, QLineEdit, "index"), index)
    qtbot.waitUntil(lambda: dialog.changed_count is not None)
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible())


def export(window, tmp_path, name="recipe.json") -> dict:
    path = tmp_path / name
    window.prompts.answer(save_file=(str(path), ""))
    assert window.actionExportRecipe.isEnabled()
    window.actionExportRecipe.trigger()
    return json.loads(path.read_text())


def test_undo_redo_texts_and_the_recipe_has_only_applied_steps(qtbot, demo_window, tmp_path):
    window = shown(qtbot, demo_window)
    assert not window.actionUndo.isEnabled()
    fill(qtbot, window, "head.bias", 1.5)
    assert undo_text(window) == "Undo Fill head.bias with 1.5"
    fill(qtbot, window, "head.weight", 0, "[0:2]")
    assert undo_text(window) == "Undo Fill head.weight[0:2] with 0"
    window.actionUndo.trigger()
    assert window.actionRedo.text().replace("&", "") == "Redo Fill head.weight[0:2] with 0"
    assert undo_text(window) == "Undo Fill head.bias with 1.5"
    recipe = export(window, tmp_path)
    assert recipe == {"version": 1, "steps": [{"op": "fill", "target": "head.bias", "value": 1.5}]}
    window.actionRedo.trigger()
    recipe = export(window, tmp_path, "again.json")
    assert [s.get("index") for s in recipe["steps"]] == [None, "[0:2]"]
    assert window.tree_model.modified == {"head.bias", "head.weight"}
    window.actionUndo.trigger()  # not back to the clean state: the marks follow all the same
    assert window.tree_model.modified == {"head.bias"}
    fill(qtbot, window, "conv.bn.bias", 2)  # a new edit discards the undone one for good
    assert not window.actionRedo.isEnabled()
    recipe = export(window, tmp_path, "third.json")
    assert [s["target"] for s in recipe["steps"]] == ["head.bias", "conv.bn.bias"]


def test_memory_cap_drops_the_oldest_steps_and_keeps_the_recipe(qtbot, demo_window, tmp_path):
    window = shown(qtbot, demo_window)
    doc = window.controller.document
    size = doc.tensor("lstm.weight_hh_l0").numel() * 4  # 256 x 64 float32: 64 KiB of old values
    window.controller.edits.memory_cap = int(size * 2.5)
    fill(qtbot, window, "head.bias", 0.5)
    for value in (1, 2, 3, 4):
        fill(qtbot, window, "lstm.weight_hh_l0", value)
    message = status(window)
    assert "oldest" in message and "can no longer be undone" in message, message
    assert window.undo_stack.count() == 2
    recipe = export(window, tmp_path)
    assert [s["value"] for s in recipe["steps"]] == [0.5, 1.0, 2.0, 3.0, 4.0]
    assert window.tree_model.modified == {"head.bias", "lstm.weight_hh_l0"}
    window.actionUndo.trigger()
    window.actionUndo.trigger()
    assert not window.actionUndo.isEnabled()
    assert torch.equal(doc.tensor("lstm.weight_hh_l0"), torch.full((256, 64), 2.0))
    assert [s["value"] for s in export(window, tmp_path, "b.json")["steps"]] == [0.5, 1.0, 2.0]
    assert window.isWindowModified()  # the document never returned to its opened state
    # the dropped steps' changes are still there: their tensors stay marked
    assert window.tree_model.modified == {"head.bias", "lstm.weight_hh_l0"}
    window.actionRedo.trigger()
    assert window.tree_model.modified == {"head.bias", "lstm.weight_hh_l0"}


# -- copy-on-write of a memory-mapped file ----------------------------------------------------

def test_edits_never_write_through_to_the_opened_file(qtbot, window, other_file):
    path, sd = other_file
    data = open(path, "rb").read()
    shown(qtbot, window)
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    fill(qtbot, window, "enc.0.weight", 9)
    assert torch.equal(tensor(window, "enc.0.weight"), torch.full((6, 5), 9.0))
    assert window.select_name("head.weight")
    edit_cell(qtbot, window, 1, 3, "123.5")
    qtbot.waitUntil(lambda: float(tensor(window, "head.weight")[1, 3]) == 123.5)
    assert open(path, "rb").read() == data
    back = torch.load(path, weights_only=True)
    for n, t in sd.items():
        assert torch.equal(back[n], t), n


def test_a_structural_edit_in_a_wide_tree_reveals_the_selection(qtbot, window):
    """After a rename in a module of 600 tensors the renamed tensor is current and shown (its
    parent expanded): a rebuild is not an opening, whose first selection stays folded."""
    import torch
    from app.core.edits.surgery import RenameEdit
    from app.core.model.document import Document
    doc = Document.from_object({f"block.w{i:03d}": torch.zeros(2) for i in range(600)})
    window.open_document(doc, "wide")
    window.select_name("block.w300")
    assert window.edit_flows.push(RenameEdit(r"^block\.w300$", "block.renamed"))
    qtbot.waitUntil(lambda: window.controller.current_node is not None
                    and window.controller.current_node.full_name == "block.renamed")
    index = window.tree_view.currentIndex()
    assert index.isValid() and window.tree_view.isExpanded(index.parent())
