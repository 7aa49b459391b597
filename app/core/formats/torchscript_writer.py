"""Write an edited TorchScript archive back as a TorchScript archive.

An archive's tensors are raw, uncompressed zip records ``<archive>/data/<key>``, one per storage.
Writing back copies the source archive byte for byte, except for the bytes of the records whose
tensors were read (and so may have been edited) and their CRC-32 fields (in the data descriptor
or local header, and in the central directory). Everything else (code, constants, debug info,
the record order and alignment) stays byte-identical, so ``torch.jit.load`` of the output works
and shows the edited values. Nothing of the archive runs.

Only a document whose names, shapes and dtypes still match the archive can be written back
(renames, deletes and casts change the module's code contract): ``can_write_back``. A live
ScriptModule (from ``torch.jit.load`` under trust) is written with ``torch.jit.save``.
"""
from __future__ import annotations

import struct
import zipfile
import zlib
from typing import BinaryIO

import torch

from ..model.document import Document
from ..errors import UserError

CHUNK = 64 * 1024 * 1024


def _refs_by_name(hierarchy) -> dict:
    """name -> the archive's tensor description, named as the reader names its entries."""
    out: dict = {}

    def walk(m, prefix: str, active: set[int]) -> None:
        if id(m) in active:
            return
        active.add(id(m))
        for table in (m._parameters, m._buffers):
            for name, ref in table.items():
                if ref is not None:
                    out[prefix + name] = ref
        for child_name, child in m._modules.items():
            walk(child, f"{prefix}{child_name}.", active)
        active.discard(id(m))

    walk(hierarchy, "", set())
    return out


def why_not(doc: Document) -> str | None:
    """Why ``doc`` cannot be written back into its archive (None when it can)."""
    if isinstance(doc.module, torch.jit.ScriptModule):
        return None
    hierarchy = getattr(doc, "hierarchy", None)
    if hierarchy is None or not doc.path:
        return "it is not a TorchScript archive read by paramedit"
    refs = _refs_by_name(hierarchy)
    if sorted(refs) != sorted(doc.tensors):
        return "tensors were renamed, removed or added"
    for name, e in doc.tensors.items():
        ref = refs[name]
        if e.dtype != ref.storage.dtype or tuple(e.shape) != tuple(ref.shape):
            return f"{name} changed dtype or shape"
    return None


def can_write_back(doc: Document) -> bool:
    return why_not(doc) is None


def write_torchscript(f: BinaryIO, doc: Document) -> None:
    reason = why_not(doc)
    if reason is not None:
        raise UserError(f"cannot write a TorchScript archive: {reason}; save as .safetensors "
                        "(or choose 'PyTorch checkpoint') to get a state_dict")
    if isinstance(doc.module, torch.jit.ScriptModule):
        torch.jit.save(doc.module, f)
        return
    refs = _refs_by_name(doc.hierarchy)
    by_key: dict[str, list] = {}
    for name, e in doc.tensors.items():
        if e.is_loaded:  # never read, never edited: its record is copied as it is
            by_key.setdefault(refs[name].storage.key, []).append((refs[name], e))
    with open(doc.path, "rb") as src:
        _copy_patched(src, f, _Layout(src), by_key)


