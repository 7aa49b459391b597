"""Issue 5, GUI recipe replay equivalence: what a user does in the window, exported as a recipe and
replayed headless with ``main.py apply``, gives the very file the window saves. Also the rename
dialog's preview, delete + undo, and extracting a subtree."""
from __future__ import annotations

import json
import os

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QDialog, QDialogButtonBox,
                               QLabel, QLineEdit, QListWidget, QSpinBox)

from tests.checkpoints import tied_lm, training_checkpoint
from tests.cli import run_main
from tests.helpers.qt import tree_rows, wait_for_document
from tests.helpers.tensors import assert_bit_equal
from tests.qt.driving import child, click_ok, open_dialog


# -- checkpoints -------------------------------------------------------------------------------

def ddp_state_dict(seed: int = 0) -> dict:
    """What ``DistributedDataParallel(model).state_dict()`` holds: ``module.`` names, ties kept."""
    return {f"module.{k}": v for k, v in tied_lm(seed).state_dict().items()}


def ddp_training_checkpoint() -> dict:
    """A DDP state_dict saved flat beside the optimizer, the epoch and other training state."""
    ck = training_checkpoint(tied_lm(1))
    return {**ddp_state_dict(1), "optimizer": ck["optimizer"], "epoch": 12,
            "config": ck["config"], "history": ck["history"]}


@pytest.fixture
def ddp_file(tmp_path):
    path = tmp_path / "ddp.pt"
    torch.save(ddp_state_dict(), path)
    return str(path)


@pytest.fixture
def training_file(tmp_path):
    path = tmp_path / "train.pt"
    torch.save(ddp_training_checkpoint(), path)
    return str(path)


# -- driving the window ------------------------------------------------------------------------

def select(window, name) -> None:
    assert window.select_name(name), name
    node = window.controller.current_node
    assert node is not None and node.full_name == name


def rename_strip_module(qtbot, window) -> QDialog:
    dialog = open_dialog(qtbot, window, window.edit_flows.actionRename, "renameDialog")
    preset = child(dialog, QComboBox, "renamePreset")
    preset.setCurrentIndex(preset.findText("Strip DataParallel / DDP prefix (module.)"))
    assert child(dialog, QLineEdit, "renamePattern").text() == r"^module\."
    assert child(dialog, QLineEdit, "renameReplacement").text() == ""
    preview = child(dialog, QListWidget, "renamePreview")
    qtbot.waitUntil(lambda: preview.count() > 0)
    items = [preview.item(i).text() for i in range(preview.count())]
    assert "module.embed.weight  →  embed.weight" in items
    assert all("optimizer" not in i for i in items)
    click_ok(qtbot, dialog)
    return dialog


def initialize_with_seed(qtbot, window, name, seed) -> None:
    select(window, name)
    dialog = open_dialog(qtbot, window, window.actionInitialize, "initializerDialog")
    child(dialog, QComboBox, "functionCombo").setCurrentText("normal_")
    std = child(dialog, QLineEdit, "arg_std")
    std.selectAll()
    qtbot.keyClicks(std, "0.02")
    qtbot.mouseClick(child(dialog, QCheckBox, "seedCheck"), Qt.LeftButton)
    child(dialog, QSpinBox, "seedSpin").setValue(seed)
    click_ok(qtbot, dialog)


def expression(qtbot, window, name, expr, index) -> None:
    select(window, name)
    dialog = open_dialog(qtbot, window, window.actionEdit, "editDialog")
    op = child(dialog, QComboBox, "operation")
    op.setCurrentIndex(op.findData("expr"))
    qtbot.keyClicks(child(dialog, QLineEdit, "expression"), expr)
    qtbot.keyClicks(child(dialog, QLineEdit, "index"), index)
    qtbot.waitUntil(lambda: dialog.changed_count is not None)
    click_ok(qtbot, dialog)


def cell(qtbot, window, name, row, col, text) -> None:
    select(window, name)
    grid = window.tensor_view.grid
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    index = grid.model().index(row, col)
    pos = grid.visualRect(index).center()
    qtbot.mouseClick(grid.viewport(), Qt.LeftButton, pos=pos)  # press + release, then
    qtbot.mouseDClick(grid.viewport(), Qt.LeftButton, pos=pos)  # the double click
    qtbot.waitUntil(lambda: isinstance(QApplication.focusWidget(), QLineEdit)
                    and grid.isAncestorOf(QApplication.focusWidget()))
    editor = QApplication.focusWidget()
    editor.selectAll()
    qtbot.keyClicks(editor, text)
    qtbot.keyClick(editor, Qt.Key_Return)
    qtbot.waitUntil(lambda: grid.state() == grid.State.NoState)


def export_recipe(window, path) -> dict:
    window.prompts.answer(save_file=(str(path), ""))
    window.actionExportRecipe.trigger()
    return json.loads(open(path).read())


