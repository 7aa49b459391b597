"""Inspecting a checkpoint of many tensors (issue 15): the document build against its floor,
time and peak RSS growth, each the median of several fresh interpreters, ours and floor taken
in turns.

The floors are those of ``bench_many.py --only build`` (``safe_open`` listing names, shapes and
dtypes; ``torch.load(mmap=True, weights_only=True)``), measured twice: as there (the cyclic
collector running, which walks the floor's 100k-item result again and again), and with the
collector paused the way ``load_document`` pauses it (a floor doing no more than it must).

    python benchmarks/bench_build.py [--n 100000] [--runs 3] [--only safetensors|torch]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._measure import run_child  # noqa: E402
from benchmarks.bench_many import generate  # noqa: E402

BUILD = r"""
import gc, json, sys, time
from benchmarks._measure import reset_peak, rss_kib
mode, path, paused = sys.argv[1], sys.argv[2], sys.argv[3] == "paused"
import torch
from safetensors import safe_open
from app.core.formats import load_document

def floor_torch():
    sd = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
    return [(k, tuple(v.shape), v.dtype) for k, v in sd.items()]

def floor_safetensors():
    with safe_open(path, framework="pt") as f:
        return [(k, f.get_slice(k).get_shape(), f.get_slice(k).get_dtype()) for k in f.keys()]

def ours():
    doc = load_document(path)
    doc.root.totals()
    return doc

def paused_gc(fn):
    gc.disable()
    try:
        return fn()
    finally:
        gc.freeze(); gc.unfreeze(); gc.enable()

fn = {"ours": ours, "torch": floor_torch, "safetensors": floor_safetensors}[mode]
base = rss_kib(); reset_peak()
t0 = time.perf_counter(); keep = paused_gc(fn) if paused else fn(); dt = time.perf_counter() - t0
print(json.dumps({"s": dt, "mb": (rss_kib("VmHWM") - base) / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=("safetensors", "torch"))
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="bench_build_")
    try:
        pt, st = generate(folder, args.n)
        print(f"{args.n} tensors, median of {args.runs} fresh interpreters each")
        print(f"{'case':<44} | {'ours':>9} | {'floor':>9} | ratio")
        for label, path, floor in (("torch zip", pt, "torch"), ("safetensors", st, "safetensors")):
            if args.only and args.only != floor:
                continue
            runs: dict[str, list[dict]] = {"ours": [], "plain": [], "paused": []}
            for _ in range(args.runs):
                runs["ours"].append(run_child(BUILD, "ours", path, "plain"))
                runs["plain"].append(run_child(BUILD, floor, path, "plain"))
                runs["paused"].append(run_child(BUILD, floor, path, "paused"))
            med = {k: {f: statistics.median(r[f] for r in v) for f in ("s", "mb")}
                   for k, v in runs.items()}
            for kind, unit in (("s", "s"), ("mb", "MB")):
                for which, words in (("plain", "floor as bench_many"),
                                     ("paused", "floor, collector paused")):
                    ours, base = med["ours"][kind], max(med[which][kind], 1e-9)
                    fmt = (lambda v: f"{v:.3f} s") if unit == "s" else (lambda v: f"{v:.0f} MB")
                    what = "time" if kind == "s" else "RSS"
                    print(f"{f'{label} {what}, {words}':<44} | {fmt(ours):>9} | {fmt(base):>9} | "
                          f"{ours / base:5.2f}x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
