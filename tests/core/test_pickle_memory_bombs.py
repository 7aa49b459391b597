"""Pickles whose few bytes state a huge count (a memo index, a BYTEARRAY8 length) cost memory in
proportion to the file, never to the count; a zip whose compressed pickle expands far beyond the
file is refused before it is inflated. Each hostile file is opened by ``main.py inspect`` in a
fresh process, whose peak memory (``ru_maxrss``) its own fresh parent reports."""
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from torch import nn

from tests.cli import ROOT, assert_one_error_line, run_main
from tests.corpus.generate import (behind_marks, bytearray8_of, legacy_file, pickles_deflated,
                                   rezipped, script_archive_with_data_pkl, with_memo_index,
                                   zip_with_data_pkl)
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


def _deflated_torch_zip(tmp_path):
    torch.save({"w": torch.ones(3)}, tmp_path / "plain.pt")
    return rezipped(tmp_path / "plain.pt", tmp_path / "bomb.pt", pickles_deflated, behind_marks)


def _deflated_torchscript(tmp_path):
    return rezipped(_script(tmp_path), tmp_path / "bomb.pt", pickles_deflated, behind_marks)


@pytest.mark.parametrize("make", [_deflated_torch_zip, _deflated_torchscript],
                         ids=["torch_zip", "torchscript"])
def test_deflated_data_pkl_of_marks_is_refused_in_bounded_memory(tmp_path, make):
    """25 KB of file, 24 MiB of MARKs once inflated: unpickled, 1.2 GB (torch.load and the lazy
    TorchScript reader both inflate data.pkl). Refused from the central directory's sizes."""
    path = make(tmp_path)
    proc, peak = inspect_in_child(path)
    line = assert_one_error_line(proc)
    assert "its data.pkl is compressed and expands to 24.0 MiB" in line, line
    assert "from a file of" in line and "zip -0" in line, line
    assert peak < PEAK_MIB, f"inspect peaked at {peak} MiB"


def _deflated_with_text(tmp_path, text_bytes: int, tensor_bytes: int = 16):
    """A torch.save file rezipped whole (``zip -9``) whose pickle holds ``text_bytes`` of text,
    beside a tensor of random (incompressible) bytes; and the inspect report of the original."""
    obj = {"w": torch.randint(0, 255, (tensor_bytes,), dtype=torch.uint8), "note": "a" * text_bytes}
    torch.save(obj, tmp_path / "plain.pt")
    clean = run_main("inspect", "--json", "--stats", tmp_path / "plain.pt")
    return rezipped(tmp_path / "plain.pt", tmp_path / "zip9.pt", lambda _: True), clean


@pytest.mark.parametrize("text_mib, tensor_mib", [(15, 0), (20, 8)], ids=["under_16_mib", "under_4x"])
def test_a_deflated_checkpoint_within_the_bound_opens(tmp_path, text_mib, tensor_mib):
    """Re-zipped by hand: up to 16 MiB inflated for any file, up to 4x the file for a big one;
    the tensors read are the file's (``torch.load(mmap=True)`` took a compressed record's bytes
    for the tensor's, or failed where they were fewer)."""
    path, clean = _deflated_with_text(tmp_path, text_mib << 20, max(16, tensor_mib << 20))
    assert os.path.getsize(path) < (1 << 20) + (tensor_mib << 20)
    proc = run_main("inspect", "--json", "--stats", path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tensors"] == json.loads(clean.stdout)["tensors"]


def test_a_deflated_pickle_past_16_mib_in_a_small_file_is_refused(tmp_path):
    path, _ = _deflated_with_text(tmp_path, 17 << 20)
    line = assert_one_error_line(run_main("inspect", "--json", path))
    assert "its data.pkl is compressed and expands to 17.0 MiB (" in line, line
    assert "compressed records, 17.0 MiB in all), from a file of" in line, line


def test_the_static_scan_never_inflates_a_deflated_pickle(tmp_path):
    """``unsafe_globals`` (naming the globals of a refused pickle) reads data.pkl through
    zipfile, which finds a zip even behind a legacy pickle, where detect() never looks."""
    from app.core.errors import CheckpointError
    from app.core.formats.pickle_trust import unsafe_globals
    path = _deflated_torch_zip(tmp_path)
    with pytest.raises(CheckpointError, match="data.pkl is compressed and expands"):
        unsafe_globals(path)
