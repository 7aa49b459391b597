"""Editing a training checkpoint's scalar entries and a safetensors file's __metadata__ through the
window: real files, the real tree (double-click, the context menu's action), the real dialogs,
undo / redo, save and reload. Nothing mocked."""
from __future__ import annotations

import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit
from safetensors.torch import save_file

from app.core.formats import load_document
from app.qt.models.tree_model import TYPE
from tests.helpers.qt import wait_for_document
from tests.qt.driving import child, click_ok, ok_button, pick, retype


def write_checkpoint(path):
    g = torch.Generator().manual_seed(3)
    ck = {"model": {"fc.weight": torch.randn(4, 3, generator=g), "fc.bias": torch.randn(4, generator=g)},
          "optimizer": {"param_groups": [{"lr": 0.1}]}, "epoch": 3}
    torch.save(ck, path)
    return ck


def shown(qtbot, window):
    window.show()
    qtbot.waitExposed(window)
    return window


def type_text(window, name) -> str:
    return window.tree_model.find(name).siblingAtColumn(TYPE).data()


def double_click(qtbot, window, name):
    assert window.select_name(name)
    view = window.tree_view
    index = view.currentIndex()
    rect = view.visualRect(index)
    # a press first: the view opens only an index that was pressed, as a real double-click does
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.mouseDClick(view.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: window.entry_flows.dialog is not None and window.entry_flows.dialog.isVisible())
    return window.entry_flows.dialog


def popped_menu(qtbot, window):
    from PySide6.QtWidgets import QMenu
    menus = []
    qtbot.waitUntil(lambda: menus.extend(m for m in window.findChildren(QMenu) if m.isVisible())
                    or bool(menus))
    return menus[0]


def saved(qtbot, window):
    window.actionSave.trigger()
    qtbot.waitUntil(lambda: not window.save_flows.is_saving, timeout=20_000)


def test_edit_epoch_and_lr_undo_redo_save_reload(qtbot, window, tmp_path):
    path = tmp_path / "train.pt"
    ck = write_checkpoint(path)
    window = shown(qtbot, window)
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    assert type_text(window, "epoch") == "int: 3"

    dialog = double_click(qtbot, window, "epoch")  # double-click the entry's row
    assert dialog.objectName() == "entryDialog"
    assert child(dialog, QComboBox, "entryType").currentText() == "int"
    value = child(dialog, QLineEdit, "entryValue")
    assert value.text() == "3"
    retype(qtbot, value, "abc")  # does not fit an int: OK stays disabled, the reason shown
    assert not ok_button(dialog).isEnabled()
    assert "not a whole number" in child(dialog, QLabel, "errorLabel").text()
    retype(qtbot, value, "12")
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: type_text(window, "epoch") == "int: 12")
    assert window.isWindowModified()

    # right-click the learning rate's row: the tree's context menu offers Edit Value…
    lr = "optimizer.param_groups.0.lr"
    assert window.select_name(lr)
    view = window.tree_view
    view.customContextMenuRequested.emit(view.visualRect(view.currentIndex()).center())
    menu = popped_menu(qtbot, window)
    assert menu.actions()[0] is window.entry_flows.actionEditEntry
    menu.close()
    menu.actions()[0].trigger()
    dialog = window.entry_flows.dialog
    qtbot.waitUntil(dialog.isVisible)
    assert child(dialog, QComboBox, "entryType").currentText() == "float"
    retype(qtbot, child(dialog, QLineEdit, "entryValue"), "3e-4")
    click_ok(qtbot, dialog)
    qtbot.waitUntil(lambda: type_text(window, lr) == "float: 0.0003")
    assert window.controller.document.container["optimizer"]["param_groups"][0]["lr"] == 3e-4

    window.actionUndo.trigger()
    assert type_text(window, lr) == "float: 0.1"
    window.actionUndo.trigger()
    assert type_text(window, "epoch") == "int: 3"
    assert not window.isWindowModified()
    window.actionRedo.trigger()
    window.actionRedo.trigger()
    assert type_text(window, "epoch") == "int: 12" and type_text(window, lr) == "float: 0.0003"
    recipe = window.controller.edits.recipe()
    assert recipe["steps"] == [{"op": "set_entry", "target": "epoch", "value": 12},
                               {"op": "set_entry", "target": lr, "value": 3e-4}]

    saved(qtbot, window)
    assert not window.isWindowModified()
    again = load_document(str(path))
    assert again.container["epoch"] == 12
    assert again.container["optimizer"]["param_groups"][0]["lr"] == 3e-4
    for name in ("fc.weight", "fc.bias"):
        assert torch.equal(again.container["model"][name], ck["model"][name])


