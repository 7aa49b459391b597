"""Without a display the window refuses in one line instead of letting Qt abort the process."""
import os
import subprocess
import sys
from pathlib import Path

from app.qt.display import XCB_LIBRARIES, display_problem

ROOT = Path(__file__).resolve().parents[2]


def test_no_display_on_linux_is_explained():
    problem = display_problem({"QT_QPA_PLATFORM": ""}, "linux")
    assert "DISPLAY is not set" in problem and "inspect" in problem


def test_offscreen_wayland_and_other_systems_are_left_to_qt():
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({}, "darwin") is None
    assert display_problem({}, "win32") is None


def test_missing_xcb_libraries_are_named(monkeypatch):
    import ctypes.util
    from app.qt import display
    # a library the loader cannot find, by its soname or by its name; every other one is found
    # (by name), whatever this machine has installed
    monkeypatch.setitem(display._SONAMES, "xcb-cursor", "libxcb-cursor-not-here.so.0")
    for lib in display._SONAMES:
        if lib != "xcb-cursor":
            monkeypatch.setitem(display._SONAMES, lib, "libc.so.6")
    monkeypatch.setattr(ctypes.util, "find_library", lambda n: None if n == "xcb-cursor" else n)
    problem = display_problem({"DISPLAY": ":99"}, "linux")
    assert XCB_LIBRARIES["xcb-cursor"] in problem and "apt-get install" in problem
    assert "xcb-icccm" not in problem  # the ones that load are not named


def test_the_gui_without_a_display_exits_2_with_one_line():
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no display"), proc.stderr


def test_xcb_libraries_in_a_library_folder_are_found_without_importing_ctypes(tmp_path):
    """Importing ctypes (to dlopen them) would delay the splash's first paint (issue 15)."""
    from app.qt import display
    for soname in display._SONAMES.values():
        (tmp_path / soname).write_bytes(b"")
    code = ("import sys\nfrom app.qt.display import display_problem\n"
            f"environ = {{'DISPLAY': ':99', 'LD_LIBRARY_PATH': {str(tmp_path)!r}}}\n"
            "print(display_problem(environ, 'linux'), 'ctypes' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.split() == ["None", "False"], proc.stderr
