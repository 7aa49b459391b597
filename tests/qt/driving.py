"""Driving dialogs like a user in pytest-qt tests: find widgets by objectName, retype fields,
pick combo items, press OK."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QLabel, QLineEdit


def child(dialog, cls, name):
    found = dialog.findChild(cls, name)
    assert found is not None, f"no {cls.__name__} named {name!r}"
    return found


def retype(qtbot, line: QLineEdit, text: str) -> None:
    line.setFocus()
    line.selectAll()
    qtbot.keyClick(line, Qt.Key_Backspace)
    qtbot.keyClicks(line, text)


def pick(combo: QComboBox, text: str) -> None:
    i = combo.findText(text)
    assert i >= 0, f"{combo.objectName()} has no item {text!r}"
    combo.setCurrentIndex(i)


def ok_button(dialog):
    box = getattr(dialog, "button_box", None) or dialog.buttons
    return box.button(QDialogButtonBox.Ok)


def click_ok(qtbot, dialog) -> None:
    """Press OK once the dialog's (debounced) validation enables it; fail with its error text."""
    button = ok_button(dialog)
    try:
        qtbot.waitUntil(button.isEnabled, timeout=2000)
    except Exception:
        label = dialog.findChild(QLabel, "errorLabel")
        raise AssertionError(f"OK stays disabled: {label.text() if label else '?'}") from None
    qtbot.mouseClick(button, Qt.LeftButton)
    if getattr(dialog, "busy", False):  # the edit dialog applies on a worker thread
        qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)


def open_dialog(qtbot, window, action, name):
    action.trigger()
    dialog = window.edit_flows.dialog
    assert isinstance(dialog, QDialog) and dialog.objectName() == name
    assert window.findChild(QDialog, name) is dialog  # never a closed one from before
    assert window.findChildren(QDialog, name) == [dialog]
    qtbot.waitUntil(dialog.isVisible)
    return dialog


class PoolBlocked:
    """Occupies every thread of the global pool, so that a task the dialog starts waits in the
    queue until ``release()``: Stop / Cancel are then pressed at a known point, without timing."""

    def __init__(self):
        import threading
        from PySide6.QtCore import QThreadPool
        from app.qt.workers import Task
        self.event = threading.Event()
        self.started = threading.Semaphore(0)
        pool = QThreadPool.globalInstance()

        def block(_progress, _cancelled):
            self.started.release()
            self.event.wait(30)
        self.tasks = [Task(block).start() for _ in range(pool.maxThreadCount())]
        for _ in self.tasks:
            assert self.started.acquire(timeout=30)

    def release(self):
        self.event.set()
