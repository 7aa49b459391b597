"""Peak memory of ``main.py apply``: peak RSS (and its anonymous part) over the input's size.

A recipe should need memory near the size of what it changes, not a multiple of the input
(issue 9 measured 3.5x the input for an expression on every tensor; now ~1.3x): unchanged tensors stay memory-mapped and are written straight from the mapping. The
file-backed pages of the mapping count in RSS while they are being copied (clean, reclaimable
page cache); the anonymous part (RssAnon: private copies, the edited tensor) is what the
recipe really costs. Each case runs ``main.py apply`` in a fresh process; the figure is the
child's VmHWM / RssAnon peak sampled from /proc.

    .venv/bin/python benchmarks/bench_apply.py [--mb 512] [--format pt|safetensors|both]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_input(folder: str, mb: int, fmt: str) -> str:
    import torch
    n = max(mb // 16, 2)  # 16 MiB float32 tensors
    g = torch.Generator().manual_seed(0)
    state = {f"layers.{i}.weight": torch.randn(2048, 2048, generator=g) for i in range(n)}
    path = os.path.join(folder, f"in.{fmt}")
    if fmt == "pt":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file
        save_file(state, path)
    return path


def peak_of(cmd: list[str]) -> tuple[int, int, int]:
    """(rc, peak VmHWM KiB, peak RssAnon KiB) of a child, sampling /proc every 5 ms."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    hwm = anon = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
                    elif line.startswith("RssAnon:"):
                        anon = max(anon, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.005)
    err = proc.stderr.read().decode()
    if proc.returncode:
        print(err, file=sys.stderr)
    return proc.returncode, hwm, anon


def baseline_kib() -> tuple[int, int]:
    """(VmHWM, RssAnon) of an interpreter that only imports what apply imports."""
    rc, hwm, anon = peak_of([sys.executable, "-c", "import torch, safetensors, numpy; "
                             "import app.core.recipes.recipe, app.core.formats.save, app.core.formats"])
    return hwm, anon


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--format", default="both", choices=["pt", "safetensors", "both"])
    args = ap.parse_args()
    base_hwm, base_anon = baseline_kib()
    recipes = {"one tensor": ("layers.0.weight", None), "every tensor": ("*", None)}
    with tempfile.TemporaryDirectory() as folder:
        recipe = os.path.join(folder, "r.json")
        for fmt in (["pt", "safetensors"] if args.format == "both" else [args.format]):
            src = make_input(folder, args.mb, fmt)
            size = os.path.getsize(src)
            for label, (target, _) in recipes.items():
                with open(recipe, "w") as f:
                    json.dump({"version": 1, "steps": [
                        {"op": "expr", "target": target, "expr": "w * 0.5"}]}, f)
                changed = 16 * 1024 * 1024 if target != "*" else size
                for out_fmt in ("pt", "safetensors"):
                    out = os.path.join(folder, f"out.{out_fmt}")
                    rc, hwm, anon = peak_of([sys.executable, "main.py", "apply", recipe, src,
                                             "-o", out])
                    if os.path.exists(out):
                        os.unlink(out)
                    print(f"{fmt:>11} -> {out_fmt:<11} expr on {label:<12} rc={rc} input "
                          f"{size / 2**20:.0f} MiB: peak RSS {(hwm - base_hwm) * 1024 / size:.2f}x "
                          f"input; anonymous {(anon - base_anon) / 1024:.0f} MiB = "
                          f"{(anon - base_anon) * 1024 / changed:.2f}x what the recipe changes",
                          flush=True)
            os.unlink(src)

if __name__ == "__main__":
    main()
