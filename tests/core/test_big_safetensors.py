"""Safetensors files larger than memory: opened through one uncharged copy-on-write mapping,
read bit-exact (mapped or with pread), saved by copying unchanged bytes file to file.

The big files are sparse (a header, ``truncate``): they take no disk, and read as zeros.
"""
import errno
import json
import os
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from app.core.errors import Cancelled, CheckpointError
from app.core.formats import load_document
from app.core.formats import stream_copy
from app.core.formats.mapped_file import MappedFile
from app.core.formats.save import save_document
from tests.cli import run_main

GIB = 1024 ** 3
BIG = 40 * GIB  # larger than the machine's memory: safe_open's mapping is refused


def sparse_safetensors(path, big: int = BIG, header_pad: bool = True):
    """small.weight (f32 4x4 = 0..15), huge.weight (bf16, ``big`` bytes of hole), tail.bias."""
    hdr = {"small.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]},
           "huge.weight": {"dtype": "BF16", "shape": [big // 2], "data_offsets": [64, 64 + big]},
           "tail.bias": {"dtype": "F32", "shape": [8], "data_offsets": [64 + big, 96 + big]}}
    raw = json.dumps(hdr).encode()
    if header_pad:
        raw += b" " * (-len(raw) % 8)
    elif len(raw) % 4 == 0:
        raw += b" "  # data misaligned for f32: read by copying, not by viewing
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + struct.pack("<16f", *range(16)))
        f.truncate(8 + len(raw) + 64 + big)
        f.seek(8 + len(raw) + 64 + big)
        f.write(struct.pack("<8f", *range(8)))
    return str(path)


def rss_mib(field="VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def disk_mib(path) -> float:
    return os.stat(path).st_blocks * 512 / 2 ** 20


def test_a_file_larger_than_memory_opens_and_reads_with_little_memory(tmp_path):
    path = sparse_safetensors(tmp_path / "big.safetensors")
    before = rss_mib()
    doc = load_document(path)
    assert doc.entry("huge.weight").nbytes == BIG
    assert torch.equal(doc.tensor("small.weight"), torch.arange(16.0).reshape(4, 4))
    assert torch.equal(doc.tensor("tail.bias"), torch.arange(8.0))
    huge = doc.tensor("huge.weight")  # a view of the mapping: nothing read until touched
    assert huge.shape == (BIG // 2,) and float(huge[-5:].float().sum()) == 0.0
    assert rss_mib() - before < 256
    doc.close()


def test_an_edit_in_place_copies_only_its_pages_and_never_reaches_the_file(tmp_path):
    path = sparse_safetensors(tmp_path / "big.safetensors", big=64 * 1024 ** 2)
    before = open(path, "rb").read()
    doc = load_document(path)
    with torch.no_grad():
        doc.tensor("small.weight").mul_(2)
        doc.tensor("huge.weight")[:3] = 1.5
    assert open(path, "rb").read() == before
    assert float(doc.tensor("small.weight")[3, 3]) == 30.0
    assert float(doc.tensor("huge.weight")[1]) == 1.5


@pytest.mark.parametrize("mapped", [True, False])
def test_every_safetensors_dtype_reads_bit_exact_mapped_or_read(tmp_path, mapped):
    from app.core.formats.safetensors_file import DTYPES, read_header_at
    tensors = {}
    for code, dtype in DTYPES.items():
        raw = torch.randint(0, 256, (6 * torch.empty((), dtype=dtype).element_size(),),
                            dtype=torch.uint8)
        if dtype == torch.bool:
            raw = raw % 2
        tensors[code] = raw.view(dtype).reshape(2, 3)
    path = str(tmp_path / "all.safetensors")
    hdr, blob = {}, b""
    for code, t in tensors.items():  # by hand: the safetensors library lacks some (complex)
        hdr[code] = {"dtype": code, "shape": [2, 3],
                     "data_offsets": [len(blob), len(blob) + t.numel() * t.element_size()]}
        blob += t.view(torch.uint8).numpy().tobytes()
    raw = json.dumps(hdr).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + blob)
    header, start = read_header_at(path)
    f = MappedFile(path, map=mapped)
    assert f.mapped is mapped
    for code, want in tensors.items():
        begin, end = header[code]["data_offsets"]
        got = f.tensor(start + begin, end - begin, want.dtype, want.shape)
        assert got.dtype == want.dtype and torch.equal(got.view(torch.uint8), want.view(torch.uint8))
    f.close()


def test_misaligned_data_is_read_by_copy_bit_exact(tmp_path):
    path = sparse_safetensors(tmp_path / "odd.safetensors", big=1024, header_pad=False)
    doc = load_document(path)
    assert torch.equal(doc.tensor("small.weight"), torch.arange(16.0).reshape(4, 4))
    assert torch.equal(doc.tensor("tail.bias"), torch.arange(8.0))


def test_a_header_longer_than_safetensors_allows_is_refused_unread(tmp_path):
    path = tmp_path / "long.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", 2 * GIB) + b"{")
        f.truncate(3 * GIB)
    from app.core.formats.safetensors_file import read_header  # what a shard is opened with
    with pytest.raises(CheckpointError, match="more than the 100000000 safetensors allows"):
        read_header(str(path))


