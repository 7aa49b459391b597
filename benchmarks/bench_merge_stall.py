"""The longest GUI-thread stall of Transplant from Reference and Interpolate on a compared
document, offscreen, in one run: with big steps on a worker (``EditStack.submit``, ours) and, as
before, on the GUI thread (``background_bytes`` out of reach). A 5 ms QTimer probe measures the
stall from the gesture until the step is recorded (and its undo likewise); medians of 3 rounds.
Target: <= 50 ms (the ratio says how much of the old stall is left).

    python benchmarks/bench_merge_stall.py [--mb 200]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from benchmarks._measure import verdict  # noqa: E402
from benchmarks.bench_gui import _stall_during  # noqa: E402

TARGET_MS = 50.0
REPEATS = 3


def wait(app, done, limit=60.0) -> None:
    import time
    end = time.perf_counter() + limit
    while not done() and time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)


def bench(app, mb: int, folder: str) -> dict[str, dict[str, list[float]]]:
    from safetensors.torch import save_file

    from app.core.model.document import Document
    from app.qt.main_window import MainWindow
    side = int((mb * 2 ** 20 / 4 / 4) ** 0.5)
    ref = os.path.join(folder, "ref.safetensors")
    save_file({f"layer{i}.weight": torch.full((side, side), 3.0) for i in range(4)}, ref)
    results: dict[str, dict[str, list[float]]] = {}
    for mode in ("ours", "before"):
        win = MainWindow()
        win.resize(1400, 900)
        win.show()
        doc = Document.from_object({f"layer{i}.weight": torch.ones(side, side) for i in range(4)})
        win.open_document(doc, "bench.pt")
        flows, edits = win.compare_flows, win.controller.edits
        win.compare_with(ref)
        wait(app, lambda: flows.result is not None)
        win.controller.select_node(None)  # no selection: transplant everything
        app.processEvents()
        if mode == "before":
            edits.background_bytes = 1 << 62  # every step on the GUI thread, as before
        gestures = [("transplant 4 tensors", flows.transplant_selection),
                    ("undo the transplant", edits.stack.undo),
                    ("interpolate t = 0.5", lambda: flows.interpolate(0.5)),
                    ("undo the interpolation", edits.stack.undo)]
        for _ in range(REPEATS):
            for name, gesture in gestures:
                results.setdefault(name, {}).setdefault(mode, []).append(
                    _stall_during(app, gesture, edits))
        assert float(doc.tensor("layer0.weight")[0, 0]) == 1.0  # every round undone
        win.controller.undo_stack.setClean()
        win.close()
        win.deleteLater()
        del doc, win, edits
        app.processEvents()
    os.remove(ref)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200, help="document size (and the reference's)")
    args = ap.parse_args()
    app = QApplication.instance() or QApplication(sys.argv)
    with tempfile.TemporaryDirectory() as folder:
        results = bench(app, args.mb, folder)
    print(f"GUI-thread stall, {args.mb} MB document and reference (median of {REPEATS}, ms)")
    print("case | ours | before (floor: GUI thread) | ratio | target")
    for name, r in results.items():
        ours, before = statistics.median(r["ours"]), statistics.median(r["before"])
        print(f"{name} | {ours:.1f} | {before:.1f} | {ours / before:.2f} | "
              f"<= {TARGET_MS:g} ms {verdict(ours <= TARGET_MS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
