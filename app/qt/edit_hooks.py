"""The edit presenter's plain helpers: the names and shapes a selection edits, the edit dialog's
hooks over the document, and ``AlreadyApplied`` (an edit a worker has already applied)."""
from __future__ import annotations

from ..core.edits.base import Edit
from ..core.model.tree import Node


class AlreadyApplied(Edit):
    """An edit applied off the GUI thread: its first ``apply`` (the push's redo) does nothing;
    undo and redo then go to the edit itself."""

    def __init__(self, edit: Edit):
        self.edit = edit
        self.structural = edit.structural
        self._pending = True

    @property
    def label(self) -> str:
        return self.edit.label

    def apply(self, doc) -> None:
        if self._pending:
            self._pending = False
            return
        self.edit.apply(doc)

    def revert(self, doc) -> None:
        self.edit.revert(doc)

    def recipe_step(self) -> dict:
        return self.edit.recipe_step()

    def recipe_steps(self) -> list[dict]:
        return self.edit.recipe_steps()

    def touched(self) -> list[str]:
        return self.edit.touched()

    def memory_cost(self) -> int:
        return self.edit.memory_cost()

    def __getattr__(self, name):  # e.g. a rename's ``mapping``
        return getattr(self.__dict__["edit"], name)


def unique_names(node: Node) -> list[str]:
    """The tensors under ``node`` in document order, each tied storage once."""
    from ..core.model.ties import unique_entries
    return [e.name for e in unique_entries(node.tensor_entries())]


def shapes_of(doc, names: list[str]) -> dict[str, tuple]:
    """Each tensor's shape from its entry (the header: nothing is read)."""
    return {n: tuple(doc.entry(n).shape) for n in names}


def edit_dialog_hooks(doc, reference=None, reference_path: str | None = None) -> dict:
    """The edit dialog's ``build``, ``preview`` and ``apply`` over ``doc`` (and a comparison's
    reference, which ``ref["NAME"]`` reads)."""
    from ..core.edits.specs import edit_from_spec, preview_edit
    from ..core.edits.values import ExprEdit

    def build(spec, targets):
        return edit_from_spec(spec, targets, ref=reference, ref_path=reference_path)

    def preview(spec, name, cancelled):
        return preview_edit(spec, name, doc.tensor(name), cancelled=cancelled, doc=doc,
                            ref=reference)

    def apply(edit, progress, cancelled):
        if isinstance(edit, ExprEdit):  # the one edit long enough to report and stop
            edit.apply(doc, progress=progress, cancelled=cancelled)
        else:
            edit.apply(doc)
    return {"build": build, "preview": preview, "apply": apply}


