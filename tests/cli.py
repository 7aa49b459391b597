"""Running the command line in tests.

``run_main`` calls ``app.__main__.main`` in this process (fast: no interpreter start, no
re-import of torch); ``run_main_process`` runs ``main.py`` in a fresh process as a user would,
kept for one smoke test per command. Both return a ``CompletedProcess`` (returncode, stdout,
stderr).
"""
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_main_process(*args, cwd=ROOT, env=None, timeout=120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def _environment(env: dict | None, cwd):
    """``env`` (its PYTHONPATH goes on ``sys.path``) and ``cwd`` for the call, restored after."""
    env = dict(env or {})
    paths = [p for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p]
    saved = {k: os.environ.get(k) for k in env}
    old_path, old_cwd = list(sys.path), os.getcwd()
    os.environ.update(env)
    sys.path[:0] = paths
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_main(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    """``main([...])`` in this process, with its output and exit status as a process gives them."""
    from app.__main__ import main
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with _environment(env, cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help, or a usage error
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def assert_one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]
