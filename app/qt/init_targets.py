"""What the initializer dialog may ask about the open document: which tensors and modules a
scope holds, which of them a function can take, which modules can reset themselves.

The dialog holds this (given by ``EditFlows``), never the ``Document``; each question is one call
into ``core.edits.initializers``.
"""
from __future__ import annotations

from ..core.edits import initializers as inits
from ..core.errors import UserError


class InitTargets:
    """The initializer dialog's questions about ``doc``.

    Parameters
    ----------
    doc
        The open document (a checkpoint, or a live model when ``doc.module`` is set).
    """

    def __init__(self, doc):
        self._doc = doc

    @property
    def live(self) -> bool:
        """A model whose modules can ``reset_parameters()``."""
        return self._doc.module is not None

    def locate(self, name: str) -> tuple[str, str, bool]:
        """(selected name, module the module/subtree scopes start at, selected is a tensor)."""
        doc = self._doc
        if name in doc.tensors:
            node = doc.node(name)
            parent = node.parent.full_name if node is not None and node.parent is not None else ""
            return name, parent, True
        try:
            inits.find_module_node(doc, name)
            return name, name, False
        except UserError:
            return "", "", False

    def module_filter_available(self) -> bool:
        return inits.module_filter_available(self._doc)

    def module_types_under(self, root: str, recursive: bool) -> list[str]:
        return inits.module_types_under(self._doc, root, recursive=recursive)

    def select_tensors(self, root: str, module_types, which: str, recursive: bool) -> list[str]:
        return inits.select_tensors(self._doc, root, module_types=module_types, which=which,
                                    recursive=recursive)

    def split_applicable(self, names: list[str], fn: str, args: dict):
        """(the names ``fn`` can take, [(name, why not)] for the others)."""
        return inits.split_applicable(self._doc, names, fn, args)

    def tied_names(self, names: list[str]) -> int:
        """How many other names share storage with ``names`` (they change with them)."""
        return sum(len(self._doc.aliases(n)) - 1 for n in names)

    def norm_weights_left_out(self, root: str, recursive: bool) -> list[str]:
        return inits.norm_weights_left_out(self._doc, root, recursive=recursive)

    def reset_modules(self, root: str, subtree: bool, types: list[str] | None) -> list[str]:
        """Modules in scope (``types`` filter applied) that have ``reset_parameters()``, each
        once; UserError when none has."""
        doc = self._doc
        top = doc.root if root == "" else doc.node(root)
        nodes = [n for n in top.walk() if n.entry is None] if subtree else [top]
        names, seen = [], set()
        for n in nodes:
            if types is not None and n.type_name not in types:
                continue
            try:
                m = doc.module.get_submodule(n.full_name)
            except Exception:
                continue
            if callable(getattr(m, "reset_parameters", None)) and id(m) not in seen:
                seen.add(id(m))
                names.append(n.full_name)
        if not names:
            raise UserError("no module in the selection has reset_parameters()")
        return names
