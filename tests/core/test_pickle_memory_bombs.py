"""Pickles whose few bytes state a huge count (a memo index, a BYTEARRAY8 length) cost memory in
proportion to the file, never to the count. Each file is opened by ``main.py inspect`` in a fresh
process, whose peak memory (``ru_maxrss``) its own fresh parent reports."""
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from torch import nn

from tests.cli import ROOT, run_main
from tests.corpus.generate import (bytearray8_of, legacy_file, script_archive_with_data_pkl,
                                   with_memo_index, zip_with_data_pkl)
from tests.dcp_make import write_chunked

#: torch and the reader take about 230 MiB; each hostile count below asks for 1 GiB more
PEAK_MIB = 600
#: the parent of one ``main.py`` run: RUSAGE_CHILDREN then is that run's peak alone
PARENT = """import resource, subprocess, sys
code = subprocess.run([sys.executable, *sys.argv[1:]]).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, file=sys.stderr)
sys.exit(code)
"""


def inspect_in_child(*args) -> tuple[subprocess.CompletedProcess, int]:
    """``main.py inspect ARGS`` as a user runs it, and its peak resident memory in MiB."""
    proc = subprocess.run([sys.executable, "-c", PARENT, str(ROOT / "main.py"), "inspect",
                           *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    err, _, peak = proc.stderr.rstrip().rpartition("\n")
    return subprocess.CompletedProcess(args, proc.returncode, proc.stdout, err), int(peak)


def _script(tmp_path):
    src = tmp_path / "linear.pt"
    torch.jit.save(torch.jit.script(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))),
                   str(src))
    return src


def test_torchscript_memo_index_2_26_opens_in_bounded_memory(tmp_path):
    """Its data.pkl first stores a None at memo index 2**26: the C unpickler touched 1 GiB."""
    src = _script(tmp_path)
    path = script_archive_with_data_pkl(src, tmp_path / "memo.pt",
                                        lambda data: with_memo_index(data, 0x04000000))
    proc, peak = inspect_in_child("--json", path)
    assert proc.returncode == 0, proc.stderr
    assert peak < PEAK_MIB, f"inspect peaked at {peak} MiB"
    clean = run_main("inspect", "--json", src)
    assert json.loads(proc.stdout)["tensors"] == json.loads(clean.stdout)["tensors"]
    assert json.loads(proc.stdout)["format"] == "torchscript"


def _torchscript(tmp_path):
    return script_archive_with_data_pkl(_script(tmp_path), tmp_path / "ba8.pt",
                                        lambda _: bytearray8_of(1 << 30))


def _torch_zip(tmp_path):
    path = tmp_path / "ba8.pt"
    path.write_bytes(zip_with_data_pkl(bytearray8_of(1 << 30)))
    return path


def _legacy(tmp_path):
    path = tmp_path / "ba8_legacy.pt"
    path.write_bytes(legacy_file(bytearray8_of(1 << 30)))
    return path


def _dcp_metadata(tmp_path):
    folder = write_chunked(tmp_path / "dcp", {"w": torch.ones(4, 2)})
    with open(os.path.join(folder, ".metadata"), "wb") as f:
        f.write(bytearray8_of(1 << 30))
    return folder


@pytest.mark.parametrize("make", [_torchscript, _torch_zip, _legacy, _dcp_metadata],
                         ids=["torchscript", "torch_zip", "legacy", "dcp_metadata"])
def test_bytearray8_of_2_30_is_refused_in_bounded_memory(tmp_path, make):
    """A BYTEARRAY8 stating 1 GiB and holding 2 bytes: Python's unpickler made the zero-filled
    bytearray first (torch's own stops at the opcode; paramedit's every-opcode one read it)."""
    proc, peak = inspect_in_child(make(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: "), proc.stderr
    assert peak < PEAK_MIB, f"inspect peaked at {peak} MiB"


@pytest.mark.parametrize("size", [0, 3, 100_000, (1 << 24) * 2 + 5],
                         ids=["empty", "in_frame", "after_frame", "several_chunks"])
def test_bytearray8_still_reads_what_the_pickle_holds(size):
    """The bounded BYTEARRAY8: a bytearray inside a frame, after one, and longer than a chunk."""
    from app.core.formats import restricted_pickle
    value = bytearray(os.urandom(1000)) * (size // 1000) + bytearray(size % 1000)
    back = restricted_pickle.loads(pickle.dumps({"b": value}, protocol=5))
    assert type(back["b"]) is bytearray and back["b"] == value
