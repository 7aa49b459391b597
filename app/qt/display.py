"""Say in words why no window can open, before Qt aborts the process on a missing display."""
from __future__ import annotations

import os
import sys

#: libraries Qt's xcb platform plugin needs on Linux beyond what PySide6's wheel carries
XCB_LIBRARIES = {"xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4",
                 "xcb-keysyms": "libxcb-keysyms1", "xkbcommon-x11": "libxkbcommon-x11-0"}
#: the sonames Qt 6 loads (dlopen of these is ~1 ms; ctypes.util.find_library runs ldconfig)
_SONAMES = {"xcb-cursor": "libxcb-cursor.so.0", "xcb-icccm": "libxcb-icccm.so.4",
            "xcb-keysyms": "libxcb-keysyms.so.1", "xkbcommon-x11": "libxkbcommon-x11.so.0"}

HEADLESS_HINT = ("headless commands need no display: paramedit inspect / apply / diff / screenshot; "
                 "or set QT_QPA_PLATFORM=offscreen")


def display_problem(environ=os.environ, platform: str = sys.platform) -> str | None:
    """None when a window can open here; otherwise one sentence saying what to do."""
    if not platform.startswith("linux"):
        return None
    qpa = environ.get("QT_QPA_PLATFORM", "")
    if qpa and not qpa.startswith("xcb"):
        return None  # offscreen, wayland, vnc, ...: the user chose; Qt reports its own problems
    if not qpa and environ.get("WAYLAND_DISPLAY"):
        return None
    if not environ.get("DISPLAY"):
        return ("no display: DISPLAY is not set, so no window can open (log in to a desktop, or "
                f"use ssh -X); {HEADLESS_HINT}")
    missing = [pkg for lib, pkg in XCB_LIBRARIES.items() if not _loadable(lib, environ)]
    if missing:
        return (f"Qt needs system libraries that are missing: {' '.join(missing)} "
                f"(Debian/Ubuntu: apt-get install {' '.join(missing)}); {HEADLESS_HINT}")
    return None


def _loadable(lib: str, environ=os.environ) -> bool:
    """Whether the dynamic loader finds ``lib``: its soname in a usual library folder (a few stat
    calls: importing ctypes would delay the first paint), else what dlopen and ldconfig say."""
    soname = _SONAMES[lib]
    if any(os.path.exists(os.path.join(folder, soname)) for folder in _library_folders(environ)):
        return True
    import ctypes
    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        from ctypes.util import find_library  # another soname, or one found only by its name
        return find_library(lib) is not None


def _library_folders(environ) -> list[str]:
    """LD_LIBRARY_PATH, then where Debian (multiarch), Fedora and Arch (lib64) keep this machine's
    libraries; not /usr/lib, which holds 32-bit ones on Fedora: those are left to dlopen."""
    multiarch = getattr(sys.implementation, "_multiarch", "")
    folders = [f for f in environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if f]
    if multiarch:
        folders += [f"/usr/lib/{multiarch}", f"/lib/{multiarch}"]
    return folders + ["/usr/lib64", "/lib64"]
