"""What a live module owns, from the window: add a parameter or buffer, promote / demote,
tie / untie, train / eval. A mixin of ``ParamFlows`` (which gives ``_push``, ``_entry``,
``_module_node``, ``live``, ``prompts`` and ``edit_flows``); every change is a core Edit on the undo stack."""
from __future__ import annotations

from ..core.edits.registration import (DemoteEdit, PromoteEdit, TrainModeEdit,
                                   plain_tensor_attributes)
from ..core.edits.tie_surgery import TieEdit, UntieEdit


class OwnershipActions:
    def open_add_dialog(self):
        from .dialogs.add_parameter_dialog import AddParameterDialog
        node = self._module_node()
        if node is None or not self.live:
            return None
        from ..core.edits.registration import validate_name
        module = node.module
        dialog = AddParameterDialog(node.full_name, node.full_name or type(module).__name__,
                                    lambda name, kind: validate_name(module, name, kind),
                                    self.window)
        return self.edit_flows._open(dialog, lambda: self._push(dialog.make_edit()))

    def promote(self) -> None:
        e = self._entry()
        if e is not None:
            self._push(PromoteEdit(e.name))

    def promote_attribute(self) -> None:
        node = self._module_node()
        if node is None:
            return
        names = plain_tensor_attributes(node.module)
        name = self.prompts.choice("Make a Parameter",
                                   f"Tensor attribute of {node.full_name or 'the model'}:",
                                   names) if names else None
        if name:
            self._push(PromoteEdit(name, module_path=node.full_name))

    def demote(self) -> None:
        e = self._entry()
        if e is not None:
            self._push(DemoteEdit(e.name))

    def tie_candidates(self, name: str) -> list[str]:
        doc = self.controller.document
        e = doc.entry(name)
        return [n for n, o in doc.tensors.items()
                if n != name and n not in e.shared_with and o.shape == e.shape
                and o.dtype == e.dtype and (doc.module is None or o.kind == e.kind)]

    def tie(self) -> None:
        e = self._entry()
        if e is None:
            return
        candidates = self.tie_candidates(e.name)
        if not candidates:
            self.edit_flows.show_error(
                "Nothing to tie to", f"no other tensor has the shape {list(e.shape)} and dtype "
                f"{e.dtype_name} of {e.name}")
            return
        source = self.prompts.choice("Tie", f"Make {e.name} the same tensor as:", candidates)
        if source:
            self._push(TieEdit(e.name, source))

    def untie(self) -> None:
        e = self._entry()
        if e is not None:
            self._push(UntieEdit(e.name))

    def set_training(self, mode: bool) -> None:
        node = self._module_node()
        if node is not None:
            self._push(TrainModeEdit(node.full_name, mode))
