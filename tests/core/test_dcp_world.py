"""A DCP folder written by a real world of 2 ranks (gloo, DTensor sharded on CPU) opens with no
process group and shows each tensor whole. Slow (a ~10-30 s world start), so ``-m slow``; the
fast tests use tests/dcp_make.py's chunked folders of the same layout."""
import os
import socket
import subprocess
import sys
import warnings

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _full():
    g = torch.Generator().manual_seed(0)
    return {"w": torch.randn(7, 5, generator=g), "b": torch.randn(6, generator=g),
            "r": torch.randn(3, generator=g)}


def rank_main(rank: int, world: int, folder: str, port: int) -> None:
    """One rank: shard two tensors over the world, replicate one, save with dcp.save."""
    warnings.simplefilter("ignore")
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor
    import torch.distributed.checkpoint as dcp
    mesh = init_device_mesh("cpu", (world,))
    full = _full()
    sd = {"model": {"w": distribute_tensor(full["w"], mesh, [Shard(0)]),
                    "b": distribute_tensor(full["b"], mesh, [Shard(0)]),
                    "r": distribute_tensor(full["r"], mesh, [Replicate()])}, "step": 9}
    dcp.save(sd, checkpoint_id=folder)
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_two_rank_dtensor_checkpoint_opens_whole(tmp_path):
    folder = str(tmp_path / "world2")
    code = ("import sys, torch.multiprocessing as mp; from tests.core.test_dcp_world import rank_main; "
            "mp.spawn(rank_main, args=(2, sys.argv[1], int(sys.argv[2])), nprocs=2)")
    proc = subprocess.run([sys.executable, "-c", code, folder, str(_free_port())], cwd=ROOT,
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from app.core.formats import load_document
    from app.core.formats.dcp_metadata import read_metadata
    meta = read_metadata(folder)
    assert {c.file for c in meta.tensors["model.w"].chunks} == {"__0_0.distcp", "__1_0.distcp"}
    doc = load_document(folder)
    full = _full()
    for name in ("w", "b", "r"):
        assert torch.equal(doc.tensor(f"model.{name}"), full[name])
    assert doc.entries == {"step": "int: 9"}
