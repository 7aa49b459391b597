"""Editing from the window: the edit and initializer dialogs, grid cells, freeze / unfreeze,
checkpoint surgery (rename, delete, cast, extract), the recipe export, and keeping the views in
step with what each edit (or its undo) changed.

Every change goes through ``controller.edits`` (a QUndoStack of core Edits): nothing here touches
a tensor directly.
"""
from __future__ import annotations
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox

from ..core.edits.base import CompositeEdit, Edit
from ..core.errors import UserError
from ..core.model.tensor_entry import PARAMETER
from .dialogs.edit_dialog import EditDialog
from .edit_busy import EditBusy
from .edit_hooks import AlreadyApplied, edit_dialog_hooks, shapes_of, unique_names
from .surgery_flows import MEMORY_CAP_KEY, SurgeryFlows
from .window_views import Presenter, Views

__all__ = ["AlreadyApplied", "CAST_DTYPES", "EditFlows", "MEMORY_CAP_KEY", "edit_dialog_hooks",
           "shapes_of", "unique_names"]

CAST_DTYPES = ("float32", "float16", "bfloat16", "float64")


class EditFlows(SurgeryFlows, Presenter):
    """The editing presenter.

    Parameters
    ----------
    views
        The window's views (``window_views.Views``): ``views.tree`` (marks, context menu),
        ``views.grid`` (cell edits), ``views.stats`` (refreshed after an edit);
        ``views.window``: the Edit actions, ``select_name``, ``update_summary``,
        ``dialog_folder``, the dialogs' parent (``EditBusy`` blocks it while an edit runs).
    controller
        The open document, the selection and ``edits`` (the ``EditStack``).
    prompts
        The questions (extract / recipe paths, memory limit) and error boxes.
    status
        ``status(text, timeout_ms)``: a transient message.

    The window sets the hooks to its other presenters: ``saving()`` (a save is running),
    ``reference()`` (the comparison's reference document and path), ``extract(prefix, path,
    relative)`` and ``menu_parts`` (callables ``(menu, node)`` adding to the tree's menu).
    """

    def __init__(self, views: Views, *, controller, prompts, status):
        super().__init__(views, controller=controller, prompts=prompts, status=status)
        self.edits = controller.edits
        self.saving = lambda: False
        self.reference = lambda: (None, None)
        self.extract = None
        self.menu_parts: list = []
        self.dialog = None          # the open edit / initializer / rename dialog
        self._drop_note: str | None = None  # the memory cap's message during a push
        self.message_box: QMessageBox | None = None
        self._build_actions()
        self.edits.memory_cap = self.memory_cap_setting()
        self.edits.edited.connect(self._on_edited)
        self.edits.dropped.connect(self._on_dropped)
        self.edits.failed.connect(lambda message: self.show_error("Undo failed", message))
        self._busy = EditBusy(views, self.edits)  # blocks the window while an edit runs
        self.edits.stack.cleanChanged.connect(self._clean_changed)
        # QUndoStack runs redo()/undo() before it moves its index (and EditStack records a pushed
        # command only after that): the marks are right once the index has moved.
        self.edits.stack.indexChanged.connect(self._index_changed)
        self.controller.documentChanged.connect(lambda _doc: self._update_enabled())
        self.controller.tensorSelected.connect(self._on_tensor_selected)
        self.controller.moduleSelected.connect(lambda *_: self._update_enabled())
        self.controller.selectionCleared.connect(self._on_selection_cleared)
        grid_model = views.grid.model
        grid_model.editRefused.connect(self._cell_refused)
        tree = views.tree.view
        tree.setContextMenuPolicy(Qt.CustomContextMenu)
        tree.customContextMenuRequested.connect(self._tree_menu)
        self._update_enabled()

    # -- actions ------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        w = self.window
        w.actionEdit.triggered.connect(self.open_edit_dialog)
        w.actionInitialize.triggered.connect(self.open_initializer_dialog)
        w.actionExportRecipe.triggered.connect(self.export_recipe)

        def action(name, text, slot, shortcut=None):
            a = QAction(text, w)
            a.setObjectName(name)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
                a.setShortcutContext(Qt.WidgetWithChildrenShortcut)
                self.views.tree.view.addAction(a)  # Delete acts on the tree, not on a grid cell
            a.triggered.connect(slot)
            return a

        self.actionRename = action("actionRename", "Re&name Tensors…", self.open_rename_dialog)
        self.actionDelete = action("actionDelete", "&Delete", self.delete_selection,
                                   QKeySequence.Delete)
        self.actionExtract = action("actionExtract", "E&xtract Subtree…", self.extract_selection)
        self.actionFreeze = action("actionFreeze", "&Freeze (requires_grad = False)",
                                   lambda: self.set_requires_grad(False))
        self.actionUnfreeze = action("actionUnfreeze", "&Unfreeze (requires_grad = True)",
                                     lambda: self.set_requires_grad(True))
        self.actionMemoryCap = action("actionMemoryCap", "Undo &Memory Limit…", self.ask_memory_cap)
        self.cast_menu = QMenu("&Cast To", w)
        self.cast_menu.setObjectName("castMenu")
        self.cast_actions = {}
        for dtype in CAST_DTYPES:
            a = self.cast_menu.addAction(dtype)
            a.setObjectName(f"actionCast_{dtype}")
            a.triggered.connect(lambda _=False, d=dtype: self.cast_selection(d))
            self.cast_actions[dtype] = a

    def add_to_menu(self, menu: QMenu) -> None:
        """The Edit menu's part below the value edits."""
        menu.addSeparator()
        menu.addActions([self.actionFreeze, self.actionUnfreeze])
        menu.addSeparator()
        menu.addActions([self.actionRename, self.actionDelete])
        menu.addMenu(self.cast_menu)
        menu.addAction(self.actionExtract)
        menu.addSeparator()
        menu.addAction(self.actionMemoryCap)

    def _tree_menu(self, pos) -> None:
        index = self.views.tree.view.indexAt(pos)
        if not index.isValid():
            return
        self.views.tree.view.setCurrentIndex(index)
        menu = QMenu(self.window)
        menu.addActions([self.window.actionEdit, self.window.actionInitialize])
        self.add_to_menu(menu)
        for add in self.menu_parts:  # gradients, registration; Edit Value… / Metadata…
            add(menu, self.controller.current_node)
        menu.popup(self.views.tree.view.viewport().mapToGlobal(pos))

    def _update_enabled(self) -> None:
        doc = self.controller.document
        node = self.controller.current_node
        if self.saving():  # the save worker reads the tensors: no edit until it is done
            doc = node = None
        has_doc, has_node = doc is not None, node is not None
        names = unique_names(node) if has_node else []
        live = has_doc and doc.module is not None
        w = self.window
        w.actionEdit.setEnabled(bool(names))
        w.actionInitialize.setEnabled(bool(names))
        w.actionExportRecipe.setEnabled(self.controller.document is not None)
        self.actionRename.setEnabled(has_doc and not live and bool(doc.tensors))
        self.actionDelete.setEnabled(has_node and not live and bool(node.full_name))
        self.cast_menu.setEnabled(bool(names))
        self.actionExtract.setEnabled(bool(names))
        flags = self._trainable_flags(names)
        self.actionFreeze.setEnabled(any(f is not False for f in flags))
        self.actionUnfreeze.setEnabled(any(f is not True for f in flags))

    def _trainable_flags(self, names: list[str]) -> list[bool | None]:
        """requires_grad of each parameter among ``names``; None where not read yet (selecting a
        module must not read its tensors)."""
        entries = [self.controller.document.entry(n) for n in names]
        return [e.requires_grad for e in entries if e.kind == PARAMETER]

    # -- running edits ------------------------------------------------------------------------
    def push(self, edit: Edit) -> bool:
        """Apply ``edit`` as one undoable step; say why when it cannot be applied. A big edit
        runs on a worker (undo.py): True then says it started; its end is said when it comes."""
        if self.saving():
            return self._pushed(edit, UserError("a save is running; edit again when it has finished"))
        self._drop_note = None
        return self.edits.submit(edit, lambda error, edit=edit: self._pushed(edit, error))

    def submit(self, edit: Edit, done) -> bool:
        """Apply ``edit`` as one undoable step like ``push`` (a big one on a worker), but tell
        ``done(error)`` how it ended (on the GUI thread; at once for a small edit) instead of
        saying it: for presenters with their own words (transplant, interpolate). False when it
        failed at once."""
        if self.saving():
            done(UserError("a save is running; edit again when it has finished"))
            return False
        self._drop_note = None
        return self.edits.submit(edit, done)

    def _pushed(self, edit: Edit, error: Exception | None) -> bool:
        if error is None:
            self._show_pushed(f"{edit.label} — Ctrl+Z undoes it", 6000)
            return True
        message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
        self.show_error("Edit not applied", message)
        return False

    def _push(self, edit: Edit) -> Exception | None:
        if self.saving():
            return UserError("a save is running; edit again when it has finished")
        self._drop_note = None
        return self.edits.push(edit)

    def _show_pushed(self, text: str, timeout: int) -> None:
        """Say what was applied, keeping the memory cap's note when this push dropped steps."""
        if self._drop_note:
            self.status(f"{text}. {self._drop_note}", 15000)
        else:
            self.status(text, timeout)
        self._drop_note = None

    def show_error(self, title: str, message: str) -> QMessageBox:
        if self.message_box is not None:
            self.message_box.close()
        box = self.prompts.error(title, message, "editErrorBox")
        box.finished.connect(lambda _=0: setattr(self, "message_box", None))
        self.message_box = box
        self.status(f"{title}: {message}", 10000)
        return box

    def _on_edited(self, edit: Edit) -> None:
        doc = self.controller.document
        w = self.window
        if edit.structural:
            current = self.controller.current_node
            name = current.full_name if current is not None else None
            moved = getattr(edit, "mapping", {})  # a rename: the selection follows the tensor
            if name is not None and doc.node(name) is None:
                name = moved.get(name) or {v: k for k, v in moved.items()}.get(name) or name
            if self.views.tree.model.root is not doc.root:  # the document's announcement rebuilt it once
                self.views.tree.show_root(doc.root, fit=False)  # a rebuild: keep widths, reveal
            if name is None or not w.select_name(name):
                first = next((n for n in doc.root.walk() if n.entry is not None), None)
                if first is not None:
                    w.select_name(first.full_name)
                else:
                    self.controller.select_node(None)
        else:
            self.views.tree.model.tensors_changed(edit.touched(), modified=False)
            shown = set(self._shown_names())
            if shown & set(edit.touched()):
                self.views.grid.refresh()
                self.views.stats.refresh()
        w.update_summary()
        self._update_marks()
        self._update_enabled()

    def _shown_names(self) -> list[str]:
        node = self.controller.current_node
        if node is None:
            return []
        return [n for name in unique_names(node) for n in self.controller.document.aliases(name)]

    def _index_changed(self, _index: int) -> None:
        import shiboken6
        if shiboken6.isValid(self.edits.stack):  # not while the stack is being destroyed
            self._update_marks()

    def _update_marks(self) -> None:
        """Modified marks: tensors changed by the steps between the saved state and now."""
        model = self.views.tree.model
        marks = self.edits.touched_since_clean()  # dropped steps' tensors too, once unsaved
        old, model.modified = model.modified, set()
        model.tensors_changed(sorted(marks), modified=True)
        model.tensors_changed(sorted(old - marks), modified=False)

    def _clean_changed(self, _clean: bool) -> None:
        import shiboken6
        if shiboken6.isValid(self.edits.stack) and shiboken6.isValid(self.window):
            self._update_marks()

    def _on_dropped(self, count: int) -> None:
        cap = self.edits.memory_cap / 1024 ** 2
        self._drop_note = (f"Undo history over its {cap:,.0f} MiB limit: the oldest {count} step"
                           f"{'s' if count != 1 else ''} can no longer be undone "
                           "(Edit > Undo Memory Limit)")
        self.status(self._drop_note, 15000)

    # -- the edit dialog ----------------------------------------------------------------------
    def open_edit_dialog(self) -> EditDialog | None:
        doc, node = self.controller.document, self.controller.current_node
        if doc is None or node is None:
            return None
        names = unique_names(node)
        if not names:
            return None
        hooks = edit_dialog_hooks(doc, *self.reference())  # ref["NAME"] reads the reference
        if node.entry is not None:
            names = [node.entry.name]
            dialog = EditDialog(shapes_of(doc, names), node.entry.name, self.window, **hooks)
        else:
            title = node.full_name or self.controller.title
            dialog = EditDialog(shapes_of(doc, names), f"{title} ({len(names)} tensors)",
                                self.window, module_prefix=node.full_name, **hooks)
        return self._open(dialog, lambda: self._push_from(dialog), delete_on_close=False)

    def _push_from(self, dialog: EditDialog) -> None:
        edit, dialog.applied_edit = dialog.applied_edit, None  # the closed dialog holds no values
        self.push_applied(edit)

    def push_applied(self, edit: Edit | None) -> bool:
        """Record an edit the edit dialog has already applied on its worker thread."""
        if edit is None:
            return False
        if self.saving():  # cannot happen while the dialog is modal; never keep an unrecorded edit
            edit.revert(self.controller.document)
            self.show_error("Edit not applied", "a save is running; edit again when it has finished")
            return False
        return self.push(AlreadyApplied(edit))

    def open_initializer_dialog(self):
        from .dialogs.initializer_dialog import InitializerDialog
        doc, node = self.controller.document, self.controller.current_node
        if doc is None or node is None:
            return None
        from .init_targets import InitTargets
        dialog = InitializerDialog(InitTargets(doc), node.full_name, self.window)

        def accepted():
            edits = dialog.make_edits()
            if len(edits) == 1:
                self.push(edits[0])
            elif edits:
                self.push(CompositeEdit(edits, " and ".join(e.label for e in edits)))
        return self._open(dialog, accepted)

    def _open(self, dialog, on_accept, delete_on_close: bool = True):
        if self.dialog is not None:
            self.dialog.close()
        if delete_on_close:
            dialog.setAttribute(Qt.WA_DeleteOnClose)
        else:  # its worker may still report to it after it closed: deleted at the next close
            dialog.finished.connect(lambda _=0: self._keep_closed(dialog))

        def accepted():
            try:
                on_accept()
            except UserError as exc:
                self.show_error("Edit not applied", str(exc))
        dialog.accepted.connect(accepted)
        dialog.finished.connect(lambda _=0: self._closed(dialog))
        self.dialog = dialog
        dialog.open()
        return dialog

    def _keep_closed(self, dialog) -> None:
        old, self._kept_dialog = getattr(self, "_kept_dialog", None), dialog
        if old is not None and old is not dialog:
            old.deleteLater()

    def _closed(self, dialog) -> None:
        """A finished dialog is deleted only later (WA_DeleteOnClose): its objectName goes now, so
        that ``findChild(QDialog, "editDialog")`` finds the next one, never this closed one."""
        dialog.setObjectName("")
        if self.dialog is dialog:
            self.dialog = None

    # -- grid cells ---------------------------------------------------------------------------
    def _on_tensor_selected(self, name: str, tensor) -> None:
        self.views.grid.model.cell_editor = (
            lambda index, text, name=name: self.edit_cell(name, index, text))
        self._update_enabled()

    def _on_selection_cleared(self) -> None:
        self.views.grid.model.cell_editor = None
        self._update_enabled()

    def edit_cell(self, name: str, index: tuple, text: str) -> str | None:
        """A typed cell value: None when applied, else why it was refused."""
        from ..core.edits.values import CellEdit, parse_cell_value
        doc = self.controller.document
        try:
            value = parse_cell_value(text, doc.entry(name).dtype)
            error = self._push(CellEdit(name, tuple(index), value))
        except UserError as exc:
            error = exc
        if error is not None:
            return str(error)
        self._show_pushed(f"{name}[{', '.join(map(str, index))}] = {value}", 5000)
        return None

    def _cell_refused(self, message: str) -> None:
        self.status(f"Not changed: {message}", 10000)
        self.views.grid.grid.setToolTip(message)

