"""The live-model API behind ``app.edit(model)`` and ``app.open_editor(model)``."""
from __future__ import annotations

import sys

from PySide6.QtCore import QEvent, QEventLoop, QObject
from PySide6.QtWidgets import QApplication

from app.core.document import Document

_open_windows: list = []  # windows opened from a Python session stay alive until closed


def ensure_app() -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1] or ["paramedit"])
        app.setApplicationName("paramedit")
        app.setOrganizationName("paramedit")
    return app


def open_editor(model, title: str | None = None):
    """Show the editor on ``model`` and return the window at once (Jupyter: ``%gui qt`` first).

    The document is the model itself: every edit changes its own tensors in place.
    """
    ensure_app()
    from app.qt.main_window import MainWindow
    window = MainWindow()
    window.open_document(Document.from_module(model, path=title or type(model).__name__))
    window.show()
    window.raise_()
    _open_windows.append(window)
    _CloseWatcher(window, lambda: _forget(window))
    return window


def edit(model, title: str | None = None) -> None:
    """Show the editor on ``model`` and return when its window is closed."""
    ensure_app()
    window = open_editor(model, title)
    loop = QEventLoop()
    _CloseWatcher(window, loop.quit)
    if window.isVisible():
        loop.exec()


def _forget(window) -> None:
    if window in _open_windows:
        _open_windows.remove(window)


class _CloseWatcher(QObject):
    """Calls ``callback`` once the watched window has really closed (a prompt may cancel it)."""

    def __init__(self, window, callback):
        super().__init__(window)
        self._callback = callback
        window.installEventFilter(self)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Hide and not obj.isVisible():
            self._callback()
        return False
