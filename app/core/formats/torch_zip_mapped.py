"""Plain torch zip checkpoints read without torch's zip reader: what ``torch.load(mmap=True,
weights_only=True)`` returns, built from the central directory and ``data.pkl`` in Python.

At 100k tensors torch's reader holds the GIL for ~0.1 s at a time (the window freezes) and its
weights-only unpickler takes ~10 s; here the member table is a Python loop, the pickle goes
through ``state_pickle`` (an allowlist of opcodes and globals), and every storage is a slice of
one copy-on-write mapping of the file, exactly as ``torch.load(mmap=True)`` makes them.
Anything this reader does not take as plain (a compressed member, big-endian data, a global
outside its list, a reference past the end of the file) raises ``NotPlain``, and the caller
reads the file with ``torch.load`` as before.
"""
from __future__ import annotations

import os
import struct
import sys
from typing import Any, Callable

import torch

from .state_pickle import NotPlain, Refused, Stored, load_plain
from .zip_names import Member, central_members

__all__ = ["NotPlain", "Refused", "load_zip_mapped"]


def load_zip_mapped(path: str, pace: Callable[[], None] = lambda: None) -> Any:
    """The checkpoint object of the torch zip file at ``path``, its tensors viewing the file."""
    members = central_members(path)
    if not members:
        raise NotPlain("an unusual zip layout")
    prefix = members[0].name.split("/", 1)[0] + "/"
    # torch's reader finds a member by its name with ASCII letters in either case
    by_name = {m.name.translate(_ASCII_LOWER): m for m in members}
    if len(by_name) != len(members) or any(not m.name.startswith(prefix) for m in members):
        raise NotPlain("names repeated (in either case) or more than one top folder")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for m in members:
            _span(None, m, size, m.size)  # every member as torch's reader checks them
        fd = f.fileno()

        def member_bytes(name: str) -> bytes | None:
            m = by_name.get((prefix + name).translate(_ASCII_LOWER))
            return None if m is None else _read(fd, _span(fd, m, size, m.size))

        _check_records(member_bytes)
        data = member_bytes("data.pkl")
        if data is None:
            raise NotPlain("no data.pkl")
        storages = _Storages(path, size, fd, by_name, prefix)
        try:
            return load_plain(data, storages.get, pace)
        finally:
            storages.close()


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _check_records(member_bytes) -> None:
    """The small records torch's reader reads and checks before the pickle."""
    version = member_bytes("version") or member_bytes(".data/version")
    if version is None or not version.strip().isdigit() or not 1 <= int(version) <= 10:
        raise NotPlain("no format version this reader knows")
    for name in (".format_version", ".storage_alignment"):
        value = member_bytes(name)
        if value is not None and not value.strip().isdigit():
            raise NotPlain(f"a {name} record that is not a number")
    order = member_bytes("byteorder")
    if order not in (None, b"little") or sys.byteorder != "little":
        raise NotPlain("data that is not little-endian")


class _Storages:
    """Each storage a slice of one private mapping of the file, made when first named."""

    def __init__(self, path: str, size: int, fd: int, by_name: dict, prefix: str):
        self._path, self._size, self._fd = path, size, fd
        self._by_name, self._prefix = by_name, prefix
        self._file: torch.UntypedStorage | None = None
        self._made: dict[str, Stored] = {}
        self._sizes: dict[torch.dtype, int] = {}

    def get(self, key: str, dtype: torch.dtype, numel: int) -> Stored:
        found = self._made.get(key)
        if found is not None:
            if found.dtype != dtype:
                raise NotPlain("one storage named with two dtypes")
            return found
        m = self._by_name.get(f"{self._prefix}data/{key}".translate(_ASCII_LOWER))
        nbytes = numel * self._element_size(dtype)
        if m is None or m.size != nbytes:
            raise NotPlain("a storage whose member is missing or of another size")
        span = _span(self._fd, m, self._size, nbytes)
        if self._file is None:
            self._file = torch.UntypedStorage.from_file(self._path, False, self._size)
        stored = self._made[key] = Stored(self._file[span.start:span.stop], dtype)
        return stored

    def close(self) -> None:
        """Only the tensors keep the mapping: it goes when the last of them does."""
        self._file, self._fd = None, -1
        self._made.clear()

    def _element_size(self, dtype: torch.dtype) -> int:
        n = self._sizes.get(dtype)
        if n is None:
            n = self._sizes[dtype] = torch.empty((), dtype=dtype).element_size()
        return n


def _span(fd: int | None, m: Member, size: int, nbytes: int) -> slice | None:
    """Where a stored member's bytes lie in the file (its local header says how long the name
    and extra field before them are); with no ``fd``, only the central record's own checks.
    Read with ``pread``, which lets the GIL go while the disk works; a page fault of a mapping
    would hold it (a file not yet in the page cache)."""
    if m.method != 0 or m.compressed != m.size or m.flags & 0x41 \
            or m.header_offset + 30 + m.size > size:
        raise NotPlain("a compressed, encrypted or misplaced member")
    if fd is None:
        return None
    head = os.pread(fd, 30, m.header_offset)
    if head[:4] != b"PK\x03\x04" or len(head) < 30:
        raise NotPlain("a member without its local header")
    n, extra = struct.unpack_from("<HH", head, 26)
    start = m.header_offset + 30 + n + extra
    if start + nbytes > size:
        raise NotPlain("a member reaching past the end of the file")
    return slice(start, start + nbytes)


def _read(fd: int, span: slice) -> bytes:
    parts, at = [], span.start
    while at < span.stop:
        chunk = os.pread(fd, span.stop - at, at)
        if not chunk:
            raise NotPlain("a member cut short")
        parts.append(chunk)
        at += len(chunk)
    return b"".join(parts)
