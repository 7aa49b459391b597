"""The histogram's robust range: what it costs next to its floors, measured in the same run.

- ``percentiles`` (GUI thread, every selection): ``value_sample`` + ``percentile_range`` of a big
  tensor, against ``torch.quantile`` of a same-sized sample (the floor: the sort is the work).
- ``exact counts`` (worker): ``range_histogram`` over a robust range with the elements below and
  above counted, against ``torch.histc`` over the same range (counts the inside only).

Prints ``case | ours | floor | ratio`` rows; exits 0 (it is a report).

    python benchmarks/bench_histogram_range.py [--elements N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from app.core import stats_range as sr  # noqa: E402


def best(fn, rounds=3) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--elements", type=int, default=50_000_000)
    n = ap.parse_args().elements
    torch.set_num_threads(1)
    t = torch.randn(n, generator=torch.Generator().manual_seed(0)) * 0.02
    t[:5] = 1e3
    sample = sr.value_sample([t])
    lo, hi = sr.percentile_range(sample)
    edges = sr.float_edges(lo, hi, 100)
    flat = t[torch.randperm(n, generator=torch.Generator().manual_seed(1))[:sample.values.numel()]]
    flat = flat.double()
    rows = [
        ("percentiles of %d elements (GUI thread)" % n,
         best(lambda: sr.percentile_range(sr.value_sample([t]))),
         best(lambda: torch.quantile(flat, torch.tensor([0.001, 0.999], dtype=torch.float64)))),
        ("exact counts over the robust range, %d elements" % n,
         best(lambda: sr.range_histogram([t], edges), rounds=2),
         best(lambda: torch.histc(t, 100, lo, hi), rounds=2)),
    ]
    print("case | ours | floor | ratio")
    for case, ours, floor in rows:
        print(f"{case} | {ours * 1e3:.1f} ms | {floor * 1e3:.1f} ms | {ours / floor:.2f}")


if __name__ == "__main__":
    main()
