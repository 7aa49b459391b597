"""Issue 15: a worker reading a big file lets a waiting thread (the GUI) have the GIL. torch.load
drops and retakes the GIL for every tensor it rebuilds, too briefly for a woken waiter to get it;
the loader pauses now and then (``gil_pacer``), and the checksum pass reads the file in large
windows rather than once per record."""
from __future__ import annotations

import os
import threading

import pytest
import torch

from app.core import gil_pacer
from app.core.formats import load_document, verify_document


def _many(path, n):
    torch.save({f"t{i}": torch.full((2,), float(i)) for i in range(n)}, str(path))
    return str(path)


def _in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_a_torch_zip_read_in_a_worker_pauses_between_tensors(tmp_path, monkeypatch):
    path = _many(tmp_path / "m.pt", 300)
    monkeypatch.setattr(gil_pacer, "PERIOD_S", 0.0)  # a pause at every storage
    monkeypatch.setattr(gil_pacer, "PAUSE_S", 0.0)
    before = gil_pacer.Pacer.total
    doc = _in_thread(lambda: load_document(path))
    assert gil_pacer.Pacer.total - before >= 300
    assert float(doc.tensor("t7")[0]) == 7.0 and doc.tensor("t7").device.type == "cpu"
    doc.close()


def test_the_main_thread_never_pauses(tmp_path, monkeypatch):
    path = _many(tmp_path / "m.pt", 50)
    monkeypatch.setattr(gil_pacer, "PERIOD_S", 0.0)
    before = gil_pacer.Pacer.total
    load_document(path).close()
    assert gil_pacer.Pacer.total == before


class _DeviceTensor:
    """Pickles as torch does a tensor of a device without storage (XLA, ...): rebuilt from a CPU
    copy for a device name, which torch refuses to take from a callable ``map_location``."""

    def __reduce_ex__(self, _protocol):
        return (torch._utils._rebuild_device_tensor_from_cpu_tensor,
                (torch.arange(3.0), torch.float32, "cpu", False))


def test_a_tensor_rebuilt_for_a_device_still_loads_in_a_worker(tmp_path):
    path = str(tmp_path / "device.pt")
    torch.save({"d": _DeviceTensor(), "w": torch.ones(2)}, path)
    doc = _in_thread(lambda: load_document(path))
    assert doc.tensor("d").tolist() == [0.0, 1.0, 2.0] and doc.tensor("w").sum() == 2
    doc.close()


def _read_syscalls() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("syscr:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="Linux's per-process I/O counts")
def test_checksums_of_small_records_are_read_in_a_few_reads(tmp_path):
    path = _many(tmp_path / "m.pt", 3000)
    before = _read_syscalls()
    assert verify_document(path) == []
    assert _read_syscalls() - before < 100  # one read per record (3000+) let the GIL go each time


def test_the_checksum_pass_never_runs_the_cyclic_collector(tmp_path):
    """Each collection walked the ZipInfo objects piling up, holding the GIL (100+ ms at 100k)."""
    import gc
    path = _many(tmp_path / "m.pt", 3000)
    runs = []

    def count(phase, _info):
        if phase == "start":
            runs.append(1)
    gc.callbacks.append(count)
    try:
        assert verify_document(path) == []
    finally:
        gc.callbacks.remove(count)
    assert runs == []
