"""A translucent frame over the window while a file that will be accepted is dragged over it."""
from __future__ import annotations

import os

from PySide6.QtCore import QEvent, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget


class DropOverlay(QWidget):
    """``show_for(path)`` covers the parent with a highlighted frame saying "Drop to open <file>";
    ``hide()`` clears it. It takes no mouse or drag events: the window underneath still gets
    them."""

    def __init__(self, parent: QWidget):
        super().__init__(parent, objectName="dropOverlay")
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.setFocusPolicy(Qt.NoFocus)
        self.text = ""
        parent.installEventFilter(self)
        self.hide()

    def show_for(self, path: str) -> None:
        self.text = f"Drop to open {os.path.basename(path.rstrip(os.sep)) or path}"
        self.setGeometry(self.parentWidget().rect())
        self.raise_()
        self.show()
        self.update()

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if obj is self.parentWidget() and event.type() == QEvent.Resize and self.isVisible():
            self.setGeometry(obj.rect())
        return False

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        accent = self.palette().highlight().color()
        fill = QColor(accent)
        fill.setAlpha(40)
        rect = QRectF(self.rect()).adjusted(4, 4, -4, -4)
        painter.setBrush(fill)
        painter.setPen(QPen(accent, 3, Qt.DashLine))
        painter.drawRoundedRect(rect, 10, 10)
        font = painter.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        painter.setFont(font)
        label = painter.fontMetrics().boundingRect(self.text).adjusted(-16, -10, 16, 10)
        label.moveCenter(self.rect().center())
        painter.setPen(Qt.NoPen)
        painter.setBrush(accent)
        painter.drawRoundedRect(label, 8, 8)
        painter.setPen(self.palette().highlightedText().color())
        painter.drawText(label, Qt.AlignCenter, self.text)
