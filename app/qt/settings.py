"""The one place paramedit's QSettings come from (organisation and application "paramedit"),
and what is kept in them between runs: the window layout and the file dialogs' last folder."""
from __future__ import annotations

import os

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


LAST_FOLDER = "dialogs/lastFolder"


def last_folder(fallback: str | None = None) -> str:
    """The folder the last Open / Save As / Compare dialog ended in, while it exists; else
    ``fallback`` (the folder of the most recent file), else the working directory."""
    folder = settings().value(LAST_FOLDER)
    if isinstance(folder, str) and os.path.isdir(folder):
        return folder
    return fallback if fallback and os.path.isdir(fallback) else os.getcwd()


def remember_folder(path: str) -> None:
    """Keep the folder holding ``path`` (a file, or a checkpoint folder) for the next dialog."""
    if path:
        settings().setValue(LAST_FOLDER, os.path.dirname(os.path.abspath(os.path.normpath(path))))
