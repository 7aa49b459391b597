"""Naming the tensors a damaged zip record holds (issue 9: ``verify`` names zip members; the
window names tensors). Real files with one record's byte flipped; the zip stays readable."""
from __future__ import annotations

import json
import os
import struct
import zipfile

import torch

from app.core.formats import load_document, verify_document
from app.core.formats.verify_names import damaged_tensors, has_checksums, member_of
from tests.checkpoints import save_sharded_safetensors, save_sharded_torch


def flip_record(path: str, tensor_name: str, sd: dict) -> str:
    """Flip one byte inside the zip record holding ``sd[tensor_name]`` (the zip stays readable:
    only the record's CRC no longer matches). Returns the member's name."""
    target = sd[tensor_name].numpy().tobytes()
    with zipfile.ZipFile(path) as z:
        infos = [i for i in z.infolist() if "/data/" in i.filename]
        info = next(i for i in infos if z.read(i) == target)
    with open(path, "r+b") as f:
        f.seek(info.header_offset)
        head = f.read(30)
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        at = info.header_offset + 30 + name_len + extra_len + 1
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x40]))
    return info.filename


def tensors_of(doc):
    return [(e.name, e.tensor()) for e in doc.tensors.values()]


def test_member_of_lines():
    assert member_of("archive/data/0: CRC mismatch") == "archive/data/0"
    assert member_of("s-1.bin: archive/data/3: unreadable (x: y)", "s-1.bin") == "archive/data/3"
    assert member_of("s-2.bin: archive/data/3: CRC mismatch", "s-1.bin") is None


def test_a_flipped_record_names_its_tensor(tmp_path):
    g = torch.Generator().manual_seed(2)
    sd = {"a.w": torch.randn(5, 3, generator=g), "b.w": torch.randn(7, generator=g),
          "c.w": torch.randn(2, 2, generator=g)}
    path = str(tmp_path / "one.pt")
    torch.save(sd, path)
    member = flip_record(path, "b.w", sd)
    doc = load_document(path)
    bad = verify_document(path)
    assert bad == [f"{member}: CRC mismatch"]
    assert damaged_tensors(path, bad, tensors_of(doc)) == {"b.w": bad[0]}
    assert damaged_tensors(path, [], tensors_of(doc)) == {}
    doc.close()


def test_sharded_torch_checkpoint(tmp_path):
    g = torch.Generator().manual_seed(4)
    sd = {f"layer.{i}.weight": torch.randn(3, 4, generator=g) for i in range(4)}
    index = save_sharded_torch(sd, str(tmp_path / "sharded"), per_shard=2)
    folder = os.path.dirname(index)
    weight_map = json.load(open(index))["weight_map"]
    shard = weight_map["layer.3.weight"]
    member = flip_record(os.path.join(folder, shard), "layer.3.weight", sd)
    doc = load_document(folder)
    bad = verify_document(folder)
    assert bad == [f"{shard}: {member}: CRC mismatch"]
    assert has_checksums(folder)
    found = damaged_tensors(folder, bad, tensors_of(doc))
    assert found == {"layer.3.weight": bad[0]}
    doc.close()


def test_safetensors_have_no_checksums(tmp_path):
    index = save_sharded_safetensors({"x": torch.zeros(2), "y": torch.ones(2)},
                                     str(tmp_path / "st"), per_shard=1)
    assert not has_checksums(os.path.dirname(index))
