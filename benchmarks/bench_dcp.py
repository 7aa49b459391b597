"""DCP folders: opening (ours lazy, metadata only) and converting to one .pt, against torch's own
``torch.distributed.checkpoint.format_utils.dcp_to_torch_save`` machinery as the floor.

The checkpoint is written as 4 ranks would (every tensor split into 4 chunks over
``__0_0.distcp`` .. ``__3_0.distcp``, tests/dcp_make.py). Rows, medians of ROUNDS runs:

- ``open``: ours ``load_document`` (lists every tensor, reads no data) vs torch's full load
  (``_load_state_dict`` with the empty-state-dict planner, as dcp_to_torch_save does);
- ``open + one tensor``: ours open and assemble one tensor vs the same full load;
- ``convert to .pt``: ours ``save_document(doc, out.pt)`` (atomic: fsynced, then renamed) vs
  ``dcp_to_torch_save`` followed by an fsync of its file (the same durability);
- ``read all through a transform``: the same tensors saved by ``dcp.save`` through a stream
  transform (the tests' ``test.xor``, allowed as torch's ``stream.zstd`` is: zstd needs a
  package this environment lacks), every tensor read: ours vs torch's full load with a
  ``FileSystemReader`` whose registry knows the transform.

    .venv/bin/python benchmarks/bench_dcp.py [--mb 256]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ROUNDS = 3


def _median(fn) -> float:
    fn()  # warm: imports, page cache
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=256, help="checkpoint size in MB (float32)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import torch
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict
    from app.core.formats import load_document
    from app.core.formats.save import save_document
    from tests.dcp_make import write_chunked

    tmp = tempfile.mkdtemp(prefix="bench_dcp_")
    try:
        g = torch.Generator().manual_seed(0)
        n = max(args.mb // 4, 1)  # tensors of 4 MB: 1024 x 1024 float32
        tensors = {f"layers.{i}.weight": torch.randn(1024, 1024, generator=g) for i in range(n)}
        folder = write_chunked(os.path.join(tmp, "ck"), tensors, ranks=4, values={"step": 100})
        from app.core.formats import dcp_transforms
        from tests.dcp_make import save_through, transforms
        from torch.distributed.checkpoint._extension import ExtensionRegistry
        xor = transforms()[1]
        dcp_transforms.KNOWN["test.xor"] = xor
        registry = ExtensionRegistry()
        registry.register(xor)
        through = save_through(tensors, os.path.join(tmp, "xor"), [xor()])
        del tensors
        first = "layers.0.weight"

        def floor_load():
            sd: dict = {}
            _load_state_dict(sd, storage_reader=FileSystemReader(folder),
                             planner=_EmptyStateDictLoadPlanner(), no_dist=True)
            return sd

        def ours_open():
            load_document(folder).close()

        def ours_one():
            doc = load_document(folder)
            doc.tensor(first)
            doc.close()

        def floor_convert():
            out = os.path.join(tmp, "floor.pt")
            dcp_to_torch_save(folder, out)
            fd = os.open(out, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            os.remove(out)

        def ours_convert():
            out = os.path.join(tmp, "ours.pt")
            doc = load_document(folder)
            save_document(doc, out)
            doc.close()
            os.remove(out)

        def floor_through():
            sd: dict = {}
            _load_state_dict(sd, storage_reader=FileSystemReader(through, _extension_registry=registry),
                             planner=_EmptyStateDictLoadPlanner(), no_dist=True)

        def ours_through():
            doc = load_document(through)
            for name in list(doc.tensors):
                doc.tensor(name)
            doc.close()

        full = _median(floor_load)
        rows = [("open (lazy vs full load)", _median(ours_open), full),
                ("open + one tensor (vs full load)", _median(ours_one), full),
                ("convert to .pt (durable)", _median(ours_convert), _median(floor_convert)),
                ("read all through a transform", _median(ours_through), _median(floor_through))]
        print(f"# {n} tensors, {n * 4} MB, 4 ranks x 4 chunks each; median of {ROUNDS}")
        print("case | ours | floor | ratio")
        for case, ours, floor in rows:
            print(f"{case} | {ours:.3f} s | {floor:.3f} s | {ours / floor:.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
