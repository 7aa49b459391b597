"""Opening a TorchScript archive of many small modules: the lazy reader's unpickling of ``data.pkl``.

The reader unpickles with Python's pure-Python unpickler (``bounded_unpickler``): the C one grows
its memo to whatever index the file names. Rows ``case | ours | floor | ratio``, CPU seconds of
this process (median of ``--repeat``), all in one run:

- ``data.pkl`` unpickled: the reader's unpickler vs the C unpickler with the same ``find_class``
  and ``persistent_load`` (what the reader used before; unsafe on hostile files);
- whole open (``read_torchscript``: zip, unpickle, class sources, tensor offsets) vs the same
  with the C unpickler put back, so the ratio is what the switch costs a whole open;
- with ``--checkout PATH``, also the whole open by that checkout's reader (e.g. /work/main).

    python benchmarks/bench_torchscript_open.py [--params 2000] [--repeat 7] [--checkout PATH]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._measure import run_child  # noqa: E402

CHILD = r"""
import io, json, os, pickle, statistics, sys, time, zipfile
if os.environ.get("BENCH_CHECKOUT"):
    sys.path.insert(0, os.environ["BENCH_CHECKOUT"])
from app.core.formats import torchscript_lazy as tl, torchscript_pickle as tp
path, repeat = sys.argv[1], int(sys.argv[2])

class CUnpickler(pickle.Unpickler):  # the reader's allowlist on the C unpickler
    def __init__(self, data):
        super().__init__(io.BytesIO(data))
        self._classes, self._storages, self._dtypes = {}, {}, tp._storage_dtypes()
    find_class = tp._Unpickler.find_class
    persistent_load = tp._Unpickler.persistent_load

def cpu(fn):
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)

with zipfile.ZipFile(path) as z:
    data = z.read([n for n in z.namelist() if n.endswith("/data.pkl")][0])
out = {"pkl_bytes": len(data), "ours_unpickle": cpu(lambda: tp._Unpickler(data).load()),
       "c_unpickle": cpu(lambda: CUnpickler(data).load()),
       "open": cpu(lambda: tl.read_torchscript(path))}
tl._Unpickler = CUnpickler
out["open_c"] = cpu(lambda: tl.read_torchscript(path))
print(json.dumps(out))
"""


def write_archive(path: str, params: int) -> None:
    import torch
    from torch import nn

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k = nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, x):
            return self.q(x) + self.k(x)

    net = nn.Sequential(*[Layer() for _ in range(max(1, params // 4))])
    torch.jit.save(torch.jit.script(net), path)


def row(label: str, ours: float, floor: float) -> None:
    print(f"{label:<46} | {ours * 1e3:8.1f} ms | {floor * 1e3:8.1f} ms | {ours / floor:5.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=int, default=2000, help="parameter tensors (default 2000)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--checkout", help="also time that checkout's whole open (e.g. /work/main)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "script.pt")
        write_archive(path, args.params)
        ours = run_child(CHILD, path, str(args.repeat))
        print(f"{args.params} parameters; data.pkl {ours['pkl_bytes'] / 1024:.0f} KiB; "
              f"CPU time, median of {args.repeat}")
        print(f"{'case':<46} | {'ours':>11} | {'floor':>11} | ratio")
        row("data.pkl unpickled (floor: C unpickler)", ours["ours_unpickle"], ours["c_unpickle"])
        row("whole open (floor: same, C unpickler)", ours["open"], ours["open_c"])
        if args.checkout:
            os.environ["BENCH_CHECKOUT"] = os.path.abspath(args.checkout)
            other = run_child(CHILD, path, str(args.repeat))
            row(f"whole open (floor: {args.checkout})", ours["open"], other["open"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
