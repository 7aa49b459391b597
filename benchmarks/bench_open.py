"""Open-to-tree time and memory of a ~1 GB checkpoint in each format, against the floor.

The floor is the cheapest way to list names, shapes and dtypes: ``torch.load(mmap=True,
weights_only=True)`` for torch zips, ``safe_open`` with every key's shape and dtype for
safetensors. Targets: ratio <= 2 (+50 ms), peak RSS growth <= 5% of the file size.
Each measurement runs in a fresh interpreter; the median of several runs is reported.

    python benchmarks/bench_open.py [--gb 1.0] [--runs 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._measure import run_child, verdict  # noqa: E402

CHILD = r"""
import json, sys, time
import torch
from safetensors import safe_open
from benchmarks._measure import reset_peak, rss_kib
from app.core.formats import load_document
mode, path = sys.argv[1], sys.argv[2]

def floor_torch(p):
    sd = torch.load(p, mmap=True, weights_only=True, map_location="cpu")
    return [(k, tuple(v.shape), v.dtype) for k, v in sd.items()]

def floor_safetensors(paths):
    out = []
    for p in paths:
        with safe_open(p, framework="pt") as f:
            for k in f.keys():
                s = f.get_slice(k)
                out.append((k, s.get_shape(), s.get_dtype()))
    return out

def floor_jit(p):
    m = torch.jit.load(p, map_location="cpu")
    return [(k, tuple(v.shape)) for k, v in m.state_dict().items()]

def ours(p):
    doc = load_document(p)
    doc.root.totals()  # what the tree's first paint needs
    return doc

import glob, os
shards = sorted(glob.glob(os.path.join(path, "*.safetensors"))) if os.path.isdir(path) else [path]
fn = {"ours": lambda: ours(path), "torch": lambda: floor_torch(path),
      "safetensors": lambda: floor_safetensors(shards), "torchscript": lambda: floor_jit(path)}[mode]
base = rss_kib()
reset_peak()
t0 = time.perf_counter()
keep = fn()
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rss_growth_kib": rss_kib("VmHWM") - base}))
"""


def make_tensors(gb: float) -> dict:
    """A transformer-shaped state_dict of about ``gb`` GB of float32."""
    import torch
    d, layers = 1024, max(1, int(gb * 1e9 / 4 / (12 * 1024 * 1024 + 6 * 1024)))
    g = torch.Generator().manual_seed(0)
    sd = {"embed.weight": torch.randn(8192, d, generator=g)}
    for i in range(layers):
        p = f"layers.{i}."
        sd[p + "attn.qkv.weight"] = torch.randn(3 * d, d, generator=g)
        sd[p + "attn.qkv.bias"] = torch.zeros(3 * d)
        sd[p + "attn.out.weight"] = torch.randn(d, d, generator=g)
        sd[p + "attn.out.bias"] = torch.zeros(d)
        sd[p + "mlp.up.weight"] = torch.randn(4 * d, d, generator=g)
        sd[p + "mlp.down.weight"] = torch.randn(d, 4 * d, generator=g)
        sd[p + "norm.weight"] = torch.ones(d)
        sd[p + "norm.bias"] = torch.zeros(d)
    return sd


def write_all(folder: str, gb: float) -> dict[str, tuple[str, str]]:
    import torch
    from safetensors.torch import save_file
    sd = make_tensors(gb)
    files = {}
    p = os.path.join(folder, "model.pt")
    torch.save(sd, p)
    files["torch zip"] = (p, "torch")
    p = os.path.join(folder, "model.safetensors")
    save_file(sd, p)
    files["safetensors"] = (p, "safetensors")
    shard_dir = os.path.join(folder, "sharded")
    from tests.checkpoints import save_sharded_safetensors
    save_sharded_safetensors(sd, shard_dir, per_shard=max(1, len(sd) // 4))
    files["sharded safetensors"] = (shard_dir, "safetensors")

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for k, v in sd.items():
                self.register_buffer(k.replace(".", "_"), v)
    p = os.path.join(folder, "model.torchscript.pt")
    torch.jit.save(torch.jit.script(Holder()), p)
    files["torchscript"] = (p, "torchscript")
    return files


def median(mode: str, path: str, runs: int) -> tuple[float, float]:
    results = [run_child(CHILD, mode, path) for _ in range(runs)]
    return (statistics.median(r["seconds"] for r in results),
            statistics.median(r["rss_growth_kib"] for r in results) * 1024)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    import warnings
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as folder:
        files = write_all(folder, args.gb)
        print(f"{'format':22} {'size':>9} {'ours':>9} {'floor':>9} {'ratio':>6}  "
              f"{'RSS growth':>11}  verdict (ratio <= 2 or +50 ms; RSS <= 5%)")
        for label, (path, floor_mode) in files.items():
            size = (sum(f.stat().st_size for f in Path(path).iterdir()) if os.path.isdir(path)
                    else os.path.getsize(path))
            ours_s, ours_rss = median("ours", path, args.runs)
            floor_s, _ = median(floor_mode, path, args.runs)
            ratio = ours_s / floor_s
            frac = ours_rss / size
            time_ok = ratio <= 2 or ours_s <= floor_s + 0.05
            note = "" if label != "torchscript" else (
                "  (lazy reader, tensors mmapped; floor is torch.jit.load, which reads every tensor)")
            print(f"{label:22} {size / 1e9:8.2f}G {ours_s * 1e3:8.1f}ms {floor_s * 1e3:8.1f}ms "
                  f"{ratio:6.2f}  {frac * 100:10.2f}%  time {verdict(time_ok)}, "
                  f"RSS {verdict(frac <= 0.05)}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
