"""Opening beyond the plain file: trusting a pickle that imports code, loading a state_dict into
model code, and telling the user what such a load did not match."""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMessageBox

from .dialogs.model_code_dialog import ModelCodeDialog
from .dialogs.trust_dialog import trust_dialog


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


class OpenFlows(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.dialog: ModelCodeDialog | None = None
        self.trust_box: QMessageBox | None = None
        self.report_box: QMessageBox | None = None
        self.actionOpenWithModel = QAction("Open with &Model Code…", window)
        self.actionOpenWithModel.setObjectName("actionOpenWithModel")
        self.actionOpenWithModel.triggered.connect(self.choose_model_code)
        window.controller.documentChanged.connect(self._on_document)

    # -- trust --------------------------------------------------------------------------------
    def offer_trust(self, path: str, globals_: list[str]) -> QMessageBox:
        """Instead of a plain error: what the file would import, and a way to load it anyway."""
        if self.trust_box is not None:
            self.trust_box.close()
        box = trust_dialog(self.window, path, globals_)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.buttonClicked.connect(lambda button: self._trust_answer(box, button, path))
        box.finished.connect(lambda _=0: setattr(self, "trust_box", None))
        self.trust_box = box
        box.open()
        return box

    def _trust_answer(self, box, button, path: str) -> None:
        if button is box.trust_button:
            self.window.controller.load(path, trust=True)  # discarding was confirmed already

    # -- model code ---------------------------------------------------------------------------
    def choose_model_code(self) -> ModelCodeDialog:
        doc = self.window.controller.document
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
        self.window.tree_model.reset_marks(report_notes(report))
        if not report or not any(report.get(k) for k in ("missing", "unexpected", "mismatched")):
            return
        from ..core.loading.model_code import describe_report
        lines = describe_report(report)
        self.window.statusBar().showMessage("Loaded into model code: " + "; ".join(lines[:2]), 15000)
        if self.report_box is not None:
            self.report_box.close()
        box = QMessageBox(QMessageBox.Information, "Checkpoint and model differ",
                          "The checkpoint does not match the model exactly. The affected tensors "
                          "are marked in the tree.", QMessageBox.Ok, self.window)
        box.setObjectName("loadReportBox")
        box.setDetailedText("\n".join(lines))
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.finished.connect(lambda _=0: setattr(self, "report_box", None))
        self.report_box = box
        box.open()
