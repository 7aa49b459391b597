"""The edit presenter's surgery and settings: freeze / unfreeze, delete, cast, rename, extract, the
recipe export and the undo memory limit (a mixin of ``edit_flows.EditFlows``)."""
from __future__ import annotations

import json
import os

from ..core.model.tree import ENTRY
from .edit_hooks import unique_names
from .models.tree_model import TYPE
from .settings import remember_folder, settings

MEMORY_CAP_KEY = "undoMemoryCapMiB"


class SurgeryFlows:
    """The Edit menu's actions beyond value edits; mixed into ``EditFlows``, whose ``push``,
    ``_open``, ``show_error``, ``controller``, ``prompts``, ``status`` and ``edits`` they use."""

    # -- trainable / frozen -------------------------------------------------------------------
    def set_requires_grad(self, flag: bool) -> None:
        from ..core.edits.values import RequiresGradEdit
        node = self.controller.current_node
        if node is not None and self.push(RequiresGradEdit(unique_names(node), flag)):
            self.views.tree.view.resizeColumnToContents(TYPE)  # room for "(frozen)"

    # -- surgery ------------------------------------------------------------------------------
    def _selection_target(self) -> str | None:
        """The recipe target of the selected node: its name, or ``prefix.*`` for a module."""
        node = self.controller.current_node
        if node is None:
            return None
        if node.entry is not None or node.kind == ENTRY:
            return node.full_name
        doc = self.controller.document
        if isinstance(doc.container, dict) and node.full_name in map(str, doc.container):
            return node.full_name  # a whole top-level entry (e.g. "optimizer")
        return f"{node.full_name}.*" if node.full_name else "*"

    def delete_selection(self) -> None:
        from ..core.edits.surgery import DeleteEdit
        target = self._selection_target()
        if target:
            self.push(DeleteEdit(target))

    def cast_selection(self, dtype: str) -> None:
        from ..core.edits.surgery import CastEdit
        node = self.controller.current_node
        if node is None or not unique_names(node):
            return
        # A cast acts on tensors: a whole top-level entry (``model``, ``optimizer``) is the glob
        # over its tensors, never its bare name (which names no tensor).
        if node.entry is not None:
            target = node.full_name
        else:
            target = f"{node.full_name}.*" if node.full_name else "*"
        if target:
            self.push(CastEdit(target, dtype))

    def open_rename_dialog(self):
        from .dialogs.rename_dialog import RenameDialog
        doc = self.controller.document
        if doc is None:
            return None
        node = self.controller.current_node
        selection = unique_names(node) if node is not None and node.full_name else []
        dialog = RenameDialog(list(doc.tensors), selection, lambda edit: edit.plan(doc), self.window)
        return self._open(dialog, lambda: self.push(dialog.make_edit()))

    def extract_selection(self) -> None:
        node = self.controller.current_node
        if node is None:
            return
        prefix = node.full_name
        from .save_flows import SAVE_FILTER
        stem = (prefix or self.controller.title).replace(".", "_")
        path, _ = self.prompts.save_file(
            f"Extract {prefix or 'everything'} as a state_dict",
            os.path.join(self.window.dialog_folder(), f"{stem}.safetensors"), SAVE_FILTER)
        if not path:
            return
        remember_folder(path)
        relative = self.prompts.relative_names(prefix) if prefix else True
        if relative is None:
            return
        self.extract(prefix, path, relative)

    # -- recipe and settings ------------------------------------------------------------------
    def export_recipe(self) -> str | None:
        stem = os.path.splitext(self.controller.title or "edits")[0]
        path, _ = self.prompts.save_file(
            "Export recipe", os.path.join(self.window.dialog_folder(), f"{stem}.recipe.json"),
            "Recipes (*.json);;All files (*)")
        if not path:
            return None
        remember_folder(path)
        text = json.dumps(self.edits.recipe(), indent=2) + "\n"
        from ..core.formats.save import atomic_write
        try:
            atomic_write(path, lambda f: f.write(text.encode()))
        except OSError as exc:
            self.show_error("Recipe not written", f"{path}: {exc.strerror or exc}")
            return None
        steps = len(self.edits.recipe()["steps"])
        self.status(f"Wrote {steps} recipe step{'s' if steps != 1 else ''} to {path}", 8000)
        return path

    @staticmethod
    def memory_cap_setting() -> int:
        from .undo import DEFAULT_MEMORY_CAP
        value = settings().value(MEMORY_CAP_KEY)
        try:
            return int(value) * 1024 ** 2 if value is not None else DEFAULT_MEMORY_CAP
        except (TypeError, ValueError):
            return DEFAULT_MEMORY_CAP

    def ask_memory_cap(self) -> None:
        current = self.edits.memory_cap // 1024 ** 2
        value = self.prompts.integer("Undo memory limit", "Old values kept for undo, at most (MiB):",
                                     current, 16, 1 << 20, 256)
        if value is not None:
            settings().setValue(MEMORY_CAP_KEY, value)
            self.edits.memory_cap = value * 1024 ** 2