@pytest.mark.parametrize("second", [[60, 124], [68, 132]])
def test_overlapping_or_gapped_byte_ranges_are_refused(tmp_path, second):
    path = tmp_path / "overlap.safetensors"
    hdr = json.dumps({"a": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]},
                      "b": {"dtype": "F32", "shape": [16], "data_offsets": second}}).encode()
    path.write_bytes(struct.pack("<Q", len(hdr)) + hdr + bytes(second[1]))
    with pytest.raises(CheckpointError, match="overlapping or gapped"):
        load_document(str(path))


def test_save_after_a_small_edit_copies_the_rest_and_keeps_holes(tmp_path):
    path = sparse_safetensors(tmp_path / "big.safetensors", big=2 * GIB)
    doc = load_document(path)
    with torch.no_grad():
        doc.tensor("small.weight").add_(100)
    before = rss_mib()
    out = str(tmp_path / "out.safetensors")
    save_document(doc, out)
    assert rss_mib() - before < 256
    assert disk_mib(out) < 16  # an eager write would store 2 GiB of zeros
    back = load_document(out)
    assert torch.equal(back.tensor("small.weight"), torch.arange(16.0).reshape(4, 4) + 100)
    assert torch.equal(back.tensor("tail.bias"), torch.arange(8.0))
    assert float(back.tensor("huge.weight")[-100:].float().abs().sum()) == 0.0


def test_streamed_save_is_bit_exact_with_and_without_the_kernel_copy(tmp_path, monkeypatch):
    tensors = {f"t{i}": torch.randn(1000 + i, dtype=torch.float32) for i in range(5)}
    tensors["b"] = torch.randn(77).to(torch.bfloat16)
    src = str(tmp_path / "src.safetensors")
    save_file(tensors, src)
    doc = load_document(src)
    with torch.no_grad():
        doc.tensor("t2").zero_()
    expected = {**tensors, "t2": torch.zeros_like(tensors["t2"])}
    save_document(doc, str(tmp_path / "kernel.safetensors"))

    def refused(*a, **k):
        raise OSError(errno.EXDEV, "cross-device")
    monkeypatch.setattr(os, "copy_file_range", refused)
    monkeypatch.setattr(stream_copy, "data_segments", lambda fd, s, e: iter([(s, e)]))
    save_document(doc, str(tmp_path / "buffered.safetensors"))
    for name in ("kernel", "buffered"):
        back = load_file(str(tmp_path / f"{name}.safetensors"))
        assert set(back) == set(expected)
        assert all(torch.equal(back[k].view(torch.uint8), expected[k].view(torch.uint8))
                   for k in expected)


