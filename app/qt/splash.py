"""The first window of a GUI start: shown and painted before torch and the editor are imported.

Importing torch, pyqtgraph and the main window takes seconds; this window appears about as fast
as any PySide6 window can, says what is happening, and closes when the main window is shown.
It touches nothing but QtWidgets: even PySide6's ``Qt`` namespace costs ~25 ms to set up, so
alignment and colours come from a style sheet, and the text is plain (rich text costs more).
"""
from __future__ import annotations

from PySide6.QtWidgets import QApplication, QLabel

_STYLE = ("QLabel#splash { background: #2b3a4a; color: #e8eef4; font-size: 13pt; "
          "padding: 18px; qproperty-alignment: AlignCenter; }")


class Splash(QLabel):
    """A small window with the name and one line of what is loading.

    Parameters
    ----------
    message : str
        The line under the name, e.g. "Loading PyTorch…".
    """

    def __init__(self, message: str):
        super().__init__()
        self.setObjectName("splash")
        self.setWindowTitle("paramedit")
        self.setStyleSheet(_STYLE)
        self.set_message(message)
        self.resize(380, 150)

    def set_message(self, message: str) -> None:
        self.setText(f"paramedit\n\n{message}")

    def show_now(self) -> None:
        """Show and paint at once: the caller is about to block on imports."""
        screen = QApplication.primaryScreen()
        if screen is not None:
            self.move(screen.availableGeometry().center() - self.rect().center())
        self.show()
        self.repaint()
        QApplication.processEvents()
