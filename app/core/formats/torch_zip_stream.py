"""Save a torch zip checkpoint after editing values only, streaming the unchanged bytes.

When the checkpoint's structure is what the file holds (``torch.save`` would write the very same
``data.pkl``: same keys in the same order, same storages, dtypes and shapes, same non-tensor
entries), the new file is the opened file with the bytes of the edited storages replaced:
``stream_copy`` copies the whole file file to file (``copy_file_range``), then each storage whose
bytes differ from the file's is written over its member, and that member's CRC-32 is patched in
its local header and in the central directory. Every other member, its alignment and its CRC
stay exactly as they were. Anything else (a renamed, cast, added or deleted tensor, an entry
changed, a compressed or data-descriptor member, a file changed on disk) returns False and the
caller writes the file with ``torch.save``.
"""
from __future__ import annotations

import os
import pickle
import struct
import zipfile
import zlib
from typing import Any

import numpy as np
import torch

from .stream_copy import copy_range

_CHUNK = 16 * 1024 * 1024
_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_SMALL = ("data.pkl", ".format_version", ".storage_alignment", "byteorder")


class _Records:
    """Stands in for torch's zip writer: keeps what ``torch.serialization._save`` would write."""

    def __init__(self) -> None:
        self.records: dict[str, Any] = {}

    def write_record(self, name: str, data, nbytes: int) -> None:
        self.records[name] = data

    def write_record_metadata(self, name: str, nbytes: int) -> None:  # pragma: no cover
        raise RuntimeError("skip_data is not streamed")


