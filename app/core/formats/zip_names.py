"""A zip archive's member table, read straight from its central directory.

``zipfile`` builds a ZipInfo per member: a second at 100k tensors of a torch zip file. torch's own
reader (miniz, in C++) holds the GIL for ~0.1 s sorting 100k names. This loop is plain Python:
other threads (the window) get the GIL every switch interval while it runs.
"""
from __future__ import annotations

import os
import struct
import zipfile
from typing import NamedTuple

_U32 = 0xFFFFFFFF


class Member(NamedTuple):
    name: str
    method: int          # 0: stored
    flags: int
    compressed: int      # bytes in the archive
    size: int            # bytes once extracted
    header_offset: int   # where the member's local header starts


def central_names(path: str) -> list[str] | None:
    """Member names read straight from the zip's central directory; None for anything unusual
    (a comment, a prefix, a bad record): zipfile then reads it, and says what is wrong."""
    found = _walk(path, _NAMES)
    return None if found is None else found[0]


def central_listing(path: str) -> tuple[list[str], list[Member]] | None:
    """Every member's name, and the compressed members (those a reader must inflate) in full;
    None for anything unusual, as ``central_names``. A torch.save file has no compressed member,
    so this costs what ``central_names`` does."""
    return _walk(path, _COMPRESSED)


def central_members(path: str) -> list[Member] | None:
    """Every member of the archive at ``path`` in central-directory order; None for anything
    unusual (a comment, a prefix, a split archive, a bad record)."""
    found = _walk(path, _ALL)
    return None if found is None else found[1]


def stored_only(path: str) -> bool:
    """Whether no member is compressed: ``torch.load(mmap=True)`` maps every record as if it
    were stored, so a compressed one (a checkpoint re-zipped by hand) reads as its compressed
    bytes, or fails where those are fewer. True for what is not a readable zip."""
    found = central_listing(path)
    if found is not None:
        return not found[1]
    try:
        with zipfile.ZipFile(path) as z:
            return all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
        return True


_NAMES, _COMPRESSED, _ALL = range(3)


def _walk(path: str, keep: int) -> tuple[list[str], list[Member]] | None:
    """(names, members) of the central directory: names unless ``keep`` is ``_ALL``, members
    as ``keep`` says (strings are not tracked by the cyclic collector: 100k tuples would start
    it)."""
    try:
        with open(path, "rb") as f:
            found = _central_directory(f)
    except OSError:
        return None
    if found is None:
        return None
    cd, count = found
    names, members, pos = [], [], 0
    unpack = struct.unpack_from
    for _ in range(count):
        if cd[pos:pos + 4] != b"PK\x01\x02" or pos + 46 > len(cd):
            return None
        flags, method = unpack("<HH", cd, pos + 8)
        compressed, size = unpack("<II", cd, pos + 20)
        n, m, k = unpack("<HHH", cd, pos + 28)
        (offset,) = unpack("<I", cd, pos + 42)
        raw = cd[pos + 46:pos + 46 + n]
        try:
            name = raw.decode("utf-8" if flags & 0x800 else "cp437")
        except UnicodeDecodeError:
            return None
        if _U32 in (compressed, size, offset):
            wide = _zip64_values(cd[pos + 46 + n:pos + 46 + n + m], size, compressed, offset)
            if wide is None:
                return None
            size, compressed, offset = wide
        if keep != _ALL:
            names.append(name)
        if keep == _ALL or keep == _COMPRESSED and method:
            members.append(Member(name, method, flags, compressed, size, offset))
        pos += 46 + n + m + k
    return (names, members) if pos == len(cd) else None


def _central_directory(f) -> tuple[bytes, int] | None:
    size = os.fstat(f.fileno()).st_size
    if size < 22:
        return None
    f.seek(size - 22)
    end = f.read(22)
    if end[:4] != b"PK\x05\x06":
        return None
    count, cd_size, cd_start = struct.unpack("<HII", end[10:20])
    cd_end = size - 22
    if size >= 22 + 20 + 56:  # a zip64 end record (torch's writer always adds one)
        f.seek(size - 22 - 20)
        loc = f.read(20)
        if loc[:4] == b"PK\x06\x07":
            (cd_end,) = struct.unpack("<Q", loc[8:16])
            if cd_end != size - 22 - 20 - 56:
                return None
            f.seek(cd_end)
            rec = f.read(56)
            if rec[:4] != b"PK\x06\x06":
                return None
            count, cd_size, cd_start = struct.unpack("<QQQ", rec[32:56])
    if cd_start + cd_size != cd_end:
        return None
    f.seek(cd_start)
    cd = f.read(cd_size)
    return (cd, count) if len(cd) == cd_size else None


def _zip64_values(extra: bytes, size: int, compressed: int, offset: int):
    """The 64-bit values a zip64 extra field holds for those stored as 0xFFFFFFFF, in the
    order the format gives them (size, compressed size, header offset); None if missing."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4:pos + 4 + length]
        if tag == 1:
            values, at = [], 0
            for v in (size, compressed, offset):
                if v == _U32:
                    if at + 8 > len(body):
                        return None
                    v = struct.unpack_from("<Q", body, at)[0]
                    at += 8
                values.append(v)
            return tuple(values)
        pos += 4 + length
    return None