def test_the_context_menu_offers_edit_value_on_entries_only(qtbot, window, tmp_path):
    from PySide6.QtWidgets import QMenu
    path = tmp_path / "train.pt"
    write_checkpoint(path)
    window = shown(qtbot, window)
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    for name, offered in (("epoch", True), ("model.fc.weight", False)):
        assert window.select_name(name)
        menu = QMenu(window)
        window.entry_flows.add_to_menu(menu, window.controller.current_node)
        assert (window.entry_flows.actionEditEntry in menu.actions()) is offered
        assert window.entry_flows.actionEditMetadata not in menu.actions()  # not safetensors
        menu.deleteLater()


def test_edit_metadata_add_remove_undo_save(qtbot, window, tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.arange(6.0)}, str(path), metadata={"format": "pt", "old": "x"})
    window = shown(qtbot, window)
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    action = window.entry_flows.actionEditMetadata
    assert action.isEnabled()
    file_menu = window.menuBar().actions()[0].menu()
    assert action in file_menu.actions()

    action.trigger()
    dialog = window.entry_flows.dialog
    qtbot.waitUntil(dialog.isVisible)
    assert dialog.objectName() == "metadataDialog"
    key = child(dialog, QComboBox, "metadataKey")
    key.setCurrentText("note")
    retype(qtbot, child(dialog, QLineEdit, "metadataValue"), "hello")
    click_ok(qtbot, dialog)
    assert window.controller.document.metadata["note"] == "hello"

    action.trigger()
    dialog = window.entry_flows.dialog
    qtbot.waitUntil(dialog.isVisible)
    pick(child(dialog, QComboBox, "metadataKey"), "old")
    assert child(dialog, QLineEdit, "metadataValue").text() == "x"
    qtbot.mouseClick(child(dialog, QCheckBox, "metadataRemove"), Qt.LeftButton)
    click_ok(qtbot, dialog)
    assert "old" not in window.controller.document.metadata

    window.actionUndo.trigger()
    assert window.controller.document.metadata.get("old") == "x"
    window.actionRedo.trigger()
    saved(qtbot, window)
    again = load_document(str(path))
    assert again.metadata.get("note") == "hello" and "old" not in again.metadata
    assert again.metadata.get("format") == "pt"
    assert torch.equal(again.tensor("w"), torch.arange(6.0))


def test_metadata_action_disabled_for_torch_files(qtbot, window, tmp_path):
    path = tmp_path / "train.pt"
    write_checkpoint(path)
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    assert not window.entry_flows.actionEditMetadata.isEnabled()


def test_values_too_long_to_edit_as_text_are_never_cut(qtbot, window, tmp_path):
    path = tmp_path / "long.pt"
    torch.save({"w": torch.zeros(2), "cfg": {"note": "x" * 20_000}}, path)
    window = shown(qtbot, window)
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    assert window.select_name("cfg.note")
    window.entry_flows.actionEditEntry.trigger()
    assert window.entry_flows.dialog is None
    box = window.edit_flows.message_box
    assert box is not None and "longer than" in box.text()
    box.close()

    meta = tmp_path / "long.safetensors"
    save_file({"w": torch.zeros(2)}, str(meta), metadata={"big": "y" * 20_000})
    window.open_path(meta)
    wait_for_document(qtbot, window, meta)
    window.entry_flows.actionEditMetadata.trigger()
    dialog = window.entry_flows.dialog
    qtbot.waitUntil(dialog.isVisible)
    assert child(dialog, QComboBox, "metadataKey").currentText() == "big"
    assert not ok_button(dialog).isEnabled()
    assert "only be removed" in child(dialog, QLabel, "errorLabel").text()
    qtbot.mouseClick(child(dialog, QCheckBox, "metadataRemove"), Qt.LeftButton)
    click_ok(qtbot, dialog)
    assert "big" not in window.controller.document.metadata
