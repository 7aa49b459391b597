"""Start the GUI: ``main.py [PATH]`` (CONTRACT.md section 1).

Only QtWidgets is imported at module level: ``run_gui`` paints a splash window first, then
imports torch and the main window (seconds), then builds the document.
"""
from __future__ import annotations

import os
import sys

from PySide6.QtWidgets import QApplication

APP_NAME = ORGANIZATION = "paramedit"


def application(icon: bool = True) -> QApplication:
    """The running QApplication, created (and named, for QSettings) if there is none.

    ``icon=False`` leaves the window icon for later (loading the SVG plugin delays a first paint).
    """
    app = QApplication.instance() or QApplication(sys.argv[:1] or [APP_NAME])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORGANIZATION)
    if icon:
        set_icon(app)
    return app


def set_icon(app: QApplication) -> None:
    from PySide6.QtGui import QIcon  # after the splash's first paint: its type costs a start
    from .icons import resource_dir  # not the tree model's: that one imports torch
    app.setWindowIcon(QIcon(os.path.join(resource_dir(), "paramedit.svg")))


def build_window(args):
    """A main window opening ``args.path`` in the background, or the demo model at once."""
    from .main_window import MainWindow
    from .settings import restore_layout
    window = MainWindow()
    restore_layout(window)  # geometry and docks as the user left them
    if getattr(args, "path", None):
        window.open_path(args.path, model=getattr(args, "model", None),
                         model_args=getattr(args, "model_args", None),
                         trust=bool(getattr(args, "trust", False)))
    else:
        window.open_document(demo_document(), "demo model")
    return window


def demo_document():
    from ..core.demo import demo_model
    from ..core.model.document import Document
    return Document.from_module(demo_model())


def run_gui(args) -> int:
    from .display import display_problem
    problem = display_problem()
    if problem:
        from ..core.errors import UserError
        raise UserError(problem)
    app = application(icon=False)
    from .splash import Splash
    splash = Splash("Loading PyTorch…")
    splash.show_now()  # painted before torch is imported; the demo model is built after
    set_icon(app)
    from . import main_window  # noqa: F401 - torch, pyqtgraph, the editor: what the splash covers
    path = getattr(args, "path", None)
    splash.set_message(f"Opening {os.path.basename(path.rstrip(os.sep)) or path}…" if path
                       else "Building the demo model…")
    splash.repaint()
    window = build_window(args)
    window.show()
    splash.close()
    splash.deleteLater()
    return app.exec()