def test_save_over_the_open_file_copies_from_the_file_it_opened(tmp_path):
    path = sparse_safetensors(tmp_path / "big.safetensors", big=1024 * 1024)
    doc = load_document(path)
    with torch.no_grad():
        doc.tensor("tail.bias").neg_()
    save_document(doc, path)
    save_document(doc, path)  # again: the old inode, still mapped, is where unread bytes are
    back = load_file(path)
    assert torch.equal(back["tail.bias"], -torch.arange(8.0))
    assert torch.equal(back["small.weight"], torch.arange(16.0).reshape(4, 4))


def test_a_streamed_copy_reports_progress_and_can_be_cancelled(tmp_path):
    path = sparse_safetensors(tmp_path / "big.safetensors", big=512 * 1024 ** 2)
    doc = load_document(path)
    seen = []
    save_document(doc, str(tmp_path / "a.safetensors"), progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] >= doc.total_bytes() - 64 and len(seen) >= 8
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 3
    with pytest.raises(Cancelled):
        save_document(doc, str(tmp_path / "b.safetensors"), cancelled=cancelled)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "big.safetensors"]


def test_cli_inspects_and_edits_a_file_larger_than_memory(tmp_path):
    path = sparse_safetensors(tmp_path / "big.safetensors")
    proc = run_main("inspect", "--json", path)
    assert proc.returncode == 0, proc.stderr
    shapes = {t["name"]: t["shape"] for t in json.loads(proc.stdout)["tensors"]}
    assert shapes["huge.weight"] == [BIG // 2]
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"version": 1, "steps": [
        {"op": "expr", "target": "small.weight", "expr": "w * 2"}]}))
    out = tmp_path / "out.safetensors"
    script = ("import resource, runpy, sys; sys.argv = sys.argv[1:]; "
              "code = 0\ntry: runpy.run_path(sys.argv[0], run_name='__main__')\n"
              "except SystemExit as e: code = e.code or 0\n"
              "print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
              "sys.exit(code)")
    import subprocess
    import sys
    from tests.cli import ROOT
    proc = subprocess.run([sys.executable, "-c", script, str(ROOT / "main.py"), "apply", str(recipe),
                           path, "-o", str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stderr
    maxrss_mib = int(proc.stderr.split("maxrss")[-1]) / 1024
    assert maxrss_mib < 2048, maxrss_mib  # torch itself is a few hundred MiB; the file is 40 GiB
    assert disk_mib(out) < 16
    back = load_document(str(out))
    assert torch.equal(back.tensor("small.weight"), torch.arange(16.0).reshape(4, 4) * 2)
    assert torch.equal(back.tensor("tail.bias"), torch.arange(8.0))


def test_copied_bytes_keep_their_place_within_a_page(tmp_path):
    tensors = {f"t{i}": torch.randn(3000 + i) for i in range(4)}
    src = str(tmp_path / "src.safetensors")
    save_file(tensors, src)
    doc = load_document(src)
    with torch.no_grad():
        doc.tensor("t0").zero_()  # written, then the others copied
    out = str(tmp_path / "out.safetensors")
    save_document(doc, out)
    from app.core.formats.safetensors_file import read_header_at
    (hs, ss), (ho, so) = read_header_at(src), read_header_at(out)
    assert (so + ho["t1"]["data_offsets"][0]) % 4096 == (ss + hs["t1"]["data_offsets"][0]) % 4096
    assert so % 8 == 0
    back = load_file(out)
    assert torch.equal(back["t1"], tensors["t1"]) and torch.equal(back["t0"], torch.zeros(3000))


def test_the_windows_path_opens_and_shows_a_tensor_of_a_file_larger_than_memory(tmp_path):
    from app.core.loading.open import open_document
    path = sparse_safetensors(tmp_path / "big.safetensors")
    before = rss_mib()
    doc = open_document(path)  # what the window's open worker calls
    small, tail = doc.entry("small.weight"), doc.entry("tail.bias")
    shown = doc.read_private([small])  # what selecting a tensor does
    assert torch.equal(shown[0], torch.arange(16.0).reshape(4, 4)) and doc.is_private([small])
    doc.read_private([tail])
    assert doc.is_private([tail]) and torch.equal(tail.tensor(), torch.arange(8.0))
    assert rss_mib() - before < 256
    doc.close()
