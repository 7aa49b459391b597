"""The one rule: app.core never imports PySide6, pyqtgraph or app.qt; and the core's layers
(pyproject's import-linter contracts) hold."""
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
             or m.split(".")[:2] in (["app", "qt"], ["paramedit", "qt"]))
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


def _lint(*args):
    code = "import sys; from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True)


def test_import_contracts_hold():
    out = _lint()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_import_contracts_can_fail(tmp_path):
    """The linter really reads the code: a layering that the readers break (they build the
    model's Document, so model cannot sit above formats) is reported broken."""
    config = tmp_path / "contracts.ini"
    config.write_text("[importlinter]\nroot_package = paramedit\n\n"
                      "[importlinter:contract:upside-down]\nname = upside down\ntype = layers\n"
                      "layers =\n    paramedit.core.model\n    paramedit.core.formats\n")
    out = _lint("--config", str(config))
    assert out.returncode == 1 and "BROKEN" in out.stdout, out.stdout + out.stderr
