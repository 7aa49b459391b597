"""Soak: N minutes of random actions in the real window (offscreen) on a real training
checkpoint — select tensors and modules, edit, undo/redo, rename, delete, cast, open again,
save — printing RSS growth and the longest GUI-thread stall (a 5 ms QTimer probe).

Targets: RSS growth after warm-up <= 4x the checkpoint + 64 MiB; longest stall <= 100 ms;
no unexpected error; no old document alive. Prints PASS/FAIL per figure, and per action its
longest stall (wall) and the most GUI-thread CPU between two ticks: on a machine shared with
other work the wall gaps stretch with the scheduler, the CPU ones hardly. ``--explain`` lists the
events handled in the worst stretches (benchmarks/_stall_events.py). Exits 0 (a report).

    python benchmarks/bench_soak.py [--minutes 2 | --steps 400] [--seed 0] [--width 512]
                                    [--explain] [--checkout PATH]
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if "--checkout" in sys.argv:  # another checkout's app under this harness (before / after)
    sys.path.insert(0, os.path.abspath(sys.argv[sys.argv.index("--checkout") + 1]))

from benchmarks._measure import verdict  # noqa: E402
from tests.qt.soak import Soak, StallProbe, rss_mib, soak_checkpoint  # noqa: E402

STALL_TARGET_MS = 100.0


class FullCollections:
    """Python's full (oldest generation) garbage collections: each holds the GIL throughout."""

    def __init__(self):
        self.ms: list[tuple[float, bool]] = []  # (duration, on the GUI thread)
        self._start: dict[int, float] = {}
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        now, me = time.perf_counter(), threading.get_ident()
        if phase == "start":
            self._start[me] = now
        elif me in self._start:
            self.ms.append(((now - self._start.pop(me)) * 1000,
                            threading.current_thread() is threading.main_thread()))

    def report(self) -> str:
        if not self.ms:
            return "0"
        gui = sum(1 for _, on_gui in self.ms if on_gui)
        return (f"{len(self.ms)} ({gui} on the GUI thread), longest "
                f"{max(ms for ms, _ in self.ms):.0f} ms")

    def stop(self) -> None:
        gc.callbacks.remove(self._callback)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=512, help="MLP width: the checkpoint's size")
    ap.add_argument("--steps", type=int, default=0,
                    help="a fixed number of actions instead of --minutes (runs compare alike)")
    ap.add_argument("--explain", action="store_true",
                    help="the events the GUI thread handled in the 5 worst stalls (slower)")
    ap.add_argument("--checkout", help="run another checkout's app (e.g. /work/main)")
    args = ap.parse_args()
    from app.qt.launch import application
    app = application()
    from app.qt.main_window import MainWindow
    from tests.helpers.prompts import FakePrompts
    window = MainWindow(prompts=FakePrompts(save_changes="discard"))
    window.show()
    with tempfile.TemporaryDirectory() as folder:
        path = soak_checkpoint(os.path.join(folder, "train.pt"), width=args.width)
        size = os.path.getsize(path) / 1024 ** 2
        soak = Soak(window, path, folder, seed=args.seed)
        soak.open()
        soak.run(steps=30)
        start_rss, start = rss_mib(), time.monotonic()
        probe = StallProbe()
        soak.probe = probe
        probe.start()
        full_gcs = FullCollections()
        events = None
        if args.explain:
            from benchmarks._stall_events import EventLog
            events = EventLog(probe)
            app.installEventFilter(events)
            soak.before_action, soak.after_action = (lambda name: events.begin()), events.end
        if args.steps:
            soak.run(steps=args.steps)
        else:
            soak.run(seconds=args.minutes * 60)
        probe.stop()
        full_gcs.stop()
        if events is not None:
            app.removeEventFilter(events)
        for _ in range(3):
            soak.reopen()
        growth = rss_mib() - start_rss
        leaked = soak.leaked_documents()
        steps = sum(soak.counts.values())
        print(f"checkpoint {size:.1f} MiB, {steps} actions in {time.monotonic() - start:.0f} s: "
              f"{soak.counts}")
        print(f"RSS {start_rss:.0f} -> {start_rss + growth:.0f} MiB (+{growth:.0f}; target <= "
              f"{4 * size + 64:.0f}): {verdict(growth <= 4 * size + 64)}")
        print(f"longest GUI stall {probe.longest_ms:.0f} ms, during {soak.stall_action} (target <= "
              f"{STALL_TARGET_MS:.0f}): {verdict(probe.longest_ms <= STALL_TARGET_MS)}")
        seconds, name = soak.slowest
        print(f"  slowest action called on the GUI thread: {name} {seconds * 1000:.0f} ms "
              "(save and reopen wait in an event loop: their stalls are the probe's)")
        print("stall per action (ms): action | runs | median | max | GUI CPU median | max")
        for action, stalls in sorted(soak.stalls.items(), key=lambda kv: -max(kv[1])):
            cpu = soak.cpu_stalls[action]
            print(f"  {action:14} | {len(stalls):4} | {statistics.median(stalls):6.0f} | "
                  f"{max(stalls):6.0f} | {statistics.median(cpu):6.0f} | {max(cpu):6.0f}")
        if events is not None:
            print("the longest stretches without a tick:")
            print(events.report())
        print(f"full garbage collections during the run: {full_gcs.report()}")
        print(f"unexpected errors {len(soak.errors)}: {verdict(not soak.errors)}")
        for line in soak.errors[:5]:
            print("  ", line)
        print(f"old documents alive {leaked}: {verdict(leaked == 0)}")
        window.controller.undo_stack.setClean()
        window.close()
    del app


if __name__ == "__main__":
    main()
