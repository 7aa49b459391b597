"""The member names of a zip archive, read straight from its central directory.

``zipfile`` builds a ZipInfo per member: a second at 100k tensors of a torch zip file, only to
tell a checkpoint from a TorchScript or torch.package archive by its names.
"""
from __future__ import annotations

import os
import struct


def central_names(path: str) -> list[str] | None:
    """Member names read straight from the zip's central directory; None for anything unusual
    (a comment, a prefix, a bad record): zipfile then reads it, and says what is wrong."""
    try:
        with open(path, "rb") as f:
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
    except OSError:
        return None
    names, pos = [], 0
    for _ in range(count):
        if cd[pos:pos + 4] != b"PK\x01\x02" or pos + 46 > len(cd):
            return None
        flags = struct.unpack_from("<H", cd, pos + 8)[0]
        n, m, k = struct.unpack_from("<HHH", cd, pos + 28)
        raw = cd[pos + 46:pos + 46 + n]
        try:
            names.append(raw.decode("utf-8" if flags & 0x800 else "cp437"))
        except UnicodeDecodeError:
            return None
        pos += 46 + n + m + k
    return names if pos == len(cd) else None
