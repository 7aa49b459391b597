"""The live-model API behind ``app.edit(model)`` and ``app.open_editor(model)``.

The document is the model itself: every edit changes its own tensors in place (same ``Parameter``
objects, same storage), so an optimizer built before the edit steps on the edited values.
Tensors on a GPU stay there: the views read them through small copies to the CPU.
"""
from __future__ import annotations

import sys
import warnings

import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication

from ..core.model.document import Document

_open_windows: list = []  # windows opened from a Python session stay alive until closed


def ensure_app() -> QApplication:
    """The running QApplication (IPython's ``%gui qt`` makes one), or a new one."""
    from .launch import application
    return QApplication.instance() or application()  # IPython's application keeps its name


def open_editor(model, title: str | None = None):
    """Show the editor on ``model`` and return the window at once (IPython / Jupyter: run
    ``%gui qt`` first, so that the window is live while the prompt is; with several Qt bindings
    installed, set ``QT_API=pyside6`` so that IPython runs this one)."""
    _check(model)
    ensure_app()
    _warn_without_event_loop()
    window = _show(model, title)
    # Forget the window once it is closed, but not from inside its own hide event: dropping the
    # last reference there would delete it while Qt is still delivering that event.
    _CloseWatcher(window, lambda w: QTimer.singleShot(0, lambda: _forget(w)))
    return window


def edit(model, title: str | None = None) -> None:
    """Show the editor on ``model`` and return when its window is closed."""
    _check(model)
    ensure_app()
    window = _show(model, title)
    loop = QEventLoop()
    _CloseWatcher(window, lambda _w: loop.quit())
    try:
        if window.isVisible():
            loop.exec()
    finally:
        if window in _open_windows:
            _open_windows.remove(window)
        if shiboken6.isValid(window):  # closed (deleted later), hidden by code, or loop quit
            _drop_history(window)
            window.hide()
            window.deleteLater()
        # No event loop may run after this call: delete the window (and free the model) now.
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def _check(model) -> None:
    import torch
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"the editor opens an nn.Module, not {type(model).__name__} "
                        "(for a checkpoint or state_dict, save it and open the file)")


def _show(model, title: str | None):
    from .main_window import MainWindow
    window = MainWindow()
    # Closed is gone: the window, its undo history (old values, maybe on a GPU) and its hold on
    # the model are freed, even where a Python session keeps a reference to the window.
    window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    # No path: a live model has no file (Save asks where to write a checkpoint).
    window.open_document(Document.from_module(model), title or type(model).__name__)
    window.show()
    window.raise_()
    window.activateWindow()
    _open_windows.append(window)
    _CloseWatcher(window, _drop_history, closes_only=True)
    _RereadOnActivate(window)
    return window


def _drop_history(window) -> None:
    """Empty the undo stack of a closed window while the window still lives: the stack's
    destructor would otherwise report "clean" to slots of the window being deleted (errors),
    and the old values it keeps for undo are freed at once. The model keeps its edits."""
    window.undo_stack.clear()


def _forget(window) -> None:
    if window in _open_windows and (not shiboken6.isValid(window) or not window.isVisible()):
        _open_windows.remove(window)


def _warn_without_event_loop() -> None:
    """In IPython without ``%gui qt`` nothing runs the Qt event loop: the window would freeze."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") \
        else None
    if shell is not None and not getattr(shell, "active_eventloop", None):
        warnings.warn("no Qt event loop is running in this IPython session: run `%gui qt` "
                      "so that the editor responds (or use app.edit(model), which blocks)",
                      RuntimeWarning, stacklevel=4)


class _CloseWatcher(QObject):
    """Calls ``callback(window)`` once the watched window has really closed (a prompt may
    cancel a close) or been hidden. It holds no reference to the window, which can be deleted."""

    def __init__(self, window, callback, closes_only: bool = False):
        super().__init__(window)
        self._callback = callback
        self._closes_only = closes_only  # not for a window merely hidden by code
        self._closing = False
        window.installEventFilter(self)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        kind = event.type()
        if kind == QEvent.Type.Close:
            self._closing = True  # accepted or not: a Hide follows only when it was
        elif kind == QEvent.Type.Show:
            self._closing = False
        elif kind == QEvent.Type.Hide and not obj.isVisible():
            if self._closing or not self._closes_only:
                self._callback(obj)
            self._closing = False
        return False


class _RereadOnActivate(QObject):
    """The model may have changed behind the editor's back (an optimizer step in the notebook):
    when the window becomes active again, the grid, the statistics and the gradient figures read
    the model anew."""

    def __init__(self, window):
        super().__init__(window)
        window.installEventFilter(self)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.WindowActivate:
            flows = getattr(obj, "param_flows", None)
            if flows is not None:
                flows.refresh()  # structure, values and gradients (new .grad objects too)
            elif obj.controller.current_node is not None:
                obj.tensor_view.refresh()
                obj.stats_panel.refresh()
        return False
