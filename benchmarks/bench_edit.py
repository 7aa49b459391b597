"""Time of one value edit vs its floor: the undo copy (``clone``) plus the same operation in place.

An edit saves the old values (it needs them for undo) and writes the new ones; nothing else
should cost a pass over the tensor. Each case runs on a fresh float32 tensor of ``--n`` elements
in this process, alternating with its floor, median of ``--rounds``.

    .venv/bin/python benchmarks/bench_edit.py [--n 100000000] [--rounds 3]

The floor of an expression is plain torch on the same tensor: ``clone()`` and then the operation
in place (``mul_``, ``add_``, ``clamp_``); a masked expression, which has no in-place form, is
``torch.where(mask, expr, old, out=w)`` after the clone; an expression of several operations is
those operations in place one after the other.

Target: ratio <= 1.2 for every case.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from app.core.edits.initializers import InitEdit  # noqa: E402
from app.core.edits.values import ExprEdit, FillEdit  # noqa: E402
from app.core.model.document import Document  # noqa: E402
from benchmarks._measure import verdict  # noqa: E402

TARGET = 1.2


def _timed(fn) -> float:
    """Seconds ``fn()`` takes; a callable it returns (putting values back) runs untimed after."""
    gc.collect()
    t0 = time.perf_counter()
    after = fn()
    seconds = time.perf_counter() - t0
    if callable(after):
        after()
    return seconds


def _case_edit(doc: Document, make_edit):
    def run():
        edit = make_edit()
        edit.apply(doc)
        return edit
    return run


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=float, default=1e8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n = int(args.n)
    torch.manual_seed(0)
    w = torch.randn(n)
    doc = Document.from_object({"w": w})
    t = doc.tensor("w")

    def masked_floor():
        old = t.clone()
        torch.where(old.abs() > 1, old * 2, old, out=t)
        return lambda: t.copy_(old)  # untimed: the next case starts from the same values

    cases = {
        "expr w * 2": (lambda: ExprEdit(["w"], "w * 2"), lambda: t.clone().mul_(2) is None),
        "expr w + 1": (lambda: ExprEdit(["w"], "w + 1"), lambda: t.clone().add_(1) is None),
        "expr clamp": (lambda: ExprEdit(["w"], "torch.clamp(w, -1, 1)"),
                       lambda: t.clone().clamp_(-1, 1) is None),
        "expr w*2+1": (lambda: ExprEdit(["w"], "w * 2 + 1"),
                       lambda: t.clone().mul_(2).add_(1) is None),
        "expr masked": (lambda: ExprEdit(["w"], "w * 2", mask="w.abs() > 1"), masked_floor),
        "fill 0.5": (lambda: FillEdit(["w"], 0.5), lambda: t.clone().fill_(0.5) is None),
        "init normal_": (lambda: InitEdit(["w"], "normal_", {"std": 0.02}, seed=0),
                         lambda: t.clone().normal_(0, 0.02) is None),
    }
    print(f"float32 tensor of {n:,} elements ({n * 4 / 2**20:.0f} MiB); {args.rounds} rounds, median")
    print(f"{'case':<12} | {'ours':>8} | {'floor':>8} | ratio  (floor: clone + the in-place op)")
    ok = True
    for label, (make, floor_fn) in cases.items():
        ours, floors = [], []
        for _ in range(args.rounds):
            floors.append(_timed(floor_fn))
            edits: list = []
            ours.append(_timed(lambda: edits.append(_case_edit(doc, make)())))
            edits.pop().revert(doc)
        o, f = statistics.median(ours), statistics.median(floors)
        good = o / f <= TARGET
        ok &= good
        print(f"{label:<12} | {o * 1000:6.0f}ms | {f * 1000:6.0f}ms | {o / f:4.2f}  "
              f"target <= {TARGET}: {verdict(good)}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
