"""Check the checksums a checkpoint carries: the CRC-32 of every zip member (torch zip files,
TorchScript archives, and such shards of a sharded checkpoint). torch itself never checks them,
so a flipped bit in a tensor's record loads silently.

``verify_path(path, progress, cancel)`` reads every member once, in 8 MiB windows of the file
(uncompressed members) or 1 MiB chunks (compressed ones, through zipfile): bounded memory;
``progress(done_bytes, total_bytes)``; ``cancel()`` polled between chunks (raises Cancelled). It
returns one line per bad member: ``"archive/data/0: CRC mismatch"``. Formats without checksums
(safetensors, legacy pickles) have nothing to verify: the result is empty.
"""
from __future__ import annotations

import os
import struct
import zipfile
import zlib
from typing import Callable

from ..errors import Cancelled, CheckpointError
from .collector import collector_paused
from .detect import SHARDED, detect, read_index, require_regular

CHUNK = 1 << 20
#: bytes read at once when records are small
WINDOW = 8 << 20
_LOCAL = b"PK\x03\x04"


def verify_path(path: str, progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> list[str]:
    require_regular(path)
    try:
        kind = detect(path)
    except ValueError as exc:
        raise CheckpointError(f"{path} cannot be opened: {exc}") from None
    if kind != SHARDED:
        if not zipfile.is_zipfile(path):
            return []
        with _collector_paused():
            return _verify_zip(path, progress, cancel)
    try:
        folder, index = read_index(path)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    bad: list[str] = []
    for shard in dict.fromkeys(v for v in index["weight_map"].values() if isinstance(v, str)):
        shard_path = os.path.join(folder, os.path.basename(shard))
        if os.path.isfile(shard_path) and zipfile.is_zipfile(shard_path):
            with _collector_paused():
                bad += [f"{shard}: {b}" for b in _verify_zip(shard_path, progress, cancel)]
    return bad


def _collector_paused():
    """A central directory of 100k records is 100k ZipInfo objects, none of them garbage; they
    are freed by reference counting when the check ends."""
    return collector_paused()


def _verify_zip(path: str, progress, cancel) -> list[str]:
    bad = []
    try:
        with zipfile.ZipFile(path) as z, open(path, "rb", buffering=0) as raw:
            infos = sorted(z.infolist(), key=lambda i: i.header_offset)
            total = sum(i.file_size for i in infos)
            window = _Window(raw.fileno(), os.fstat(raw.fileno()).st_size)
            done = 0
            for info in infos:
                if cancel is not None and cancel():
                    raise Cancelled()
                try:
                    if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
                        line = _check_stored(window, info, done, total, progress, cancel)
                    else:
                        line = _check_streamed(z, info, done, total, progress, cancel)
                except (zlib.error, EOFError, OSError, NotImplementedError) as exc:
                    line = f"unreadable ({exc})"
                if line:
                    bad.append(f"{info.filename}: {line}")
                done += info.file_size
                if progress is not None:
                    progress(done, total)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is a truncated or corrupt zip archive: {exc}") from None
    return bad


class _Window:
    """The file read ``WINDOW`` bytes at a time: members (100k small tensors) are checked from
    memory. One read per record let the GIL go 100k times: a thread waiting for it (the GUI)
    woke at each, found it taken back, and waited on (see ``gil_pacer``)."""

    def __init__(self, fd: int, size: int):
        self.fd, self.size = fd, size
        self.start, self.data = 0, b""

    def view(self, offset: int, n: int) -> memoryview:
        """Up to ``n`` bytes at ``offset`` (fewer only at the end of the file)."""
        if not (self.start <= offset and offset + n <= self.start + len(self.data)):
            self.start = offset
            self.data = os.pread(self.fd, max(n, WINDOW), offset)
        at = offset - self.start
        return memoryview(self.data)[at:at + n]


def _check_stored(window: _Window, info: zipfile.ZipInfo, done: int, total: int, progress,
                  cancel) -> str | None:
    """An uncompressed record's CRC computed from the file's bytes; None when it matches."""
    head = window.view(info.header_offset, 30)
    if len(head) < 30 or bytes(head[:4]) != _LOCAL:
        return "unreadable (bad local header)"
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    at, left, crc = info.header_offset + 30 + name_len + extra_len, info.compress_size, 0
    while left:
        part = window.view(at, min(left, CHUNK))
        if not part:
            raise EOFError("the file ends inside this record")
        crc = zlib.crc32(part, crc)
        at, left, done = at + len(part), left - len(part), done + len(part)
        if left and cancel is not None and cancel():
            raise Cancelled()
        if left and progress is not None:
            progress(done, total)
    return None if crc == info.CRC else "CRC mismatch"


def _check_streamed(z: zipfile.ZipFile, info: zipfile.ZipInfo, done: int, total: int, progress,
                    cancel) -> str | None:
    """A compressed record, through zipfile (which checks the CRC when the record ends)."""
    try:
        with z.open(info) as f:
            while chunk := f.read(CHUNK):
                done += len(chunk)
                if cancel is not None and cancel():
                    raise Cancelled()
                if progress is not None:
                    progress(done, total)
    except zipfile.BadZipFile as exc:
        return "CRC mismatch" if "CRC" in str(exc) else f"unreadable ({exc})"
    return None
