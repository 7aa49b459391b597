"""DCP folders written through torch's stream transforms (``FileSystemWriter(_extensions=...)``,
issue 15): read with torch's own extension classes when paramedit knows the transform, saved back
through the same transforms, refused in one line naming the transform otherwise."""
from __future__ import annotations

import importlib.util
import os
import pickle

import pytest
import torch

from app.core.errors import CheckpointError, ContentError
from app.core.formats import dcp_transforms, load_document
from app.core.formats.save import save_document
from tests.dcp_make import save_through, transforms

RawZstd, Xor, Bomb = transforms()
HAS_ZSTD = any(importlib.util.find_spec(m) for m in ("zstandard", "pyzstd"))


def _state():
    g = torch.Generator().manual_seed(5)
    return {"model": {"w": torch.randn(33, 7, generator=g), "b": torch.arange(9, dtype=torch.int16)},
            "step": 40}


def _descriptors(folder) -> set:
    with open(os.path.join(folder, ".metadata"), "rb") as f:  # our own test file: plain pickle
        meta = pickle.load(f)
    return {tuple(i.transform_descriptors or ()) for i in meta.storage_data.values()}


def test_a_known_transform_is_decoded_and_kept_when_saving_back(tmp_path, monkeypatch):
    monkeypatch.setitem(dcp_transforms.KNOWN, "test.xor", Xor)  # as if torch shipped it
    sd = _state()
    folder = save_through(sd, tmp_path / "ck", [Xor()])
    assert _descriptors(folder) == {("test.xor/1",)}
    doc = load_document(folder)
    assert torch.equal(doc.tensor("model.w"), sd["model"]["w"])
    assert torch.equal(doc.tensor("model.b"), sd["model"]["b"])
    assert doc.entries == {"step": "int: 40"}
    doc.tensor("model.b")[0] = 99
    out = str(tmp_path / "back")
    save_document(doc, out)
    assert _descriptors(out) == {("test.xor/1",)}  # written through the transform again
    back = load_document(out)
    assert back.tensor("model.b")[0] == 99 and back.entries == {"step": "int: 40"}
    assert torch.equal(back.tensor("model.w"), sd["model"]["w"])


def test_an_unknown_transform_is_refused_in_one_line_naming_it(tmp_path):
    folder = save_through(_state(), tmp_path / "ck", [Xor()])  # not in paramedit's allowlist
    with pytest.raises(CheckpointError, match=r"stored through the transform 'test.xor/1', which "
                                           r"paramedit does not read") as info:
        load_document(folder)
    assert "\n" not in str(info.value)


def test_zstd_without_its_package_is_refused_naming_the_transform_and_package(tmp_path, monkeypatch):
    from torch.distributed.checkpoint import _extension
    folder = save_through(_state(), tmp_path / "ck", [RawZstd()])
    monkeypatch.setattr(_extension, "zstandard", None)  # as on a machine without either package
    monkeypatch.setattr(_extension, "pyzstd", None)
    assert _descriptors(folder) == {("stream.zstd/1",)}
    with pytest.raises(CheckpointError, match=r"'stream.zstd/1', which cannot be read here "
                                           r"\(.*zstandard") as info:
        load_document(folder)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(not HAS_ZSTD, reason="needs the zstandard or pyzstd package")
def test_zstd_is_read_with_torchs_zstandard_class(tmp_path):
    sd = _state()
    folder = save_through(sd, tmp_path / "ck", [RawZstd()])  # genuine zstd frames
    doc = load_document(folder)
    assert torch.equal(doc.tensor("model.w"), sd["model"]["w"])
    save_document(doc, str(tmp_path / "back"))
    assert _descriptors(str(tmp_path / "back")) == {("stream.zstd/1",)}


def test_another_version_of_a_known_transform_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(dcp_transforms.KNOWN, "test.xor", Xor)
    folder = save_through(_state(), tmp_path / "ck", [Xor()])

    def bump(meta):
        for info in meta.storage_data.values():
            info.transform_descriptors = ["test.xor/2"]
    with open(os.path.join(folder, ".metadata"), "rb") as f:
        meta = pickle.load(f)
    bump(meta)
    with open(os.path.join(folder, ".metadata"), "wb") as f:
        pickle.dump(meta, f)
    with pytest.raises(CheckpointError, match=r"'test.xor/2', which cannot be read here"):
        load_document(folder)


def test_a_record_decoding_beyond_its_tensor_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(dcp_transforms.KNOWN, "test.bomb", Bomb)
    folder = save_through({"w": torch.zeros(4)}, tmp_path / "ck", [Bomb()])
    doc = load_document(folder)
    with pytest.raises(ContentError, match="decodes to more than"):
        doc.tensor("w")


@pytest.mark.parametrize("descriptors", ["stream.zstd/1", [["stream.zstd/1"]], [None]],
                         ids=["text", "nested", "none"])
def test_malformed_transform_descriptors_are_refused_in_one_line(tmp_path, descriptors):
    from tests.dcp_make import write_chunked

    def spoil(meta):
        for info in meta.storage_data.values():
            info.transform_descriptors = descriptors
    folder = write_chunked(tmp_path / "ck", {"w": torch.ones(4)}, ranks=1, metadata_hook=spoil)
    with pytest.raises(CheckpointError, match="transform") as info:
        load_document(folder)
    assert "\n" not in str(info.value)
