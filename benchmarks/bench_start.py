"""Time to the first painted window of ``main.py`` (the demo) vs a minimal PySide6 window.

Each start runs in a fresh process; the time is from just before the process starts to the
first Paint event of a top-level window (an event filter installed on the QApplication prints
a line and ends the process there). Three cases:

- ours: ``main.py`` with no path (the splash is its first window; the demo model comes later)
- floor: a bare QWidget, nothing else imported
- torch + window: ``import torch, pyqtgraph`` then the same bare QWidget (where a window that
  waits for torch would be)

    .venv/bin/python benchmarks/bench_start.py [--rounds 7]

Target: ours <= 1.1x the floor (and well under torch + window). Uses $DISPLAY with xcb when
set, else the offscreen platform.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._measure import ROOT, verdict  # noqa: E402

TARGET = 1.1

PRELUDE = r"""
import os, sys
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and obj.isWidgetType() and obj.isWindow():
            os.write(1, b"painted\n")
            os._exit(0)
        return False
first_paint = FirstPaint()
app.installEventFilter(first_paint)
"""

BARE = "from PySide6.QtWidgets import QWidget\nw = QWidget(); w.resize(400, 300); w.show()\napp.exec()\n"

CASES = {
    "ours (main.py, demo)": PRELUDE + "from app.__main__ import main\nmain([])\n",
    "floor: PySide6 window": PRELUDE + BARE,
    "import torch + window": PRELUDE + "import torch, pyqtgraph\n" + BARE,
}


def first_paint(script: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) from process start to the first painted window."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline()
    wall = time.perf_counter() - t0
    if line.strip() != b"painted":
        proc.kill()
        raise RuntimeError("the child ended without painting a window")
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in CASES}
    for script in CASES.values():  # warm the page cache (and .pyc files) for every case alike
        first_paint(script)
    labels = list(CASES)
    for r in range(args.rounds):
        # interleaved, so that all cases see the same machine load; rotated, so that no case
        # always runs just after torch's (which leaves the CPU caches cold for the next one)
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            results[label].append(first_paint(CASES[label]))
    med = {k: (statistics.median(w for w, _c in v), statistics.median(c for _w, c in v))
           for k, v in results.items()}
    floor_wall, floor_cpu = med["floor: PySide6 window"]
    print(f"first paint, {args.rounds} rounds, median (CPU = user + system of the process)")
    print(f"{'case':<24} | {'wall':>7} | {'CPU':>7} | ratio wall / CPU to the floor")
    for label, (wall, cpu) in med.items():
        print(f"{label:<24} | {wall:6.3f}s | {cpu:6.3f}s | {wall / floor_wall:5.3f} / "
              f"{cpu / floor_cpu:5.3f}")
    ours_wall, ours_cpu = med["ours (main.py, demo)"]
    ok = ours_cpu / floor_cpu <= TARGET and ours_cpu < med["import torch + window"][1]
    print(f"target: ours <= {TARGET}x the floor (CPU) and under torch + window: {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
