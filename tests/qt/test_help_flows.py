"""Desktop conventions: Help > About and Keyboard Shortcuts, Ctrl+F, Redo on two keys, Quit."""
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QMessageBox

import app
from app.core.edits.values import FillEdit
from app.core.model.document import Document


def test_about_names_the_versions_and_the_licence(qtbot, window):
    window.help_flows.actionAbout.trigger()
    box = window.findChild(QMessageBox, "aboutBox")
    assert box is not None and box.isVisible()
    text = box.text()
    assert app.__version__ in text and torch.__version__ in text and "MIT" in text
    box.close()


def test_shortcut_list_comes_from_the_actions(qtbot, window):
    window.help_flows.actionShortcuts.trigger()
    text = window.findChild(QMessageBox, "shortcutsBox").text()
    for action in (window.actionOpen, window.actionSave, window.actionEdit, window.actionQuit):
        assert action.shortcut().toString(QKeySequence.NativeText) in text
    assert "Ctrl+Y" in text and "Filter names" in text


def shown_and_active(qtbot, window):
    window.show()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)  # shortcuts need it


def test_redo_answers_ctrl_shift_z_and_ctrl_y(qtbot, window):
    window.open_document(Document.from_object({"w": torch.zeros(3)}), "t")
    shown_and_active(qtbot, window)
    assert window.select_name("w")
    window.edit_flows.push(FillEdit(["w"], 1.0))
    for key in (QKeySequence("Ctrl+Y"), QKeySequence("Ctrl+Shift+Z")):
        window.actionUndo.trigger()
        assert torch.equal(window.controller.document.tensor("w"), torch.zeros(3))
        qtbot.keyClick(window.tree_view, key[0].key(), key[0].keyboardModifiers())
        assert torch.equal(window.controller.document.tensor("w"), torch.ones(3)), key.toString()


def test_ctrl_f_focuses_the_name_filter(qtbot, window):
    shown_and_active(qtbot, window)
    window.tree_view.setFocus()
    qtbot.keyClick(window.tree_view, Qt.Key_F, Qt.ControlModifier)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is window.tree_panel.filter)


def test_quit_has_its_shortcut(qtbot, window):
    """Ctrl+Q where the platform names no Quit key (offscreen, some desktops)."""
    assert not window.actionQuit.shortcut().isEmpty()
