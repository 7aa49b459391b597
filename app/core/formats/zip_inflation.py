"""Refuse a zip whose compressed members would expand far beyond the file (a zip bomb).

``torch.save`` and ``torch.jit.save`` store every record uncompressed, so unpickling a torch
zip's ``data.pkl`` costs memory in proportion to the file the user chose to open (the
pure-Python unpicklers take up to ~73 bytes per pickle byte, for a run of MARK opcodes). A
compressed ``data.pkl`` breaks that bound: DEFLATE reaches ~1000:1 (bzip2 and LZMA, which zipfile
also reads, far more), so a 12 KB TorchScript archive holding 10 MB of MARKs peaked at 954 MB,
and a 400 KB file could take 24 GB. Every reader (zipfile, torch's miniz) inflates a member
into at most the size the central directory declares: those sizes, read before anything is
inflated, bound what opening the file can cost.

The rule: the compressed members together may declare at most max(16 MiB, 4 x the file).

- 4 x the file: a checkpoint re-zipped by hand (``zip -9``) stays well below it, as float
  tensors barely compress and the pickle is a small part of the file. A file of mostly-zero
  tensors is the exception; the message says how to open it anyway (store it uncompressed).
- 16 MiB: a small checkpoint re-zipped whole, its pickle compressed 5-10x, still opens; at ~73
  bytes per pickle byte, the most a tiny file can then cost is ~1.2 GB.
"""
from __future__ import annotations

import os
import zipfile

from ..units import human_size

FLOOR = 16 << 20
FACTOR = 4


def inflation_limit(file_size: int) -> int:
    """The most a zip of ``file_size`` bytes may declare in compressed members."""
    return max(FLOOR, FACTOR * file_size)


def refuse_inflation(compressed: list[tuple[str, int]], file_size: int) -> None:
    """ValueError with a reason for the user when the compressed members ``(name, declared
    size)`` of a zip of ``file_size`` bytes expand beyond ``inflation_limit``."""
    total = sum(size for _name, size in compressed)
    if total <= inflation_limit(file_size):
        return
    name, size = max(compressed, key=lambda c: c[1])
    name = (name.split("/", 1)[-1] or name)[:100]  # the record, without the top folder
    what = f"its {name} is compressed and expands to {human_size(size)}"
    if len(compressed) > 1:
        what += f" ({len(compressed)} compressed records, {human_size(total)} in all)"
    raise ValueError(
        f"{what}, from a file of {human_size(file_size)}; torch.save never "
        "compresses a checkpoint (another tool made this one), and reading that much could "
        "take many times as much memory, so it was refused. If you trust its source, store it "
        "uncompressed (unzip it, then zip -0 -r) and open that")


def refuse_inflating_zipfile(z: zipfile.ZipFile, path: str) -> None:
    """``refuse_inflation`` for an archive that ``zipfile`` has read (declared sizes only)."""
    refuse_inflation([(i.filename, i.file_size) for i in z.infolist()
                      if i.compress_type != zipfile.ZIP_STORED], os.path.getsize(path))


