"""What the window only looked at costs no memory (issue 9): the private copies ``read_private``
makes to show a tensor are released once another is read, unless the tensor was edited."""
import threading

import pytest
import torch

from app.core.formats import load_document


@pytest.fixture
def doc(tmp_path):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 32, generator=g)
    path = str(tmp_path / "ck.pt")
    torch.save({"a.weight": w, "tied.weight": w, "b.weight": torch.randn(100, generator=g),
                "c.weight": torch.randn(10, generator=g)}, path)
    d = load_document(path)
    yield d
    d.close()


def test_a_tensor_no_longer_shown_views_the_file_again(doc):
    a = doc.tensor("a.weight")
    want = a.clone()
    doc.read_private([doc.entry("a.weight")])
    assert not doc.file_backed(a)
    doc.read_private([doc.entry("b.weight")])
    assert doc.file_backed(a) and doc.tensor("a.weight") is a and torch.equal(a, want)
    assert a.data_ptr() == doc.tensor("tied.weight").data_ptr()  # the tie holds
    assert not doc.file_backed(doc.tensor("b.weight"))


def test_an_edited_tensor_keeps_its_copy(doc):
    a = doc.tensor("a.weight")
    doc.read_private([doc.entry("a.weight")])
    with torch.no_grad():
        a.mul_(2)
    want = a.clone()
    doc.read_private([doc.entry("b.weight")])
    assert not doc.file_backed(a) and torch.equal(a, want)
    doc.read_private([doc.entry("c.weight")])  # and stays kept
    assert not doc.file_backed(a) and torch.equal(a, want)


def test_reading_again_what_is_shown_keeps_it(doc):
    doc.read_private([doc.entry("a.weight"), doc.entry("b.weight")])
    doc.read_private([doc.entry("b.weight")])
    assert doc.file_backed(doc.tensor("a.weight"))
    assert not doc.file_backed(doc.tensor("b.weight"))


def test_a_worker_thread_never_releases(doc):
    doc.read_private([doc.entry("a.weight")])
    t = threading.Thread(target=doc.read_private, args=([doc.entry("b.weight")],))
    t.start()
    t.join()
    assert not doc.file_backed(doc.tensor("a.weight"))


def test_nothing_is_released_once_the_file_changed_on_disk(doc):
    a = doc.tensor("a.weight")
    doc.read_private([doc.entry("a.weight")])
    with open(doc.path, "r+b") as f:  # rewritten in place: what it maps is not to be trusted
        f.seek(100)
        f.write(b"x")
    doc.release_shown()
    assert not doc.file_backed(a)


def test_a_tensor_too_big_to_copy_is_shown_from_the_file(doc, monkeypatch):
    from app.core.model import file_backing
    monkeypatch.setattr(file_backing, "_COPY_LIMIT", 1024)
    big, small = doc.entry("a.weight"), doc.entry("c.weight")  # 8 KiB and 40 bytes
    out = doc.read_private([big, small])
    assert doc.file_backed(out[0]) and not doc.file_backed(out[1])
