"""A one-line label that elides its text to its width instead of widening its parent."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as GuiQt, QTextDocumentFragment
from PySide6.QtWidgets import QLabel, QSizePolicy


class ElidedLabel(QLabel):
    """``setText`` keeps the full text (``full_text``, also the tooltip when cut); what is drawn
    is elided in the middle, so both the start and the end of a dotted name stay readable."""

    def __init__(self, text: str = "", parent=None, objectName: str = ""):
        super().__init__(parent, objectName=objectName)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.setMinimumWidth(40)
        self.setTextFormat(Qt.PlainText)
        self.full_text = ""
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        if GuiQt.mightBeRichText(text):  # "<b>name</b> &nbsp; (...)": shown as its plain text
            text = QTextDocumentFragment.fromHtml(text).toPlainText()
        self.full_text = text
        self._elide()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self.full_text, Qt.ElideMiddle, max(self.width(), 40))
        super().setText(shown)
        self.setToolTip(self.full_text if shown != self.full_text else "")
