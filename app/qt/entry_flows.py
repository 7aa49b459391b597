"""Editing scalar entries (double-click an entry's row, or right-click > Edit Value…) and a
safetensors file's ``__metadata__`` (File > Edit Metadata…). The edits go on the undo stack
through ``edit_flows.push`` like every other edit, so they are undone, recorded and saved."""
from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

from ..core.edits.entries import (METADATA_FORMATS, SetEntryEdit, SetMetadataEdit,
                                  editable_text, find_entry, scalar_kind)
from ..core.errors import UserError
from ..core.model.tree import ENTRY
from .dialogs.entry_dialog import EntryDialog, MetadataDialog
from .models.tree_model import NodeRole
from .window_views import Presenter, Views


def is_value(node) -> bool:
    """An entry row that holds one value (not a dict or list of further rows)."""
    return node is not None and node.kind == ENTRY and not node.children


class EntryFlows(Presenter):
    """The presenter of scalar entries and ``__metadata__``.

    Parameters
    ----------
    views
        The window's views (``window_views.Views``): ``views.tree`` (double-click);
        ``views.window``: the File menu, ``select_name``, the dialogs' parent.
    controller
        The document and the selection.
    edit_flows
        Pushes its edits and shows their errors.
    prompts, status
        The questions and transient messages (unused so far: its dialogs are its own).
    """

    def __init__(self, views: Views, *, controller, edit_flows, prompts, status):
        super().__init__(views, controller=controller, prompts=prompts, status=status, edit_flows=edit_flows)
        self.dialog = None
        self.actionEditEntry = QAction("Edit &Value…", self.window, objectName="actionEditEntry")
        self.actionEditEntry.triggered.connect(lambda: self.edit_entry())
        self.actionEditMetadata = QAction("Edit &Metadata…", self.window, objectName="actionEditMetadata")
        self.actionEditMetadata.triggered.connect(self.edit_metadata)
        self._add_to_file_menu()
        views.tree.view.doubleClicked.connect(self._double_clicked)
        self.controller.documentChanged.connect(lambda _doc: self._update_enabled())
        self._update_enabled()

    def _add_to_file_menu(self) -> None:
        """Below Export Recipe in whichever menu holds it (the File menu)."""
        anchor = self.window.actionExportRecipe
        for menu in self.window.menuBar().findChildren(QMenu):
            actions = menu.actions()
            if anchor in actions:
                i = actions.index(anchor)
                after = actions[i + 1] if i + 1 < len(actions) else None
                if after is not None:
                    menu.insertAction(after, self.actionEditMetadata)
                else:
                    menu.addAction(self.actionEditMetadata)
                return

    def _update_enabled(self) -> None:
        doc = self.controller.document
        self.actionEditMetadata.setEnabled(doc is not None and doc.module is None
                                           and doc.format in METADATA_FORMATS)

    def add_to_menu(self, menu: QMenu, node) -> None:
        """The tree's context menu: Edit Value… first on an entry, Edit Metadata… on the root's
        rows of a safetensors file."""
        if is_value(node):
            first = menu.actions()[0] if menu.actions() else None
            menu.insertAction(first, self.actionEditEntry)
            menu.insertSeparator(first)
        if self.actionEditMetadata.isEnabled():
            menu.addSeparator()
            menu.addAction(self.actionEditMetadata)

    def _double_clicked(self, index) -> None:
        node = index.data(NodeRole) if index.isValid() else None
        if is_value(node):  # an entry with rows below it (a dict) expands instead
            self.edit_entry(node)

    # -- entries ------------------------------------------------------------------------------
    def edit_entry(self, node=None) -> EntryDialog | None:
        """Open the value dialog for ``node`` (default: the current tree node)."""
        node = node if node is not None else self.controller.current_node
        doc = self.controller.document
        if doc is None or not is_value(node):
            return None
        name = node.full_name
        try:
            _path, old = find_entry(doc, name)
            text = editable_text(old, name)
        except UserError as exc:
            self.edit_flows.show_error("Cannot edit this value", str(exc))
            return None
        dialog = EntryDialog(name, old, scalar_kind(old), text, self.window)
        return self._open(dialog, lambda: self._push_entry(name, dialog.value))

    def _push_entry(self, name: str, value) -> None:
        if self.edit_flows.push(SetEntryEdit(name, value)):
            self.window.select_name(name)

    # -- metadata -----------------------------------------------------------------------------
    def edit_metadata(self) -> MetadataDialog | None:
        doc = self.controller.document
        if doc is None or not self.actionEditMetadata.isEnabled():
            return None
        dialog = MetadataDialog(doc.metadata, self.window)
        return self._open(dialog, lambda: self.edit_flows.push(
            SetMetadataEdit(dialog.key, dialog.value)))

    def _open(self, dialog, on_accept):
        if self.dialog is not None:
            self.dialog.close()
        from PySide6.QtCore import Qt
        dialog.setAttribute(Qt.WA_DeleteOnClose)

        def accepted():
            try:
                on_accept()
            except UserError as exc:
                self.edit_flows.show_error("Edit not applied", str(exc))

        def finished(_=0):
            dialog.setObjectName("")  # findChild finds the next dialog, never this closed one
            if self.dialog is dialog:
                self.dialog = None
        dialog.accepted.connect(accepted)
        dialog.finished.connect(finished)
        self.dialog = dialog
        dialog.open()
        return dialog
