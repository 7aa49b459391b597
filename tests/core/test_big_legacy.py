"""Legacy (non-zip) torch pickles open lazily: their storages view the file's mapping, copied
only where edited; weights-only rules are the same as torch.load's."""
import pickle

import pytest
import torch

from app.core.errors import UnsafePickleError
from app.core.formats import load_document
from app.core.formats.save import save_document
from app.core.formats.legacy_mapped import load_legacy_mapped
from torch import _weights_only_unpickler as wo


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def legacy(path, obj):
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    return str(path)


def checkpoint():
    torch.manual_seed(0)
    sd = {f"l{i}.weight": torch.randn(64, 33) for i in range(3)}
    sd.update(b=torch.arange(10), h=torch.randn(7).half(), bf=torch.randn(5).bfloat16(),
              flags=torch.tensor([True, False, True]))
    sd["alias"] = sd["l0.weight"][1:3]
    return {"model": sd, "epoch": 3, "note": "x"}


def test_a_legacy_pickle_views_the_file_and_reads_bit_exact(tmp_path):
    obj = checkpoint()
    path = legacy(tmp_path / "ck.pt", obj)
    doc = load_document(path)
    for name, t in obj["model"].items():
        got = doc.tensor(f"model.{name}")
        assert got.dtype == t.dtype and torch.equal(got, t)
        assert doc.file_backed(got)  # eagerly read (torch.load) it would be private memory
    assert doc.tensor("model.alias").untyped_storage().data_ptr() == \
        doc.tensor("model.l0.weight").untyped_storage().data_ptr()
    doc.close()


def test_a_big_legacy_pickle_costs_little_memory_until_touched(tmp_path):
    path = legacy(tmp_path / "big.pt", {f"w{i}": torch.ones(64 * 1024 ** 2 // 4) for i in range(6)})
    before = rss_mib()
    doc = load_document(path)
    assert rss_mib() - before < 128  # the file is 384 MiB; torch.load reads all of it
    assert float(doc.tensor("w5")[-1]) == 1.0


def test_edits_stay_in_memory_and_save_bit_exact(tmp_path):
    obj = checkpoint()
    path = legacy(tmp_path / "ck.pt", obj)
    before = open(path, "rb").read()
    doc = load_document(path)
    with torch.no_grad():
        doc.tensor("model.l1.weight").mul_(2)
    assert open(path, "rb").read() == before
    save_document(doc, str(tmp_path / "out.pt"))
    back = torch.load(tmp_path / "out.pt", weights_only=True)
    assert torch.equal(back["model"]["l1.weight"], obj["model"]["l1.weight"] * 2)
    assert torch.equal(back["model"]["bf"], obj["model"]["bf"]) and back["epoch"] == 3


def test_the_mapped_reader_uses_the_weights_only_unpickler(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    path = str(tmp_path / "evil.pt")
    torch.save({"w": torch.ones(2), "e": Evil()}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(pickle.UnpicklingError):
        load_legacy_mapped(path, lambda f: wo.Unpickler(f, encoding="utf-8"))
    with pytest.raises(UnsafePickleError):
        load_document(path)


def test_a_truncated_legacy_pickle_falls_back_to_one_error(tmp_path):
    path = legacy(tmp_path / "ck.pt", checkpoint())
    data = open(path, "rb").read()
    (tmp_path / "cut.pt").write_bytes(data[:-100])
    with pytest.raises(EOFError):
        load_legacy_mapped(str(tmp_path / "cut.pt"), lambda f: wo.Unpickler(f, encoding="utf-8"))
    from app.core.errors import CheckpointError
    with pytest.raises(CheckpointError):
        load_document(str(tmp_path / "cut.pt"))
