"""The parameter model of a live PyTorch model in the window: gradients (a Value / Gradient
switch, norms in the tree, zero / scale / clip), registration (add, promote, demote), ties,
train / eval, and the counts PyTorch gives. Every change is a core Edit on the undo stack.

The gradient switch swaps the tensor handed to the grid and the statistics (``p.grad`` instead of
``p``); the views themselves do not know the difference.
"""
from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMenu

from ..core.edits.gradients import ClipGradEdit, GradEdit, ScaleGradEdit, ZeroGradEdit
from ..core.model.grads import distinct_parameters, grad_info_of, grad_snapshot
from ..core.edits.registration import TrainModeEdit, counts_text, plain_tensor_attributes, rescan
from ..core.model.tensor_entry import BUFFER, PARAMETER
from ..core.model.tree import module_entries
from .models.tree_model import DEVICE, GRAD, RATIO
from .ownership_flows import OwnershipActions
from .workers import Task
from .window_views import Presenter, Views


ALL_TOGETHER, EACH_TENSOR = "all selected tensors together", "each tensor"


def is_live(doc) -> bool:
    import torch
    return doc is not None and isinstance(doc.module, torch.nn.Module) \
        and not isinstance(doc.module, torch.jit.ScriptModule)


class ParamFlows(OwnershipActions, Presenter):
    """The parameter-model presenter of a live model.

    Parameters
    ----------
    views
        The window's views (``window_views.Views``): ``views.tree``, ``views.grid``,
        ``views.stats`` (gradients shown in them); ``views.window``: the menu bar, status
        bar, ``fit_docks``, ``select_name``.
    controller
        The document and the selection; ``controller.edits`` is the ``EditStack``.
    edit_flows
        Pushes its edits (one undo stack, one error box).
    prompts
        Scale factor, clip norm, attribute and tie-source questions.
    status
        ``status(text, timeout_ms)``: a transient message.
    """

    def __init__(self, views: Views, *, controller, edit_flows, prompts, status):
        super().__init__(views, controller=controller, prompts=prompts, status=status, edit_flows=edit_flows)
        self.edits = controller.edits
        self.dialog = None
        self._grad_task: Task | None = None
        self._running: dict = {}
        self._shown_grad = None  # the .grad tensor handed to the grid, if any
        self._build_actions()
        self.menu = self._build_menu()
        self.window.menuBar().addMenu(self.menu)
        self.counts_label = QLabel("", self.window, objectName="parameterCounts")
        self.window.statusBar().addPermanentWidget(self.counts_label)
        self.counts_label.setVisible(False)
        c = self.controller
        c.documentChanged.connect(self._on_document_changed)
        c.tensorSelected.connect(self._on_tensor_selected)
        c.moduleSelected.connect(self._on_module_selected)
        c.selectionCleared.connect(self._update_enabled)
        self.edits.edited.connect(self._on_edited)
        self._set_live_columns(False)
        self._update_enabled()

    # -- actions ------------------------------------------------------------------------------
    def _action(self, name, text, slot, shortcut=None, checkable=False) -> QAction:
        a = QAction(text, self.window)
        a.setObjectName(name)
        a.setCheckable(checkable)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        (a.toggled if checkable else a.triggered).connect(slot)
        setattr(self, name, a)
        return a

    def _build_actions(self) -> None:
        a = self._action
        a("actionShowGradients", "Show &Gradients", self._gradients_toggled, "Ctrl+G", True)
        a("actionRefresh", "&Refresh from the Model", self.refresh, QKeySequence.Refresh)
        a("actionZeroGradNone", "Gradients to &None (p.grad = None)",
          lambda: self.zero_grads(True))
        a("actionZeroGrad", "&Zero Gradients (in place)", lambda: self.zero_grads(False))
        a("actionScaleGrad", "&Scale Gradients…", self.scale_grads)
        a("actionClipGrad", "&Clip Gradient Norm…", self.clip_grads)
        a("actionAddParameter", "&Add Parameter or Buffer…", self.open_add_dialog)
        a("actionPromote", "Make a &Parameter (from buffer)", self.promote)
        a("actionDemote", "Make a &Buffer (from parameter)", self.demote)
        a("actionPromoteAttribute", "Make a Tensor Attribute a Parameter…", self.promote_attribute)
        a("actionTie", "&Tie To…", self.tie)
        a("actionUntie", "&Untie (clone)", self.untie)
        a("actionTrain", "train() on Subtree", lambda: self.set_training(True))
        a("actionEval", "eval() on Subtree", lambda: self.set_training(False))
        for act in (self.actionShowGradients, self.actionRefresh):
            self.window.addAction(act)

    def _build_menu(self) -> QMenu:
        menu = QMenu("&Model", self.window)
        menu.setObjectName("modelMenu")
        menu.addActions([self.actionShowGradients, self.actionRefresh])
        self.add_to_menu(menu)
        return menu

    def add_to_menu(self, menu: QMenu) -> None:
        """The part the tree's context menu shares (EditFlows calls this)."""
        menu.addSeparator()
        grads = menu.addMenu("Gradients")
        grads.addActions([self.actionZeroGradNone, self.actionZeroGrad, self.actionScaleGrad,
                          self.actionClipGrad])
        grads.setObjectName("gradientsMenu")
        menu.addActions([self.actionAddParameter, self.actionPromote, self.actionDemote,
                         self.actionPromoteAttribute, self.actionTie, self.actionUntie,
                         self.actionTrain, self.actionEval])

    # -- state --------------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """A Python ``nn.Module`` (not TorchScript, whose modules cannot be re-registered)."""
        return is_live(self.controller.document)

    def _node(self):
        return self.controller.current_node

    def _entry(self):
        node = self._node()
        return node.entry if node is not None else None

    def _module_node(self):
        """The selected module, or the module owning the selected tensor."""
        node = self._node()
        while node is not None and node.module is None:
            node = node.parent
        return node

    def _param_names(self) -> list[str]:
        node = self._node()
        if node is None:
            return []
        return [e.name for e in node.tensor_entries() if e.kind == PARAMETER]

    def _update_enabled(self, *_):
        doc, live, entry = self.controller.document, self.live, self._entry()
        has_params = live and bool(self._param_names())
        for act in (self.actionZeroGradNone, self.actionZeroGrad, self.actionScaleGrad,
                    self.actionClipGrad):
            act.setEnabled(has_params)
        self.actionShowGradients.setEnabled(live)
        self.actionRefresh.setEnabled(live)
        self.actionAddParameter.setEnabled(live and self._module_node() is not None)
        self.actionPromote.setEnabled(live and entry is not None and entry.kind == BUFFER)
        self.actionDemote.setEnabled(live and entry is not None and entry.kind == PARAMETER)
        editable = doc is not None and entry is not None and (
            live or (doc.module is None and doc.format != "torchscript"))
        self.actionTie.setEnabled(editable)  # a live model, or a file's state_dict
        self.actionUntie.setEnabled(editable and bool(entry.shared_with))
        module = live and self._module_node() is not None
        self.actionPromoteAttribute.setEnabled(
            module and bool(plain_tensor_attributes(self._module_node().module)))
        self.actionTrain.setEnabled(module)
        self.actionEval.setEnabled(module)

    def _set_live_columns(self, live: bool, grads: bool = False) -> None:
        """The gradient columns once some parameter has a ``.grad``; Device where a tensor is
        off the CPU (tooltips always say the device)."""
        view, doc = self.views.tree.view, self.controller.document
        devices = {e.tensor().device.type for e in doc.tensors.values() if e.is_loaded} \
            if live else set()
        wanted = {GRAD: live and grads, RATIO: live and grads, DEVICE: bool(devices - {"cpu"})}
        appeared = False
        for col, show in wanted.items():
            if view.isColumnHidden(col) == show:
                view.setColumnHidden(col, not show)
                if show:
                    view.resizeColumnToContents(col)
                    appeared = True
        if appeared:
            self.window.fit_docks()  # room for the new columns

    def _on_document_changed(self, doc) -> None:
        live = is_live(doc)
        self._set_live_columns(live)
        self.views.tree.model.params.set_grads({})
        if not live and self.actionShowGradients.isChecked():
            self.actionShowGradients.setChecked(False)
        self._update_counts()
        self._update_enabled()
        if live:
            self.views.tree.fit_columns()
            self.refresh_grads()

    def _update_counts(self) -> None:
        doc = self.controller.document
        live = is_live(doc)
        self.counts_label.setVisible(live)
        self.counts_label.setText(f"· {counts_text(doc.module)}" if live else "")
        self.counts_label.setToolTip("As PyTorch counts: len(list(model.named_parameters())), "
                                     "with remove_duplicate=False, and the elements of "
                                     "model.parameters() (shared parameters once)")

    # -- gradients: the view switch -----------------------------------------------------------
    @property
    def showing_gradients(self) -> bool:
        return self.actionShowGradients.isChecked() and self.live

    def _gradients_toggled(self, _on: bool) -> None:
        self.controller.select_node(self.controller.current_node)  # re-show, value or gradient

    def _on_tensor_selected(self, name: str, tensor) -> None:
        self._update_enabled()
        self._shown_grad = None
        if not self.showing_gradients:
            return
        self.views.grid.model.cell_editor = None  # a gradient is looked at, not typed into
        entry = self.controller.document.entry(name)
        grad = tensor.grad if entry.kind == PARAMETER else None
        if grad is None:
            self.views.grid.clear()
            self.views.stats.clear()
            why = "it is a buffer" if entry.kind != PARAMETER else ".grad is None"
            self.views.grid.title.setText(f"<b>{name}</b> has no gradient ({why})")
            self.status(f"{name} has no gradient ({why})", 8000)
            return
        self._shown_grad = grad
        self.views.grid.show_tensor(f"{name}.grad", grad)
        if grad.is_complex():
            self.views.stats.clear()
        else:
            self.views.stats.show_tensors(f"{name}.grad", [grad])

    def _on_module_selected(self, name: str, _tensors) -> None:
        self._update_enabled()
        if not self.showing_gradients:
            return
        node = self._node()
        grads = [p.grad for p in distinct_parameters(node.tensor_entries() if node else [])
                 if p.grad is not None and not p.grad.is_complex()]
        label = f"{name or self.controller.title} gradients"
        if grads:
            self.views.stats.show_tensors(label, grads)
        else:
            self.views.stats.clear()
            self.status(f"{label}: none (.grad is None)", 8000)

    # -- gradients: figures in the tree -------------------------------------------------------
    def refresh(self) -> None:
        """Read the live model again: its structure (registered or tied in the notebook), values
        and gradients."""
        doc = self.controller.document
        if not is_live(doc):
            return
        w = self.window
        now = [(e.name, id(e.tensor())) for e in module_entries(doc.module)]
        if now != [(n, id(e.tensor())) for n, e in doc.tensors.items() if e.is_loaded]:
            name = self._node().full_name if self._node() is not None else None
            rescan(doc)
            self.views.tree.show_root(doc.root)
            if name is None or not w.select_name(name):
                self.controller.select_node(None)
        else:
            self.views.tree.model.params.clear_cache()
            self._reread_shown()
        self._update_counts()
        self.refresh_grads()

    def _reread_shown(self) -> None:
        """Read the shown tensor again in place (the grid keeps its slice and scroll position);
        select it anew only where the gradient is a new tensor (after ``zero_grad()``)."""
        node = self._node()
        if node is None:
            return
        if self.showing_gradients:
            grad = node.entry.tensor().grad if node.entry is not None \
                and node.entry.kind == PARAMETER else None
            if node.entry is None or grad is None or grad is not self._shown_grad:
                self.controller.select_node(node)
                return
        self.views.grid.refresh()
        self.views.stats.refresh()

    def refresh_grads(self) -> None:
        """Gradient norms of every parameter, computed off the GUI thread."""
        doc = self.controller.document
        if not is_live(doc):
            return
        if self._grad_task is not None:
            self._grad_task.cancel()
        # .grad is read here, on the thread that runs backward() / zero_grad(); the worker only
        # computes norms of the tensors read (a worker reading .grad itself crashed the process)
        snapshot = grad_snapshot(doc.tensors.values())

        def work(_progress, cancelled):
            return grad_info_of(snapshot, cancelled)

        task = Task(work)
        self._grad_task = task
        self._running[task.signals] = task  # alive until it has finished, even when cancelled
        # Bound methods, not lambdas capturing the task: those would keep it (and through its
        # function, the model's tensors) alive for ever.
        task.signals.finished.connect(self._grads_ready)
        task.signals.done.connect(self._grad_done)
        task.start()

    def _grads_ready(self, infos) -> None:
        if self._grad_task is None or self.sender() is not self._grad_task.signals:
            return
        self.views.tree.model.params.set_grads(infos)
        self._set_live_columns(self.live, any(i.norm is not None for i in infos.values()))
        self._repaint(GRAD)

    def _repaint(self, first_column: int) -> None:
        """One signal for the whole tree: the view repaints what it shows."""
        model = self.views.tree.model
        rows = model.rowCount()
        if rows:
            model.dataChanged.emit(model.index(0, first_column), model.index(rows - 1, DEVICE))

    def _grad_done(self) -> None:
        task = self._running.pop(self.sender(), None)
        if task is not None and task is self._grad_task:
            self._grad_task = None

    @property
    def grads_pending(self) -> bool:
        return self._grad_task is not None

    def _on_edited(self, edit) -> None:
        if isinstance(edit, TrainModeEdit):
            self._repaint(0)
        self._update_counts()
        self._update_enabled()
        if self.live:
            self.refresh_grads()
            if isinstance(edit, GradEdit) and self.showing_gradients:
                self.controller.select_node(self.controller.current_node)

    # -- gradient edits -----------------------------------------------------------------------
    def _push(self, edit) -> bool:
        return self.edit_flows.push(edit)

    def zero_grads(self, set_to_none: bool) -> None:
        names = self._param_names()
        if names:
            self._push(ZeroGradEdit(names, set_to_none))

    def scale_grads(self) -> None:
        names = self._param_names()
        factor = self.prompts.number("Scale gradients", "Multiply .grad by:", 0.5, -1e9, 1e9, 6) \
            if names else None
        if factor is not None:
            self._push(ScaleGradEdit(names, factor))

    def ask_clip(self) -> tuple[float, bool] | None:
        """(max_norm, per_tensor), or None when cancelled."""
        value = self.prompts.number("Clip gradient norm",
                                    "Largest 2-norm (clip_grad_norm_ max_norm):",
                                    1.0, 1e-12, 1e12, 6)
        if value is None:
            return None
        how = self.prompts.choice("Clip gradient norm", "Norm over:",
                                  [ALL_TOGETHER, EACH_TENSOR])
        return (value, how == EACH_TENSOR) if how else None

    def clip_grads(self) -> None:
        names = self._param_names()
        answer = self.ask_clip() if names else None
        if answer is not None:
            self._push(ClipGradEdit(names, answer[0], per_tensor=answer[1]))
