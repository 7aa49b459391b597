"""Peak memory of a masked expression: chunked (default) vs evaluated whole.

Issue 9: ``torch.where(mask, expr, w)`` on a 200M-element tensor peaked at 5.1 GB, because the
mask, the expression's temporaries and the result each were a full-size tensor beside the copy
kept for undo. An elementwise expression now runs chunk by chunk, so the peak should stay near
the undo copy (1x the tensor) plus one chunk.

Each case runs in a fresh process; the figure is VmHWM growth during ``ExprEdit.apply`` (after
the tensor exists), as a multiple of the tensor's size, and what it needs beyond the undo copy in
chunks (``ExprEdit.chunk_elements`` float32 elements). Target: chunked <= 1x + 12 chunks, i.e.
the undo copy plus one chunk's temporaries, whatever the tensor's size. A third run, ``one op``,
is ``w * 2`` without a mask (issue 15: the undo copy, then the operation written into ``w``):
same target.

    .venv/bin/python benchmarks/bench_expr_memory.py [--melem 50]
"""
from __future__ import annotations

import argparse

from _measure import run_child, verdict

CHILD = r"""
import json, sys, time, torch
sys.path.insert(0, "benchmarks")
from _measure import reset_peak, rss_kib
from app.core.model.document import Document
from app.core.edits.values import ExprEdit
n, mode = int(sys.argv[1]), sys.argv[2]
torch.manual_seed(0)
doc = Document.from_object({"w": torch.randn(n)})
edit = ExprEdit(["w"], "torch.where(w.abs() < 0.5, 0, w * 2 + 1)", mask="w.abs() >= 0.01")
if mode == "one op":
    edit = ExprEdit(["w"], "w * 2")
if mode == "whole":
    edit.chunk_elements = 1 << 62  # force evaluation of the whole tensor at once
reset_peak()
base = rss_kib()
t = time.perf_counter()
edit.apply(doc)
seconds = time.perf_counter() - t
peak = rss_kib("VmHWM") - base
print(json.dumps({"peak_mib": peak / 1024, "tensor_mib": n * 4 / 2**20, "seconds": seconds,
                  "chunk_mib": ExprEdit.chunk_elements * 4 / 2**20}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--melem", type=float, default=50.0, help="million float32 elements")
    n = int(ap.parse_args().melem * 1e6)
    results = {mode: run_child(CHILD, str(n), mode) for mode in ("chunked", "whole", "one op")}
    size = results["chunked"]["tensor_mib"]
    print(f"expressions on {n:,} float32 elements ({size:,.0f} MiB): chunked and whole are masked")
    for mode, r in results.items():
        print(f"  {mode:8s} peak +{r['peak_mib']:8,.0f} MiB = {r['peak_mib'] / size:4.2f}x the tensor"
              f"   {r['seconds']:6.2f} s")
    chunk = results["chunked"]["chunk_mib"]
    for mode in ("chunked", "one op"):
        extra = (results[mode]["peak_mib"] - size) / chunk
        print(f"{mode}: the undo copy + {extra:.1f} chunks of {chunk:g} MiB "
              f"(target <= 12 chunks): {verdict(extra <= 12)}")


if __name__ == "__main__":
    main()