def stream_save(f, doc, obj) -> bool:
    """Write ``obj`` (``doc``'s container) to ``f`` as a copy of ``doc``'s own torch zip file with
    only the changed storages rewritten; False (nothing written) when that cannot be done."""
    src = doc.path
    if (doc.module is not None or not src or getattr(doc, "detached", False)
            or doc.files_changed() or not os.path.isfile(src) or f.tell() != 0):
        return False
    records = _pickled(obj)
    if records is None:
        return False
    fd = os.open(src, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        plan = _plan(fd, src, records)
        if plan is None:
            return False
        clean = _CleanPages(fd)
        changed = [(off, info, storage) for off, info, storage in plan
                   if not _same(fd, off, storage, clean.dirty(off, storage))]
        try:
            central = _central_crc_fields(fd, {info.header_offset for _o, info, _s in changed})
            local = {info.header_offset: _local_crc_fields(fd, off, info) for off, info, _s in changed}
        except (ValueError, struct.error):
            return False
        size = os.fstat(fd).st_size
        copy_range(fd, 0, size, f, getattr(f, "copied", None))
        f.flush()
        out = f.fileno()
        for off, info, storage in changed:
            crc = struct.pack("<I", _write_storage(out, off, storage))
            for at in local[info.header_offset]:
                os.pwrite(out, crc, at)
            os.pwrite(out, crc, central[info.header_offset])
        f.seek(size)
        return True
    finally:
        os.close(fd)


def _pickled(obj) -> dict[str, Any] | None:
    """``{record: bytes or storage}`` that ``torch.save(obj)`` would write; None when torch's
    internal writer is not what this was written for."""
    rec = _Records()
    try:
        torch.serialization._save(obj, rec, pickle, 2, False)
    except Exception:  # noqa: BLE001  (a torch without this internal: torch.save writes it)
        return None
    return rec.records


def _plan(fd: int, src: str, records: dict[str, Any]):
    """``[(data offset, ZipInfo, storage)]`` of every storage member, when the file's other
    records equal the new ones byte for byte; None otherwise."""
    try:
        with zipfile.ZipFile(src) as z:
            infos = z.infolist()
            pkls = [i for i in infos if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
            if len(pkls) != 1:
                return None
            prefix = pkls[0].filename[:-len("data.pkl")]
            by_name = {i.filename: i for i in infos}
            for name in _SMALL:
                if name not in records:
                    continue
                info = by_name.get(prefix + name)
                new = records[name]
                new = new.encode() if isinstance(new, str) else bytes(new)
                if info is None or info.file_size != len(new) or z.read(info) != new:
                    return None
            plan = []
            for name, storage in records.items():
                if name in _SMALL:
                    continue
                info = by_name.get(prefix + name)
                if (not name.startswith("data/") or info is None
                        or not isinstance(storage, torch.UntypedStorage)
                        or storage.device.type != "cpu"
                        or info.compress_type != zipfile.ZIP_STORED
                        or info.file_size != storage.nbytes()):
                    return None
                plan.append((_data_offset(fd, info), info, storage))
            wanted = {prefix + n for n in records}
            extra = [i.filename for i in infos if i.filename not in wanted]
            if any(n.startswith(prefix + "data/") for n in extra):
                return None
            return plan
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError):
        return None


class _CleanPages:
    """Which storages still view, untouched, the opened file's own bytes: mapped (by
    ``torch.load(mmap=True)``, private) at the member's offset, and none of their pages made
    private by a write (``/proc/self/pagemap``: present pages are still file pages). Those are
    not read back to be compared: the file's bytes are theirs. Where the system cannot tell
    (no /proc), ``unchanged`` is False and the bytes are compared."""

    PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def __init__(self, fd: int):
        from ..model.file_stamps import file_mappings
        self.maps = file_mappings({os.fstat(fd).st_ino}) or []
        self._flags: dict[int, np.ndarray] = {}  # mapping start -> pagemap entries

    def dirty(self, offset: int, storage: torch.UntypedStorage) -> list[tuple[int, int]] | None:
        """Byte ranges of the storage (from its start) that a write may have changed: those on
        pages made private; None when unknown (not such a mapping: every byte may have)."""
        ptr, n = storage.data_ptr(), storage.nbytes()
        if n == 0:
            return []
        for start, end, file_off, _ino in self.maps:
            if start <= ptr and ptr + n <= end and ptr - start + file_off == offset:
                flags = self._pagemap(start, end)
                if flags is None:
                    return None
                first, last = (ptr - start) // self.PAGE, (ptr + n - 1 - start) // self.PAGE
                pages = flags[first:last + 1]
                present, swapped, file_page = pages >> 63 & 1, pages >> 62 & 1, pages >> 61 & 1
                private = np.flatnonzero(swapped | (present & (1 - file_page)))
                base = start + first * self.PAGE - ptr  # where the first page starts, in the storage
                return [(max(0, base + int(i) * self.PAGE), min(n, base + (int(i) + 1) * self.PAGE))
                        for i in private]
        return None

    def _pagemap(self, start: int, end: int) -> np.ndarray | None:
        if start not in self._flags:
            count = (end - start) // self.PAGE
            try:
                fd = os.open("/proc/self/pagemap", os.O_RDONLY)
                try:
                    raw = os.pread(fd, count * 8, start // self.PAGE * 8)
                finally:
                    os.close(fd)
            except OSError:
                raw = b""
            self._flags[start] = (np.frombuffer(raw, dtype="<u8") if len(raw) == count * 8
                                  else None)
        return self._flags[start]


def _data_offset(fd: int, info: zipfile.ZipInfo) -> int:
    head = os.pread(fd, 30, info.header_offset)
    if len(head) != 30 or head[:4] != _LOCAL:
        raise ValueError("no local header")
    n, m = struct.unpack("<HH", head[26:30])
    return info.header_offset + 30 + n + m


def _as_bytes(storage: torch.UntypedStorage) -> np.ndarray:
    if storage.nbytes() == 0:
        return np.empty(0, dtype=np.uint8)
    return torch.empty(0, dtype=torch.uint8).set_(storage).numpy()


def _same(fd: int, off: int, storage: torch.UntypedStorage,
          ranges: list[tuple[int, int]] | None = None) -> bool:
    """Whether the storage holds exactly the file's bytes at ``off``: compared over ``ranges``
    (the bytes a write may have changed), the whole storage when None, in chunks."""
    data = _as_bytes(storage)
    if ranges is None:
        ranges = [(0, data.nbytes)]
    for begin, stop in ranges:
        for start in range(begin, stop, _CHUNK):
            part = data[start:min(stop, start + _CHUNK)]
            disk = os.pread(fd, part.nbytes, off + start)
            if len(disk) != part.nbytes or not np.array_equal(np.frombuffer(disk, np.uint8), part):
                return False
    return True


def _write_storage(out: int, off: int, storage: torch.UntypedStorage) -> int:
    """Write the storage's bytes at ``off`` of ``out``; returns their CRC-32."""
    data = _as_bytes(storage)
    crc = 0
    for start in range(0, data.nbytes, _CHUNK):
        view = memoryview(data[start:start + _CHUNK])
        crc = zlib.crc32(view, crc)
        pos = off + start
        while view:
            n = os.pwrite(out, view, pos)
            view, pos = view[n:], pos + n
    return crc


def _local_crc_fields(fd: int, off: int, info: zipfile.ZipInfo) -> list[int]:
    """Where a member's CRC-32 is written before the central directory: its local header, or
    (torch's writer sets bit 3: the local header holds zero) the data descriptor after it."""
    found = []
    (local,) = struct.unpack("<I", os.pread(fd, 4, info.header_offset + 14))
    if local == info.CRC:
        found.append(info.header_offset + 14)
    elif local != 0:
        raise ValueError("the local header's CRC-32 disagrees with the central directory's")
    if info.flag_bits & 0x08:
        end = off + info.compress_size
        head = os.pread(fd, 8, end)
        at = end + 4 if head[:4] == b"PK\x07\x08" else end
        if struct.unpack("<I", os.pread(fd, 4, at))[0] != info.CRC:
            raise ValueError("the data descriptor's CRC-32 disagrees with the central directory's")
        found.append(at)
    if not found:
        raise ValueError("the member's CRC-32 is nowhere before the central directory")
    return found


def _central_crc_fields(fd: int, offsets: set[int]) -> dict[int, int]:
    """``{local header offset: file position of the CRC-32 in its central directory entry}`` for
    the members at ``offsets`` (the central directory read once, walked in memory)."""
    if not offsets:
        return {}
    start, size = _central_start(fd)
    cd = os.pread(fd, size, start)
    found: dict[int, int] = {}
    pos = 0
    while pos + 46 <= len(cd) and len(found) < len(offsets):
        if cd[pos:pos + 4] != _CENTRAL:
            break
        n, m, k = struct.unpack_from("<HHH", cd, pos + 28)
        (offset,) = struct.unpack_from("<I", cd, pos + 42)
        if offset == 0xFFFFFFFF:  # zip64: the offset is in the extra field
            offset = _zip64_offset(cd[pos + 46 + n:pos + 46 + n + m], cd[pos:pos + 46])
        if offset in offsets:
            found[offset] = start + pos + 16
        pos += 46 + n + m + k
    if len(found) != len(offsets):
        raise ValueError("a member is missing from the central directory")
    return found


def _central_start(fd: int) -> tuple[int, int]:
    """Where the central directory starts, and its size."""
    size = os.fstat(fd).st_size
    tail = os.pread(fd, min(size, 65536 + 22 + 20 + 56), max(0, size - (65536 + 22 + 20 + 56)))
    end = tail.rfind(b"PK\x05\x06")
    if end < 0:
        raise ValueError("no end of central directory")
    size, start = struct.unpack("<II", tail[end + 12:end + 20])
    if start == 0xFFFFFFFF or size == 0xFFFFFFFF:
        loc = tail.rfind(b"PK\x06\x07", 0, end)
        if loc < 0:
            raise ValueError("no zip64 end of central directory locator")
        (rec,) = struct.unpack("<Q", tail[loc + 8:loc + 16])
        size, start = struct.unpack("<QQ", os.pread(fd, 56, rec)[40:56])
    return start, size


def _zip64_offset(extra: bytes, head: bytes) -> int:
    """The local header offset from a zip64 extra field (after the sizes that overflowed)."""
    usize, csize = struct.unpack("<II", head[24:28] + head[20:24])
    pos = 0
    while pos + 4 <= len(extra):
        tag, ln = struct.unpack("<HH", extra[pos:pos + 4])
        if tag == 1:
            fields = extra[pos + 4:pos + 4 + ln]
            i = 0
            if usize == 0xFFFFFFFF:
                i += 8
            if csize == 0xFFFFFFFF:
                i += 8
            return struct.unpack("<Q", fields[i:i + 8])[0]
        pos += 4 + ln
    raise ValueError("zip64 entry without its offset")
