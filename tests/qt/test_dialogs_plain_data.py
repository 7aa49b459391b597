"""The dialogs take plain data and callbacks, never the document: they work on a bare tensor."""
from __future__ import annotations

import re

import torch
from PySide6.QtWidgets import QDialogButtonBox

from app.core.edits.specs import edit_from_spec, preview_edit
from app.core.errors import UserError
from app.qt.dialogs.add_parameter_dialog import AddParameterDialog
from app.qt.dialogs.edit_dialog import EditDialog
from app.qt.dialogs.rename_dialog import RenameDialog


def test_edit_dialog_previews_and_applies_through_its_callbacks(qtbot):
    w = torch.zeros(2, 3)
    calls = []

    def preview(spec, name, cancelled):
        calls.append(("preview", name))
        return preview_edit(spec, name, w, cancelled=cancelled)

    def apply(edit, progress, cancelled):
        calls.append(("apply", edit.label))
        w.fill_(float(edit.recipe_step()["value"]))

    dialog = EditDialog({"w": (2, 3)}, "w", build=lambda spec, targets: edit_from_spec(spec, targets),
                        preview=preview, apply=apply)
    qtbot.addWidget(dialog)
    dialog.operation.setCurrentIndex(dialog.operation.findData("set"))
    dialog.value.setText("2")
    qtbot.waitUntil(lambda: dialog.changed_count == 6, timeout=5000)
    dialog.index.setText("[5]")  # checked against the given shape, nothing read
    assert not dialog._update_preview() and dialog.error_label.text()
    dialog.index.setText("")
    assert dialog._update_preview()
    qtbot.waitUntil(lambda: dialog.changed_count == 6, timeout=5000)
    with qtbot.waitSignal(dialog.accepted, timeout=5000):
        dialog.buttons.button(QDialogButtonBox.Ok).click()
    assert ("preview", "w") in calls and calls[-1][0] == "apply"
    assert torch.equal(w, torch.full((2, 3), 2.0)) and dialog.applied_edit is not None


def test_rename_dialog_previews_from_names_and_a_plan(qtbot):
    names = ["module.a", "module.b", "c"]

    def plan(edit):
        renamed = {n: re.sub(edit.pattern, edit.repl, n) for n in names}
        return {n: new for n, new in renamed.items() if new != n}

    dialog = RenameDialog(names, [], plan)
    qtbot.addWidget(dialog)
    dialog.pattern.setText(r"^module\.")
    assert dialog._update_preview()
    assert [dialog.preview.item(i).text() for i in range(dialog.preview.count())] == [
        "module.a  →  a", "module.b  →  b"]
    dialog.pattern.setText(r"^module\.a$")
    dialog.replacement.setText("c")  # module.a -> c: a name the plan's names already hold
    assert not dialog._update_preview()
    assert "several tensors would be named c" in dialog.error_label.text()


def test_add_parameter_dialog_asks_its_validate_callback(qtbot):
    asked = []

    def validate(name, kind):
        asked.append((name, kind))
        return "taken" if name == "weight" else ""

    dialog = AddParameterDialog("fc", "fc", validate)
    qtbot.addWidget(dialog)
    dialog.name_edit.setText("weight")
    try:
        dialog.make_edit()
        raise AssertionError("no error")
    except UserError as exc:
        assert str(exc) == "taken"
    assert asked[-1][0] == "weight" and dialog.windowTitle() == "Add to fc"


class OneTensor:
    """An ``InitTargets`` of one 3 x 4 tensor named "w", without any document."""

    live = False

    def locate(self, name):
        return "w", "", True

    def module_filter_available(self):
        return False

    def module_types_under(self, root, recursive):
        return []

    def select_tensors(self, root, module_types, which, recursive):
        return ["w"]

    def split_applicable(self, names, fn, args):
        return list(names), []

    def tied_names(self, names):
        return 0

    def norm_weights_left_out(self, root, recursive):
        return []


def test_initializer_dialog_works_from_its_targets_alone(qtbot):
    from app.qt.dialogs.initializer_dialog import InitializerDialog
    dialog = InitializerDialog(OneTensor(), "w")
    qtbot.addWidget(dialog)
    assert dialog.windowTitle() == "Initialize w" and dialog.targets() == ["w"]
    assert dialog.reset_check.isHidden()
    (edit,) = dialog.make_edits()
    assert edit.targets == ["w"]
