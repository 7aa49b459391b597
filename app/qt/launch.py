"""Start the GUI: ``main.py [PATH]`` (CONTRACT.md section 1)."""
from __future__ import annotations

import os
import sys

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

APP_NAME = ORGANIZATION = "paramedit"


def application() -> QApplication:
    """The running QApplication, created (and named, for QSettings) if there is none."""
    app = QApplication.instance() or QApplication(sys.argv[:1] or [APP_NAME])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORGANIZATION)
    from .models.tree_model import RESOURCES
    app.setWindowIcon(QIcon(os.path.join(RESOURCES, "paramedit.svg")))
    return app


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
    from ..core.errors import UserError
    from .display import display_problem
    problem = display_problem()
    if problem:
        raise UserError(problem)
    app = application()
    window = build_window(args)
    window.show()
    return app.exec()
