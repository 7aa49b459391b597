"""``main.py screenshot``: a real PNG, offscreen. One test runs a real subprocess, the others
``main([...])`` in this process (``tests.cli.run_main``)."""
from __future__ import annotations

import os
import struct
import subprocess
import sys

import torch

from tests.cli import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "screenshot", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=180)


def run_here(*args):
    return run_main("screenshot", *args)


def png_size(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_demo_screenshot(tmp_path):
    """The subprocess smoke test of ``screenshot``."""
    out = tmp_path / "demo.png"
    result = run("-o", str(out))
    assert result.returncode == 0, result.stderr
    assert png_size(out) == (1400, 900)


def test_checkpoint_screenshot_with_selection_and_size(tmp_path, tied_file, qapp):
    out = tmp_path / "tied.png"
    result = run_here(tied_file[0], "-o", str(out), "--select", "body.0.weight", "--size", "1000x700")
    assert result.returncode == 0, result.stderr
    assert png_size(out) == (1000, 700)
    assert os.path.getsize(out) > 10_000


def test_bad_path_exits_2_with_one_error_line(tmp_path, qapp):
    out = tmp_path / "never.png"
    result = run_here(str(tmp_path / "missing.pt"), "-o", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "missing.pt" in lines[0]
    assert not out.exists()


def test_unknown_selection_exits_2(tmp_path, qapp):
    result = run_here("-o", str(tmp_path / "x.png"), "--select", "no.such.tensor")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "no.such.tensor" in lines[0]


def test_corrupt_file_exits_2(tmp_path, corrupt_file, qapp):
    result = run_here(corrupt_file, "-o", str(tmp_path / "x.png"))
    assert result.returncode == 2 and result.stderr.startswith("error:")
    assert torch.__version__  # the tests' own interpreter goes on
