"""Noticing that the files of an open document changed on disk, and what memory they back.

A torch checkpoint is memory-mapped: when another process rewrites the file (``torch.save`` to
the open path truncates it), touching a mapped page past the new end kills the process with
SIGBUS, and a same-size rewrite silently shows the new file's values. So every read of file data
is preceded by a cheap ``os.stat`` comparison of (inode, size, mtime_ns), and data already
copied to private memory is told apart from data still backed by the file. A file replaced by a
rename (an atomic save, ours included) is a change the window reports, not a danger: the old
inode stays intact for as long as it is mapped.
"""
from __future__ import annotations

import os
from typing import Iterable, NamedTuple

from ..errors import UserError

_SUFFIXES = (".safetensors", ".json", ".bin", ".pt", ".pth", ".ckpt")
#: a torch.distributed.checkpoint folder: its metadata and the rank files it points into
DCP_METADATA, DCP_SUFFIX = ".metadata", ".distcp"


class FileChangedError(UserError):
    """A document's file changed on disk since it was opened; its data may no longer be read."""


class Stamp(NamedTuple):
    device: int
    inode: int
    size: int
    mtime_ns: int


def stamp(path: str) -> Stamp | None:
    """The file's identity and version now; None when it is gone or unreadable."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return Stamp(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def source_files(path: str | None) -> list[str]:
    """The files a document opened from ``path`` reads: the file itself, for a sharded
    checkpoint (its folder or its index) the checkpoint files of that folder, for a DCP folder
    its ``.metadata`` and every ``.distcp`` rank file."""
    if not path:
        return []
    path = os.path.abspath(path)
    folder = path if os.path.isdir(path) else None
    if folder is None and path.endswith(".index.json"):
        folder = os.path.dirname(path)
    if folder is None:
        return [path] if os.path.isfile(path) else []
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    if DCP_METADATA in names:
        keep = [n for n in names if n == DCP_METADATA or n.endswith(DCP_SUFFIX)]
    else:
        keep = [n for n in names if n.endswith(_SUFFIXES) and not n.startswith(".")]
    return [os.path.join(folder, n) for n in keep if os.path.isfile(os.path.join(folder, n))]


class FileStamps:
    """The stamps of some files, taken once; ``changed()`` says which differ now."""

    def __init__(self, paths: Iterable[str]):
        self.stamps: dict[str, Stamp | None] = {p: stamp(p) for p in paths}
        #: files another process is about to rewrite: its ``open`` waits on our lease
        #: (``file_lease``); they count as rewritten before a byte of them changed
        self.breaking: set[str] = set()

    @property
    def paths(self) -> list[str]:
        return list(self.stamps)

    def changed(self) -> list[str]:
        """Files that differ in any way: rewritten, replaced (a new inode), or gone."""
        return [p for p, s in self.stamps.items() if p in self.breaking or stamp(p) != s]

    def rewritten(self) -> list[str]:
        """Files whose very inode was written since (``torch.save`` to the path truncates and
        rewrites it): its mapped pages now hold other bytes, or none (SIGBUS). A file replaced
        by a rename, or deleted, leaves the old inode intact while it stays mapped."""
        out = []
        for p, s in self.stamps.items():
            if os.path.basename(p) == DCP_METADATA:
                continue  # read whole at open, never again (and a replacement may reuse its inode)
            if p in self.breaking:
                out.append(p)
                continue
            now = stamp(p)
            if s is not None and now is not None and now[:2] == s[:2] and now != s:
                out.append(p)
        return out

    def refresh(self) -> None:
        self.stamps = {p: stamp(p) for p in self.stamps}

    def inodes(self) -> set[tuple[int, int]]:
        return {(s.device, s.inode) for s in self.stamps.values() if s is not None}


def file_mappings(inodes: set[int]) -> list[tuple[int, int, int, int]] | None:
    """``(start, end, file offset, inode)`` of this process's mappings of files with those
    inodes, read from ``/proc/self/maps``; None where the system has no such table."""
    try:
        with open("/proc/self/maps") as f:
            lines = f.readlines()
    except OSError:
        return None
    out = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        try:
            ino = int(parts[4])
            if not ino or ino not in inodes:
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            out.append((start, end, int(parts[2], 16), ino))
        except ValueError:
            continue
    return out


def mapped_ranges(inodes: set[tuple[int, int]]) -> list[tuple[int, int]] | None:
    """Address ranges of this process mapped from files with those (device, inode) pairs; None
    where the system has no table of its mappings."""
    maps = file_mappings({ino for _dev, ino in inodes})
    return None if maps is None else [(start, end) for start, end, _off, _ino in maps]


def in_ranges(address: int, ranges: list[tuple[int, int]]) -> bool:
    return any(start <= address < end for start, end in ranges)