def save_as(qtbot, window, path) -> None:
    window.prompts.answer(save_file=(str(path), ""))
    window.actionSaveAs.trigger()
    qtbot.waitUntil(lambda: not window.save_flows.is_saving, timeout=20_000)
    assert window.save_flows.last_error is None
    assert not window.isWindowModified()


def ties(sd: dict) -> list[list[str]]:
    groups: dict[int, list[str]] = {}
    for k, v in sd.items():
        if isinstance(v, torch.Tensor):
            groups.setdefault(v.untyped_storage().data_ptr(), []).append(k)
    return sorted(g for g in groups.values() if len(g) > 1)


# -- replay equivalence ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ddp", "training"])
def test_gui_edits_replayed_headless_give_the_same_file(qtbot, window, tmp_path, kind, request):
    src = request.getfixturevalue(f"{kind}_file")
    original = open(src, "rb").read()
    window.show()
    qtbot.waitExposed(window)
    window.open_path(src)
    wait_for_document(qtbot, window, src)
    doc = window.controller.document

    rename_strip_module(qtbot, window)
    assert "embed.weight" in doc.tensors and not any(n.startswith("module.") for n in doc.tensors)
    before = doc.tensor("embed.weight").clone()
    initialize_with_seed(qtbot, window, "embed.weight", seed=31)
    expected = torch.nn.init.normal_(before.clone(), std=0.02,
                                     generator=torch.Generator().manual_seed(31))
    assert torch.equal(doc.tensor("embed.weight"), expected)
    assert torch.equal(doc.tensor("lm_head.weight"), expected)  # tied
    w0 = doc.tensor("body.0.weight").clone()
    expression(qtbot, window, "body.0.weight", "w * 0.5 + 1", "[:, 1]")
    w0[:, 1] = w0[:, 1] * 0.5 + 1
    assert torch.equal(doc.tensor("body.0.weight"), w0)
    cell(qtbot, window, "body.0.bias", 2, 0, "3.25")
    assert float(doc.tensor("body.0.bias")[2]) == 3.25
    select(window, "body")
    window.edit_flows.cast_actions["float16"].trigger()
    assert doc.entry("body.0.weight").dtype == torch.float16
    assert doc.entry("embed.weight").dtype == torch.float32
    if kind == "training":
        select(window, "optimizer")
        window.edit_flows.actionDelete.trigger()
        assert "optimizer" not in doc.entries
        assert not any(n.startswith("optimizer.") for n in doc.tensors)
    else:
        select(window, "body.1.bias")
        window.edit_flows.actionDelete.trigger()
        assert "body.1.bias" not in doc.tensors

    recipe = export_recipe(window, tmp_path / "edits.recipe.json")
    ops = [s["op"] for s in recipe["steps"]]
    assert ops == ["rename", "init", "expr", "fill", "cast", "delete"]
    assert recipe["steps"][1]["seed"] == 31 and recipe["steps"][2]["index"] == "[:, 1]"
    gui_out = tmp_path / "gui.pt"
    save_as(qtbot, window, gui_out)
    assert open(src, "rb").read() == original  # Save As never touches the source

    cli_out = tmp_path / "cli.pt"
    proc = run_main("apply", tmp_path / "edits.recipe.json", src, "-o", cli_out)
    assert proc.returncode == 0, proc.stderr
    assert open(src, "rb").read() == original
    gui = torch.load(gui_out, weights_only=True)
    cli = torch.load(cli_out, weights_only=True)
    assert_bit_equal(gui, cli)
    assert ties(gui) == ties(cli) == [["embed.weight", "lm_head.weight"]]
    assert list(gui)[:2] == ["embed.weight", "body.0.weight"]
    assert gui["body.0.weight"].dtype == torch.float16
    assert gui["body.0.bias"][2].item() == 3.25
    if kind == "training":
        assert "optimizer" not in gui and gui["epoch"] == 12
        assert gui["config"] == {"lr": 1e-3, "name": "tiny"}


# -- rename preview, delete + undo, extract ----------------------------------------------------

