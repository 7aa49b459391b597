"""Big checkpoints: opening, inspecting and saving after a small edit, against the floor of each.

Rows ``case | ours | floor | ratio``, each side measured in a fresh process in the same run:

- inspect a safetensors file (open, list every tensor) vs ``safe_open`` + its keys/shapes;
- open a legacy (non-zip) torch pickle vs ``torch.load(weights_only=True)``: time and peak RSS;
- save after editing one small tensor vs ``shutil.copyfile`` + fsync of the same file (goal
  <= 1.1x: the unchanged tensors are copied file to file), for safetensors and for a torch zip
  file written by ``torch.save`` (``torch_zip_stream``: the file copied, the edited storage
  rewritten);
- open a 40 GiB sparse safetensors (larger than memory): ours works, ``safe_open`` fails.

    python benchmarks/bench_bigfile.py [--mib 1200] [--only save]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._measure import run_child  # noqa: E402

PRELUDE = """
import json, os, sys, time
sys.path.insert(0, os.getcwd())
import torch
from benchmarks._measure import reset_peak, rss_kib
import app.core.formats, app.core.formats.save, safetensors.torch
def peak_mib():  # VmHWM, not ru_maxrss: that one starts at the parent's peak after exec
    return rss_kib("VmHWM") / 1024
reset_peak()
base = rss_kib("VmRSS") / 1024
t0 = time.perf_counter()
"""
DONE = """
print(json.dumps({"s": time.perf_counter() - t0, "rss": peak_mib() - base, **extra}))
"""

OURS_INSPECT = """
from app.core.formats import load_document
doc = load_document(sys.argv[1])
rows = [(e.name, e.shape, e.dtype) for e in doc.tensors.values()]
extra = {"n": len(rows)}
"""
FLOOR_INSPECT = """
from safetensors import safe_open
extra = {}
try:
    with safe_open(sys.argv[1], framework="pt") as f:
        rows = [(k, f.get_slice(k).get_shape()) for k in f.keys()]
    extra["n"] = len(rows)
except Exception as exc:
    extra["error"] = str(exc)[:80]
"""
OURS_LEGACY = """
from app.core.formats import load_document
doc = load_document(sys.argv[1])
extra = {"n": len(doc.tensors)}
"""
FLOOR_LEGACY = """
obj = torch.load(sys.argv[1], weights_only=True)
extra = {"n": len(obj)}
"""
OURS_SAVE = """
from app.core.formats import load_document
from app.core.formats.save import save_document
doc = load_document(sys.argv[1])
t0 = time.perf_counter()
with torch.no_grad():
    doc.tensor(sys.argv[3]).add_(1)  # bytes that really change
save_document(doc, sys.argv[2])
extra = {}
"""
FLOOR_SAVE = """
import shutil
shutil.copyfile(sys.argv[1], sys.argv[2])
fd = os.open(sys.argv[2], os.O_RDONLY); os.fsync(fd); os.close(fd)
extra = {}
"""


def child(body: str, *args: str) -> dict:
    return run_child(PRELUDE + body + DONE, *args)


def make_safetensors(path: str, mib: int) -> str:
    import torch
    from safetensors.torch import save_file
    n = max(1, mib // 64)
    save_file({f"layers.{i}.weight": torch.full((4096, 4096), float(i)) for i in range(n)}
              | {"head.bias": torch.zeros(16)}, path)
    return path


def make_torch_zip(path: str, mib: int) -> str:
    import torch
    n = max(1, mib // 64)
    torch.save({f"layers.{i}.weight": torch.full((4096, 4096), float(i)) for i in range(n)}
               | {"head.bias": torch.zeros(16)}, path)
    return path


def save_rows(label: str, src: str, out: str) -> None:
    drop_cache(src)
    floor = child(FLOOR_SAVE, src, out)
    os.unlink(out)
    drop_cache(src)
    ours = child(OURS_SAVE, src, out, "head.bias")
    row(f"save {label} after one small edit vs copy+fsync", ours["s"], floor["s"], "s")
    row(f"save {label} after one small edit, peak RSS", ours["rss"], floor["rss"], "MiB")
    os.unlink(out)
    os.unlink(src)


def make_legacy(path: str, mib: int) -> str:
    import torch
    n = max(1, mib // 64)
    torch.save({f"layers.{i}.weight": torch.full((4096, 4096), float(i)) for i in range(n)},
               path, _use_new_zipfile_serialization=False)
    return path


def make_sparse(path: str, size: int = 40 * 1024 ** 3) -> str:
    import json
    import struct
    hdr = json.dumps({"huge.weight": {"dtype": "BF16", "shape": [size // 2],
                                      "data_offsets": [0, size]}}).encode()
    hdr += b" " * (-len(hdr) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)) + hdr)
        f.truncate(8 + len(hdr) + size)
    return path


def row(case: str, ours: float, floor: float, unit: str) -> None:
    ratio = f"{ours / floor:6.2f}x" if floor > 0.5 * (unit == "MiB") + 1e-9 else "  (floor ~0)"
    print(f"{case:<46} | {ours:9.3f} {unit:<3} | {floor:9.3f} {unit:<3} | {ratio}")


def drop_cache(path: str) -> None:
    """Make a file cold where the OS allows (fair first reads for both sides)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    except (AttributeError, OSError):
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1200, help="size of the real files (<= 1500)")
    ap.add_argument("--only", choices=("save",), help="only the save rows")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as folder:
        print(f"{'case':<46} | {'ours':>13} | {'floor':>13} | ratio")
        if args.only != "save":
            st = make_safetensors(os.path.join(folder, "model.safetensors"), args.mib)
            ours, floor = child(OURS_INSPECT, st), child(FLOOR_INSPECT, st)
            row(f"inspect {args.mib} MiB safetensors, time", ours["s"], floor["s"], "s")
            row(f"inspect {args.mib} MiB safetensors, peak RSS", ours["rss"], floor["rss"], "MiB")
            os.unlink(st)
        save_rows("safetensors", make_safetensors(os.path.join(folder, "model.safetensors"),
                                                  args.mib), os.path.join(folder, "out.safetensors"))
        save_rows("torch zip", make_torch_zip(os.path.join(folder, "model.pt"), args.mib),
                  os.path.join(folder, "out.pt"))
        if args.only == "save":
            return

        leg = make_legacy(os.path.join(folder, "legacy.pt"), args.mib)
        ours, floor = child(OURS_LEGACY, leg), child(FLOOR_LEGACY, leg)
        row(f"open {args.mib} MiB legacy pickle, time", ours["s"], floor["s"], "s")
        row(f"open {args.mib} MiB legacy pickle, peak RSS", ours["rss"], floor["rss"], "MiB")
        os.unlink(leg)

        sparse = make_sparse(os.path.join(folder, "sparse40g.safetensors"))
        ours, floor = child(OURS_INSPECT, sparse), child(FLOOR_INSPECT, sparse)
        print(f"{'open 40 GiB sparse safetensors':<46} | {'works' if ours.get('n') else 'fails':>13} "
              f"| {'fails' if 'error' in floor else 'works':>13} | "
              f"ours {ours['s']:.2f} s, {ours['rss']:.0f} MiB; safe_open: {floor.get('error', 'ok')}")


if __name__ == "__main__":
    main()
