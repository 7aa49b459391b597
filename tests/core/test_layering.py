"""The one rule: app.core never imports PySide6, pyqtgraph or app.qt."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import importlib, pkgutil, sys
import app.core
names = [m.name for m in pkgutil.walk_packages(app.core.__path__, "app.core.")]
for name in names:
    importlib.import_module(name)
bad = sorted(m for m in sys.modules
             if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph", "PyQt5", "PyQt6")
             or m == "app.qt" or m.startswith("app.qt."))
print(len(names))
print(",".join(bad))
"""


def test_core_imports_no_qt():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert int(out[0]) >= 10, "the probe found too few core modules to mean anything"
    assert out[1] == "", f"app.core loaded Qt modules: {out[1]}"


def test_probe_detects_qt(tmp_path):
    """The probe's own check can fail: importing a Qt module is seen."""
    out = subprocess.run([sys.executable, "-c", "import app.qt.workers\n" + PROBE], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert "PySide6" in out[1]