def test_rename_dialog_preview_and_refusals(qtbot, window, ddp_file):
    window.open_path(ddp_file)
    doc = wait_for_document(qtbot, window, ddp_file)
    names = list(doc.tensors)
    dialog = open_dialog(qtbot, window, window.edit_flows.actionRename, "renameDialog")
    pattern = child(dialog, QLineEdit, "renamePattern")
    replacement = child(dialog, QLineEdit, "renameReplacement")
    preview = child(dialog, QListWidget, "renamePreview")
    error = child(dialog, QLabel, "errorLabel")
    ok = dialog.buttons.button(QDialogButtonBox.Ok)
    assert not ok.isEnabled()  # nothing typed yet

    qtbot.keyClicks(pattern, r"^module\.body\.(\d)")
    qtbot.keyClicks(replacement, r"layers.\1")
    qtbot.waitUntil(lambda: preview.count() == 4)
    assert [preview.item(i).text() for i in range(4)] == [
        "module.body.0.weight  →  layers.0.weight",
        "module.body.0.bias  →  layers.0.bias", "module.body.1.weight  →  layers.1.weight",
        "module.body.1.bias  →  layers.1.bias"]
    assert ok.isEnabled() and error.text() == ""

    pattern.selectAll()
    qtbot.keyClicks(pattern, r"\.\d\.")  # body.0.weight and body.1.weight would clash
    replacement.clear()
    qtbot.keyClicks(replacement, ".")
    qtbot.waitUntil(lambda: "several tensors" in error.text())
    assert not ok.isEnabled() and preview.count() == 0
    pattern.selectAll()
    qtbot.keyClicks(pattern, "(unclosed")
    qtbot.waitUntil(lambda: "regular expression" in error.text())
    assert not ok.isEnabled()
    pattern.selectAll()
    qtbot.keyClicks(pattern, "^nomatch")
    qtbot.waitUntil(lambda: "matches no tensor" in error.text())
    assert not ok.isEnabled()
    dialog.buttons.button(QDialogButtonBox.Cancel).click()
    assert list(doc.tensors) == names and window.undo_stack.count() == 0

    rename_strip_module(qtbot, window)
    assert [n for _, n in tree_rows(window.tree_model)][:1] == ["embed"]
    assert window.actionUndo.text().replace("&", "").startswith("Undo Rename")
    window.actionUndo.trigger()
    assert list(doc.tensors) == names
    assert tree_rows(window.tree_model)[0][1] == "module"


def test_delete_an_entry_and_undo_restores_it(qtbot, window, training_file):
    window.open_path(training_file)
    doc = wait_for_document(qtbot, window, training_file)
    names, entries = list(doc.tensors), list(doc.entries)
    rows = tree_rows(window.tree_model)
    optimizer = [n for n in names if n.startswith("optimizer.")]
    assert optimizer and "optimizer" in entries
    select(window, "optimizer")
    assert window.edit_flows.actionDelete.isEnabled()
    window.edit_flows.actionDelete.trigger()
    assert not any(n.startswith("optimizer.") for n in doc.tensors)
    assert "optimizer" not in doc.entries and "epoch" in doc.entries
    assert all(not (full or "").startswith("optimizer") for full, _ in tree_rows(window.tree_model))
    assert window.isWindowModified()
    assert window.actionUndo.text().replace("&", "") == "Undo Delete optimizer"
    window.actionUndo.trigger()
    assert list(doc.tensors) == names and list(doc.entries) == entries
    assert tree_rows(window.tree_model) == rows
    assert not window.isWindowModified()
    # the restored entry is saved as it was
    out = os.path.join(os.path.dirname(training_file), "back.pt")
    save_as(qtbot, window, out)
    assert_bit_equal(torch.load(out, weights_only=True), ddp_training_checkpoint())


def test_extract_subtree_writes_a_relative_state_dict(qtbot, window, ddp_file, tmp_path):
    window.open_path(ddp_file)
    doc = wait_for_document(qtbot, window, ddp_file)
    out = tmp_path / "body.pt"
    asked = []
    window.prompts.answer(save_file=lambda caption, start, _filters: asked.append(caption)
                          or (str(out), ""), relative_names=lambda prefix: asked.append(prefix) or True)
    select(window, "module.body")
    assert window.edit_flows.actionExtract.isEnabled()
    window.edit_flows.actionExtract.trigger()
    assert asked == ["Extract module.body as a state_dict", "module.body"]
    qtbot.waitUntil(lambda: "Extracted" in window.statusBar().currentMessage(), timeout=10_000)
    sd = torch.load(out, weights_only=True)
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    for k, t in sd.items():
        assert torch.equal(t, doc.tensor(f"module.body.{k}")), k
    assert window.undo_stack.count() == 0 and not window.isWindowModified()  # not an edit
    # a nn.Module loads the extracted file directly
    body = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    body.load_state_dict(sd)


def test_selection_follows_a_renamed_tensor_and_its_undo(qtbot, window, ddp_file):
    window.open_path(ddp_file)
    wait_for_document(qtbot, window, ddp_file)
    select(window, "module.body.0.bias")
    rename_strip_module(qtbot, window)
    qtbot.waitUntil(lambda: "body.0.bias" in window.controller.document.tensors)
    assert window.controller.current_node.full_name == "body.0.bias"
    assert window.tensor_view.name == "body.0.bias"
    window.actionUndo.trigger()
    assert window.controller.current_node.full_name == "module.body.0.bias"
