"""Saving a torch zip file after editing values only copies the opened file and rewrites the
edited storages (``torch_zip_stream``): the result loads bit-exactly, keeps key order, ties and
non-tensor entries, carries right CRCs, and anything structural still goes through torch.save."""
import collections
import os
import zipfile

import pytest
import torch

from app.core.formats import load_document
from app.core.formats.save import save_document
from app.core.formats.verify import verify_path


def bits(t):
    return t.contiguous().view(torch.uint8).numpy().tobytes()


def checkpoint(path):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 64, generator=g)
    sd = collections.OrderedDict(
        [("z.weight", w), ("a.bias", torch.arange(6)), ("tied", w),
         ("meta", {"epoch": 3, "half": torch.ones(3, dtype=torch.bfloat16)}), ("row", w[1])])
    torch.save(sd, path)
    return sd


def member(path, suffix):
    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith(suffix)))


def test_value_edit_streams_the_file_and_rewrites_only_the_edited_storage(tmp_path):
    src, out = tmp_path / "a.pt", tmp_path / "b.pt"
    sd = checkpoint(src)
    doc = load_document(str(src))
    with torch.no_grad():
        doc.entry("a.bias").tensor()[2] = 99
    save_document(doc, str(out))
    # torch.save writes a new serialization id: the copy keeps the opened file's
    assert member(out, ".data/serialization_id") == member(src, ".data/serialization_id")
    assert verify_path(str(out)) == []
    with zipfile.ZipFile(out) as z:
        assert z.testzip() is None  # every member's CRC-32 matches its bytes
    a, b = src.read_bytes(), out.read_bytes()
    assert len(a) == len(b)
    assert sum(x != y for x, y in zip(a, b)) <= 1 + 4 + 4  # one byte of data and two CRCs
    got = torch.load(out, weights_only=True)
    assert list(got) == list(sd)
    assert got["a.bias"].tolist() == [0, 1, 99, 3, 4, 5]
    assert bits(got["z.weight"]) == bits(sd["z.weight"])
    assert got["tied"].untyped_storage().data_ptr() == got["z.weight"].untyped_storage().data_ptr()
    assert got["meta"]["epoch"] == 3 and bits(got["meta"]["half"]) == bits(sd["meta"]["half"])
    assert torch.equal(got["row"], sd["z.weight"][1])


def test_edit_of_a_tied_tensor_and_save_in_place(tmp_path):
    src = tmp_path / "a.pt"
    checkpoint(src)
    doc = load_document(str(src))
    with torch.no_grad():
        doc.entry("tied").tensor().mul_(2)
    expected = doc.entry("z.weight").tensor().clone()
    save_document(doc, str(src))
    doc.close()
    assert verify_path(str(src)) == []
    got = torch.load(src, weights_only=True)
    assert bits(got["z.weight"]) == bits(expected) and bits(got["tied"]) == bits(expected)
    assert torch.equal(got["row"], expected[1])


def test_structural_change_goes_through_torch_save(tmp_path):
    src, out = tmp_path / "a.pt", tmp_path / "b.pt"
    checkpoint(src)
    doc = load_document(str(src))
    doc.replace_tensor("a.bias", doc.entry("a.bias").tensor().double())  # what a cast does
    doc.rename_tensor("z.weight", "y.weight")
    save_document(doc, str(out))
    assert member(out, ".data/serialization_id") != member(src, ".data/serialization_id")
    got = torch.load(out, weights_only=True)
    assert got["a.bias"].dtype == torch.float64 and list(got)[0] == "y.weight"
    assert verify_path(str(out)) == []


def test_unedited_save_is_a_copy(tmp_path):
    src, out = tmp_path / "a.pt", tmp_path / "b.pt"
    checkpoint(src)
    doc = load_document(str(src))
    doc.entry("z.weight").tensor()  # read, not edited
    save_document(doc, str(out))
    assert out.read_bytes() == src.read_bytes()


@pytest.mark.skipif(not os.path.exists("/proc/self/pagemap"), reason="needs /proc/self/pagemap")
def test_untouched_mapped_storages_are_not_read_back(tmp_path, monkeypatch):
    from app.core.formats import torch_zip_stream
    src, out = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save({"big": torch.randn(256, 256), "w": torch.randn(64, 64), "b": torch.zeros(4)}, src)
    doc = load_document(str(src))
    doc.entry("b").tensor().numpy()[1] = 7  # a write no version counter sees
    compared = []
    real = torch_zip_stream._same
    monkeypatch.setattr(torch_zip_stream, "_same", lambda fd, off, s, ranges=None:
                        compared.append((s.nbytes(), ranges)) or real(fd, off, s, ranges))
    save_document(doc, str(out))
    read_back = {n: sum(b - a for a, b in r) for n, r in compared}
    assert read_back[256 * 256 * 4] == 0 and read_back[16] == 16  # only the written page
    assert read_back[64 * 64 * 4] <= 4096  # a neighbour: only the page it shares, if any
    assert torch.load(out, weights_only=True)["b"].tolist() == [0, 7, 0, 0]
    assert verify_path(str(out)) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_streamed_save_in_place_killed_at_every_step_loads_old_or_new(tmp_path):
    import signal
    from app.core.formats import save as core_save
    path = str(tmp_path / "a.pt")
    old = {f"layer{i}.weight": torch.full((16, 16), float(i)) for i in range(4)}
    new = {**old, "layer2.weight": old["layer2.weight"] + 1}

    def state_is(expected):
        got = torch.load(path, weights_only=True)
        return list(got) == list(expected) and all(bits(got[n]) == bits(t) for n, t in expected.items())

    k = 1
    while True:
        torch.save(old, path)
        pid = os.fork()
        if pid == 0:  # the child: open, edit one value, save in place, SIGKILLed at step k
            try:
                signal.alarm(60)
                count = {"n": 0}

                def hook(_name):
                    count["n"] += 1
                    if count["n"] == k:
                        os.kill(os.getpid(), signal.SIGKILL)
                core_save.STEP_HOOK = hook
                doc = load_document(path)
                with torch.no_grad():
                    doc.entry("layer2.weight").tensor().add_(1)
                save_document(doc, path)
                os._exit(0)
            except BaseException:
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status)
        assert killed or os.WEXITSTATUS(status) == 0
        assert state_is(old) or state_is(new), f"killed at step {k}: neither old nor new"
        assert verify_path(path) == []
        if not killed:
            assert state_is(new)
            break
        k += 1
    assert k >= 3
