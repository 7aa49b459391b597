"""The one place paramedit's QSettings come from (organisation and application "paramedit"),
and the window layout kept in them between runs."""
from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings

GEOMETRY, STATE = "window/geometry", "window/state"


def settings() -> QSettings:
    return QSettings("paramedit", "paramedit")


def save_layout(window) -> None:
    """Window geometry and dock layout, written when the window closes."""
    s = settings()
    s.setValue(GEOMETRY, window.saveGeometry())
    s.setValue(STATE, window.saveState())


def restore_layout(window) -> bool:
    """Geometry and docks as the user left them; False when nothing was kept."""
    s = settings()
    geometry, state = s.value(GEOMETRY), s.value(STATE)
    restored = False
    if isinstance(geometry, (QByteArray, bytes)) and geometry:
        restored = window.restoreGeometry(QByteArray(geometry))
    if isinstance(state, (QByteArray, bytes)) and state:
        restored = window.restoreState(QByteArray(state)) or restored
    return restored
