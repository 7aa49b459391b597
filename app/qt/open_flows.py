"""Opening beyond the plain file: trusting a pickle that imports code, loading a state_dict into
model code, and telling the user what such a load did not match."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMessageBox

from .dialogs.model_code_dialog import ModelCodeDialog
from .window_views import Presenter, Views


def report_notes(report: dict | None) -> dict[str, str]:
    """Per-tensor warnings for the tree from a model-code load report."""
    if not report:
        return {}
    notes = {n: "Missing from the checkpoint: keeps the model's initial values."
             for n in report.get("missing", [])}
    for name, shapes in (report.get("mismatched") or {}).items():
        notes[name] = (f"Shape mismatch: the checkpoint has {list(shapes['file'])}, the model "
                       f"{list(shapes['model'])}; the model's values were kept.")
    for name in report.get("unexpected", []):
        notes[name] = "Unexpected: in the checkpoint but not in the model."
    return notes


class OpenFlows(Presenter):
    """Trusting a pickle, opening with model code, reporting what model code did not match.

    Parameters
    ----------
    views
        The window's views (``window_views.Views``): ``views.tree`` (the marks it sets);
        ``views.window``: ``open_path``, the dialogs' parent.
    controller
        The document and loading.
    prompts
        The trust question and the report box.
    status
        ``status(text, timeout_ms)``: a transient message.
    """

    def __init__(self, views: Views, *, controller, prompts, status):
        super().__init__(views, controller=controller, prompts=prompts, status=status)
        self.dialog: ModelCodeDialog | None = None
        self.trust_box: QMessageBox | None = None
        self.report_box: QMessageBox | None = None
        self.actionOpenWithModel = QAction("Open with &Model Code…", self.window)
        self.actionOpenWithModel.setObjectName("actionOpenWithModel")
        self.actionOpenWithModel.triggered.connect(self.choose_model_code)
        controller.documentChanged.connect(self._on_document)

    # -- trust --------------------------------------------------------------------------------
    def offer_trust(self, path: str, globals_: list[str]) -> QMessageBox:
        """Instead of a plain error: what the file would import, and a way to load it anyway."""
        if self.trust_box is not None:
            self.trust_box.close()
        # discarding was confirmed already
        box = self.prompts.trust(path, globals_, lambda: self.controller.load(path, trust=True))
        if box is not None:  # a scripted answer has no box
            box.finished.connect(lambda _=0: setattr(self, "trust_box", None))
            self.trust_box = box
        return box

    # -- model code ---------------------------------------------------------------------------
    def choose_model_code(self) -> ModelCodeDialog:
        doc = self.controller.document
        dialog = ModelCodeDialog(self.window, path=(doc.path or "") if doc is not None else "")
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._open_with_model(dialog))
        dialog.finished.connect(lambda _=0: setattr(self, "dialog", None))
        self.dialog = dialog
        dialog.open()
        return dialog

    def _open_with_model(self, dialog: ModelCodeDialog) -> None:
        path, factory, args = dialog.values()
        self.window.open_path(path, model=factory, model_args=args)

    def _on_document(self, doc) -> None:
        report = getattr(doc, "load_report", None)
        self.views.tree.model.reset_marks(report_notes(report))
        if not report or not any(report.get(k) for k in ("missing", "unexpected", "mismatched")):
            return
        from ..core.loading.model_code import describe_report
        lines = describe_report(report)
        self.status("Loaded into model code: " + "; ".join(lines[:2]), 15000)
        if self.report_box is not None:
            self.report_box.close()
        box = self.prompts.error("Checkpoint and model differ",
                                 "The checkpoint does not match the model exactly. The affected "
                                 "tensors are marked in the tree.", "loadReportBox",
                                 details="\n".join(lines), icon=QMessageBox.Information)
        box.finished.connect(lambda _=0: setattr(self, "report_box", None))
        self.report_box = box
