"""A DCP folder's rank files rewritten under an open document (issue 15): ``.metadata`` and every
``.distcp`` file are stamped, so a tensor assembled from a rewritten rank file is refused (never
stale values, never another checkpoint's bytes), and saving the folder in place is not a change."""
from __future__ import annotations

import os

import pytest
import torch

from app.core.formats import dcp as dcp_format
from app.core.formats import load_document
from app.core.formats.save import save_document
from app.core.model.file_stamps import FileChangedError, source_files
from tests.dcp_make import write_chunked


def _tensors(shift: float = 0.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {"w": torch.randn(6, 4, generator=g) + shift, "b": torch.randn(6, generator=g) + shift}


@pytest.fixture
def folder(tmp_path):
    return write_chunked(tmp_path / "ck", _tensors(), ranks=2, values={"step": 1})


def test_the_metadata_and_every_rank_file_are_stamped(folder):
    doc = load_document(folder)
    assert sorted(os.path.basename(p) for p in doc.files.paths) == [
        ".metadata", "__0_0.distcp", "__1_0.distcp"]
    assert source_files(os.path.join(folder, ".metadata")) == [os.path.join(folder, ".metadata")]


@pytest.mark.parametrize("shift", [1.0, None], ids=["same-size", "truncated"])
def test_a_rank_file_rewritten_in_place_is_detected_before_a_read(folder, shift):
    doc = load_document(folder)
    kept = doc.read_private([doc.entry("b")])[0].clone()
    rank1 = os.path.join(folder, "__1_0.distcp")
    if shift is None:
        with open(rank1, "r+b") as f:  # truncated in place: same inode
            f.truncate(10)
    else:  # the same layout with other values, written into the same inode
        other = write_chunked(os.path.join(os.path.dirname(folder), "other"), _tensors(shift), ranks=2,
                              values={"step": 1})
        data = open(os.path.join(other, "__1_0.distcp"), "rb").read()
        assert len(data) == os.path.getsize(rank1)
        with open(rank1, "r+b") as f:
            f.write(data)
        os.utime(rank1, ns=(0, os.stat(rank1).st_mtime_ns + 10**9))
    assert doc.files_changed() == [rank1]
    with pytest.raises(FileChangedError, match="changed on disk"):
        doc.tensor("w")  # half of it lies in the rewritten rank file
    assert torch.equal(doc.tensor("b"), kept)  # read before: the values as they were
    with pytest.raises(FileChangedError):
        doc.check_files()  # a save would assemble from the rewritten file
    assert doc.detach_from_files() == ["w"]


def test_an_unpinned_rank_file_replaced_by_rename_is_refused(folder, monkeypatch):
    monkeypatch.setattr(dcp_format, "PIN_AT_OPEN", 0)  # a folder of more ranks than are kept open
    doc = load_document(folder)
    other = write_chunked(os.path.join(os.path.dirname(folder), "other"), _tensors(1.0), ranks=2)
    os.replace(os.path.join(other, "__1_0.distcp"), os.path.join(folder, "__1_0.distcp"))
    with pytest.raises(FileChangedError, match="__1_0.distcp changed on disk"):
        doc.tensor("w")  # opened only now: the new file's values would be read as the old


def test_saving_the_folder_in_place_is_not_a_change(folder):
    doc = load_document(folder)
    doc.tensor("b")[0] = 5.0
    save_document(doc, doc.path)
    assert doc.files_changed()  # every file was replaced by the save
    doc.restamp(doc.path)  # as the window does after its own save
    assert doc.files_changed() == []
    assert torch.equal(doc.tensor("w"), _tensors()["w"])  # unread: from the old files, kept open


def test_a_replaced_metadata_is_a_change_but_not_a_danger(folder):
    doc = load_document(folder)
    meta = os.path.join(folder, ".metadata")
    with open(meta, "r+b") as f:  # same inode (as a replacement reusing the freed inode reads)
        f.write(f.read())
    os.utime(meta, ns=(0, os.stat(meta).st_mtime_ns + 10**9))
    assert doc.files_changed() == [meta]
    assert torch.equal(doc.tensor("w"), _tensors()["w"])  # read whole at open: nothing at risk