class _Layout:
    """Where each record's data, CRC fields and central directory entry lie in the zip."""

    def __init__(self, src: BinaryIO):
        try:
            zf = zipfile.ZipFile(src)
        except zipfile.BadZipFile as exc:
            raise UserError(f"the archive cannot be read back: {exc}") from None
        self.infos = {i.filename: i for i in zf.infolist()}
        roots = [n[:-len("/data.pkl")] for n in self.infos if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(roots) != 1:
            raise UserError("the archive has no single <archive>/data.pkl")
        self.prefix = roots[0]
        self.src = src
        self.central: dict[str, int] = {}
        pos = zf.start_dir
        for _ in range(len(zf.infolist())):
            src.seek(pos)
            head = src.read(46)
            if len(head) != 46 or head[:4] != b"PK\x01\x02":
                raise UserError("the archive's central directory is damaged")
            n, m, k = struct.unpack("<HHH", head[28:34])
            name = src.read(n).decode("utf-8", "replace")
            self.central[name] = pos
            pos += 46 + n + m + k

    def record(self, key: str) -> tuple[int, int, list[int], str]:
        """(data offset, size, positions of its CRC fields, name) of ``data/<key>``."""
        name = f"{self.prefix}/data/{key}"
        info = self.infos.get(name)
        if info is None or info.compress_type != zipfile.ZIP_STORED or name not in self.central:
            raise UserError(f"record data/{key} is missing or compressed")
        self.src.seek(info.header_offset)
        head = self.src.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            raise UserError(f"bad local header of data/{key}")
        n, m = struct.unpack("<HH", head[26:30])
        start = info.header_offset + 30 + n + m
        crcs = [self.central[name] + 16]
        if info.flag_bits & 0x08:  # a data descriptor after the data holds the CRC
            self.src.seek(start + info.compress_size)
            sig = self.src.read(4)
            crcs.append(start + info.compress_size + (4 if sig == b"PK\x07\x08" else 0))
        else:
            crcs.append(info.header_offset + 14)
        return start, info.file_size, crcs, name


def _storage_bytes(src: BinaryIO, start: int, size: int, users: list) -> bytearray:
    """The record's bytes with every loaded tensor viewing it written over its place."""
    src.seek(start)
    buf = bytearray(src.read(size))
    if len(buf) != size:
        raise UserError("the archive is truncated")
    raw = torch.frombuffer(buf, dtype=torch.uint8) if size else torch.empty(0, dtype=torch.uint8)
    for ref, e in users:
        dtype = ref.storage.dtype
        if ref.storage.numel * torch.empty((), dtype=dtype).element_size() > size:
            raise UserError(f"{e.name}: the archive's record is shorter than its storage")
        view = torch.empty(0, dtype=dtype).set_(raw.untyped_storage(), ref.offset, ref.shape, ref.stride)
        t = e.tensor().detach()
        if t.dtype != dtype or tuple(t.shape) != tuple(ref.shape):
            raise UserError(f"{e.name} changed dtype or shape; it cannot go back into the archive")
        with torch.no_grad():
            view.copy_(t)
    return buf


def _copy_patched(src: BinaryIO, out: BinaryIO, layout: _Layout, by_key: dict) -> None:
    """Stream ``src`` to ``out``, replacing changed records' data and CRC fields, in file order."""
    patches: list[tuple[int, int, object]] = []  # (offset, length, bytes or a record key)
    crc_of: dict[str, int] = {}
    for key in by_key:
        start, size, crc_fields, _name = layout.record(key)
        patches.append((start, size, key))
        patches.extend((pos, 4, ("crc", key)) for pos in crc_fields)
    patches.sort(key=lambda p: p[0])
    src.seek(0, 2)
    end = src.tell()
    pos = 0
    for offset, length, what in patches:
        _copy(src, out, pos, offset)
        if isinstance(what, tuple):  # a CRC field; every data record precedes its CRC fields
            out.write(struct.pack("<I", crc_of[what[1]]))
        else:
            buf = _storage_bytes(src, offset, length, by_key[what])
            crc_of[what] = zlib.crc32(buf) & 0xFFFFFFFF
            for start in range(0, len(buf), CHUNK):
                out.write(memoryview(buf)[start:start + CHUNK])
            del buf
        pos = offset + length
    _copy(src, out, pos, end)


def _copy(src: BinaryIO, out: BinaryIO, start: int, stop: int) -> None:
    src.seek(start)
    while start < stop:
        data = src.read(min(CHUNK, stop - start))
        if not data:
            raise UserError("the archive changed size while saving")
        out.write(data)
        start += len(data)
