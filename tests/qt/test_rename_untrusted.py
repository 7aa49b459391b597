"""The rename dialog with patterns a module cannot hold and patterns that backtrack (issues 9, 10):
a one-line message, Rename disabled, nothing renamed."""
from __future__ import annotations

import torch
from PySide6.QtWidgets import QDialogButtonBox, QLabel, QLineEdit

from tests.helpers.qt import wait_for_document
from tests.qt.driving import child, open_dialog, retype


def test_rename_dialog_refuses_empty_parts_and_slow_patterns(qtbot, window, tmp_path):
    path = tmp_path / "m.pt"
    names = ["enc.weight", "enc.bias", "a" * 3000 + ".weight"]
    torch.save({n: torch.ones(2) for n in names}, path)
    window.open_path(str(path))
    doc = wait_for_document(qtbot, window, str(path))
    dialog = open_dialog(qtbot, window, window.edit_flows.actionRename, "renameDialog")
    pattern = child(dialog, QLineEdit, "renamePattern")
    replacement = child(dialog, QLineEdit, "renameReplacement")
    error = child(dialog, QLabel, "errorLabel")
    ok = dialog.buttons.button(QDialogButtonBox.Ok)
    for find, repl, words in [("^enc", "", "empty part"), (r"\.", "..", "empty part"),
                              ("(a+)+b", "x", "took longer than")]:
        retype(qtbot, pattern, find)
        retype(qtbot, replacement, repl)
        qtbot.waitUntil(lambda: words in error.text(), timeout=20_000)
        assert not ok.isEnabled() and "\n" not in error.text()
    retype(qtbot, pattern, "^enc\\.")
    retype(qtbot, replacement, "encoder.")
    qtbot.waitUntil(ok.isEnabled, timeout=10_000)
    ok.click()
    qtbot.waitUntil(lambda: "encoder.weight" in doc.tensors)
    assert list(doc.tensors) == ["encoder.weight", "encoder.bias", names[2]]
