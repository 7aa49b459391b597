"""The installable package: import name ``paramedit``, never a top-level ``app`` in site-packages."""
import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_source_package_is_installed_under_paramedit():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = {"paramedit" + ("." + ".".join(p.parent.relative_to(ROOT / "app").parts)
                            if p.parent != ROOT / "app" else "")
             for p in (ROOT / "app").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject's packages: {sorted(found - listed)}"
    assert not any(name == "app" or name.startswith("app.") for name in listed)


def test_import_app_in_the_checkout_is_the_paramedit_package():
    code = ("import app, paramedit\n"
            "import app.core.model.document, paramedit.core.errors\n"
            "from app.core.errors import UserError\n"
            "assert app is paramedit\n"
            "assert app.core.model.document is paramedit.core.model.document\n"
            "assert UserError is paramedit.core.errors.UserError\n"
            "assert paramedit.core.model.document.__name__ == 'paramedit.core.model.document'\n"
            "print(paramedit.__version__)\n")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == __import__("app").__version__


def test_a_module_reached_as_app_keeps_its_own_spec():
    """``import app.x`` must not leave ``paramedit.x`` with the alias's spec: its relative imports
    would then warn (``__package__ != __spec__.parent``), an error under ``-W error``."""
    code = ("import warnings; warnings.simplefilter('error')\n"
            "import app.qt.main_window as m\n"
            "assert m.__spec__.name == 'paramedit.qt.main_window', m.__spec__.name\n"
            "from app.qt.main_window import MainWindow\n"
            "from importlib import import_module\n"
            "import_module('.param_flows', m.__package__)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("name", ["app", "paramedit"])
def test_python_dash_m_runs_the_command_line_in_the_checkout(name):
    out = subprocess.run([sys.executable, "-m", name, "--version"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"paramedit {__import__('app').__version__}"


def test_version_flag_prints_the_one_version(capsys):
    import app
    from app.__main__ import main
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"paramedit {app.__version__}"


def _run(*args, cwd=None):
    out = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                         env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_wheel_installs_beside_a_project_that_ships_app(tmp_path):
    """pip must not overwrite (or later uninstall) another distribution's ``app/__init__.py``."""
    other = tmp_path / "other"
    (other / "app").mkdir(parents=True)
    (other / "app" / "__init__.py").write_text("OWNER = 'other'\n")
    (other / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "other-webapp"\nversion = "1.0"\n'
        '[tool.setuptools]\npackages = ["app"]\n')
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", wheels, ROOT, other)
    ours = next(wheels.glob("paramedit-*.whl"))
    names = zipfile.ZipFile(ours).namelist()
    assert not any(n.startswith("app/") for n in names)
    assert "paramedit/resources/paramedit.svg" in names

    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    _run(py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", next(wheels.glob("other*.whl")))
    _run(py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", ours)
    check = "import app, paramedit; print(app.OWNER, paramedit.__version__)"
    assert _run(py, "-c", check, cwd=tmp_path).split() == ["other", __import__("app").__version__]
    _run(py, "-m", "pip", "uninstall", "-q", "-y", "paramedit")
    assert _run(py, "-c", "import app; print(app.OWNER)", cwd=tmp_path).strip() == "other"
