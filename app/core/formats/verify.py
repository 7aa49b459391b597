"""Check the checksums a checkpoint carries: the CRC-32 of every zip member (torch zip files,
TorchScript archives, and such shards of a sharded checkpoint). torch itself never checks them,
so a flipped bit in a tensor's record loads silently.

``verify_path(path, progress, cancel)`` reads every member once in 1 MiB chunks (bounded memory;
``progress(done_bytes, total_bytes)``, ``cancel()`` polled between chunks: raises Cancelled) and
returns one line per bad member: ``"archive/data/0: CRC mismatch"``. Formats without checksums
(safetensors, legacy pickles) have nothing to verify: the result is empty.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from typing import Callable

from ..errors import Cancelled, CheckpointError
from .detect import SHARDED, detect, read_index, require_regular

CHUNK = 1 << 20


def verify_path(path: str, progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> list[str]:
    require_regular(path)
    try:
        kind = detect(path)
    except ValueError as exc:
        raise CheckpointError(f"{path} cannot be opened: {exc}") from None
    if kind != SHARDED:
        return _verify_zip(path, progress, cancel) if zipfile.is_zipfile(path) else []
    try:
        folder, index = read_index(path)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    bad: list[str] = []
    for shard in dict.fromkeys(v for v in index["weight_map"].values() if isinstance(v, str)):
        shard_path = os.path.join(folder, os.path.basename(shard))
        if os.path.isfile(shard_path) and zipfile.is_zipfile(shard_path):
            bad += [f"{shard}: {b}" for b in _verify_zip(shard_path, progress, cancel)]
    return bad


def _verify_zip(path: str, progress, cancel) -> list[str]:
    bad = []
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            total = sum(i.file_size for i in infos)
            done = start = 0
            for info in infos:
                start, done = start + info.file_size, start
                try:
                    with z.open(info) as f:  # zipfile checks the CRC when the member ends
                        while chunk := f.read(CHUNK):
                            done += len(chunk)
                            if cancel is not None and cancel():
                                raise Cancelled()
                            if progress is not None:
                                progress(done, total)
                except zipfile.BadZipFile as exc:
                    bad.append(f"{info.filename}: CRC mismatch" if "CRC" in str(exc)
                               else f"{info.filename}: unreadable ({exc})")
                except (zlib.error, EOFError, OSError, NotImplementedError) as exc:
                    bad.append(f"{info.filename}: unreadable ({exc})")
                done = start
                if progress is not None:
                    progress(done, total)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is a truncated or corrupt zip archive: {exc}") from None
    return bad
