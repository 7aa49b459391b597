"""Which tensors a damaged zip record holds: ``damaged_tensors(path, bad, tensors)``.

``verify_path`` names zip members (``archive/data/0``, ``shard.bin: archive/data/3``); a user
wants tensor names. Torch zip files and TorchScript archives are memory-mapped when opened, so a
tensor still backed by its file tells where its bytes lie: its storage address, found in a
mapping of that file (``/proc/self/maps``: address range, file offset, inode), gives the file
offset, and the record whose data holds that offset is the tensor's record. Tensors no longer
backed by the file (edited copies, lazily unread ones) and systems without that table are simply
not named; the caller lists the members instead.
"""
from __future__ import annotations

import os
import struct
import zipfile
from typing import Iterable

import torch

from .detect import SHARDED, detect, read_index
from ..model.file_stamps import file_mappings


def member_of(line: str, prefix: str = "") -> str | None:
    """The zip member a ``verify_path`` line is about (``prefix`` names a shard), or None."""
    if prefix:
        if not line.startswith(prefix + ": "):
            return None
        line = line[len(prefix) + 2:]
    member, sep, _reason = line.partition(": ")
    return member if sep else None


def damaged_tensors(path: str, bad: list[str],
                    tensors: Iterable[tuple[str, torch.Tensor]]) -> dict[str, str]:
    """``{tensor name: the verify line}`` for the tensors whose bytes lie in a bad record."""
    if not bad:
        return {}
    records = _bad_records(path, bad)  # inode -> [(start, end, line)]
    if not records:
        return {}
    maps = _file_maps(set(records))
    if not maps:
        return {}
    found: dict[str, str] = {}
    for name, t in tensors:
        try:
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
        except (RuntimeError, NotImplementedError):  # meta, sparse and such: no bytes of a file
            continue
        for start, end, offset, inode in maps:
            if start <= ptr < end:
                at = ptr - start + offset
                line = next((ln for s, e, ln in records[inode] if s <= at < e), None)
                if line is not None:
                    found[name] = line
                break
    return found


def has_checksums(path: str) -> bool:
    """Whether ``verify_path`` has anything to check: a zip file, or a shard that is one."""
    return any(os.path.isfile(f) and zipfile.is_zipfile(f) for _p, f in _files(path))


def _files(path: str) -> list[tuple[str, str]]:
    """(line prefix, file) for the zip files ``verify_path`` checks."""
    try:
        if detect(path) != SHARDED:
            return [("", path)]
        folder, index = read_index(path)
    except (ValueError, OSError):
        return []
    shards = dict.fromkeys(v for v in index.get("weight_map", {}).values() if isinstance(v, str))
    return [(s, os.path.join(folder, os.path.basename(s))) for s in shards]


def _bad_records(path: str, bad: list[str]) -> dict[int, list[tuple[int, int, str]]]:
    out: dict[int, list[tuple[int, int, str]]] = {}
    for prefix, file in _files(path):
        members = {m: line for line in bad if (m := member_of(line, prefix)) is not None}
        if not members:
            continue
        try:
            inode = os.stat(file).st_ino
            with zipfile.ZipFile(file) as z, open(file, "rb") as f:
                for member, line in members.items():
                    span = _data_span(z, f, member)
                    if span is not None:
                        out.setdefault(inode, []).append((*span, line))
        except (OSError, zipfile.BadZipFile, ValueError):
            continue
    return out


def _data_span(z: zipfile.ZipFile, f, member: str) -> tuple[int, int] | None:
    """Where a stored (uncompressed) member's bytes lie in the file."""
    try:
        info = z.getinfo(member)
    except KeyError:
        return None
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    f.seek(info.header_offset)
    head = f.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        return None
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    return start, start + max(info.file_size, 1)


def _file_maps(inodes: set[int]) -> list[tuple[int, int, int, int]]:
    """(start, end, file offset, inode) of this process's mappings of those files."""
    return file_mappings(inodes) or []
