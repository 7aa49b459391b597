"""The GUI start paints a first window before torch is imported, and builds the demo after it."""
import os
import subprocess
import sys

from tests.cli import ROOT

# A fresh process (torch is imported by every other test): record what is imported at the
# first paint of a top-level window, and what the window is, then end the process.
SCRIPT = r"""
import os, sys
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and obj.isWidgetType() and obj.isWindow():
            loaded = [m for m in ("torch", "pyqtgraph", "paramedit.qt.main_window",
                                  "paramedit.core.demo", "paramedit.cli_parser",
                                  "paramedit.cli_commands", "paramedit.core.errors", "ctypes")
                      if m in sys.modules]
            os.write(1, f"{obj.objectName()} {obj.text()!r} {loaded}\n".encode())
            os._exit(0)
        return False
first_paint = FirstPaint()
app.installEventFilter(first_paint)
from app.__main__ import main
main([])
os.write(1, b"no paint\n")
"""


def test_first_paint_is_the_splash_before_torch_is_imported():
    """Nor the command-line parsers, the error classes or ctypes: only what the splash needs."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "splash 'paramedit\\n\\nLoading PyTorch…' []", proc.stdout


def test_splash_closes_when_the_main_window_shows(qtbot, monkeypatch):
    """run_gui: the splash is gone once the main window is up (the event loop is not run)."""
    from argparse import Namespace
    from PySide6.QtWidgets import QApplication
    from app.qt import launch
    from tests.helpers.prompts import FakePrompts
    shown = {}
    before = set(QApplication.topLevelWidgets())  # windows other tests left for deletion

    def fake_exec():
        new = [w for w in QApplication.topLevelWidgets() if w not in before]
        shown["windows"] = sorted(w.objectName() for w in new if w.isVisible())
        for w in new:
            if w.objectName() == "mainWindow":
                shown["title"] = w.windowTitle()
                w.prompts = FakePrompts(save_changes="discard")
                w.close()
        return 0
    monkeypatch.setattr(QApplication, "exec", staticmethod(fake_exec))
    assert launch.run_gui(Namespace(path=None, model=None, model_args=None, trust=False)) == 0
    assert "splash" not in shown["windows"]
    assert "demo model" in shown["title"]
