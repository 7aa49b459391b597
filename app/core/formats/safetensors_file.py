"""``.safetensors`` files, opened lazily: the header is parsed at once, tensor data on first use.

paramedit records what the format itself cannot hold in the header metadata:
``paramedit.aliases`` (JSON ``{alias: stored name}``: tied tensors stored once) and
``paramedit.order`` (JSON list of all names in document order).
"""
from __future__ import annotations

import json
import os
import struct
from typing import Callable

import torch
from safetensors import safe_open

from ..document import Document
from ..errors import CheckpointError
from ..tensor_entry import TensorEntry
from ..ties import tie_group

ALIASES_KEY = "paramedit.aliases"
ORDER_KEY = "paramedit.order"

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "C64": torch.complex64, "C128": torch.complex128,
}
CODES = {v: k for k, v in DTYPES.items()}


def read_header(path: str) -> dict:
    """The JSON header, in its own key order; raises CheckpointError for a broken file."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path} is truncated: no safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8:
            raise CheckpointError(f"{path} is truncated: its header says {n} bytes, the file has {size}")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path} has a corrupt safetensors header: {exc}") from None
    data_len = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        end = info.get("data_offsets", [0, 0])[1]
        if end > data_len:
            raise CheckpointError(f"{path} is truncated: tensor {name!r} ends past the end of the file")
        if info.get("dtype") not in DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {info.get('dtype')!r}")
    return header


def open_entries(path: str) -> tuple[list[TensorEntry], dict[str, str], Callable[[], None]]:
    """Lazy entries of one file, its metadata, and a function closing the file handle."""
    header = read_header(path)
    metadata = dict(header.pop("__metadata__", None) or {})
    try:
        handle = safe_open(path, framework="pt", device="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path} cannot be opened as safetensors: {exc}") from None
    entries = [
        TensorEntry.lazy(name, info["shape"], DTYPES[info["dtype"]],
                         (lambda n=name: handle.get_tensor(n)))
        for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    ]
    def close() -> None:
        handle.__exit__(None, None, None)

    return entries, metadata, close


def restore_aliases(entries: list[TensorEntry], metadata: dict[str, str]) -> list[TensorEntry]:
    """Re-create tied names recorded by paramedit, and put everything back in document order."""
    by_name = {e.name: e for e in entries}
    aliases = _json(metadata.get(ALIASES_KEY), {})
    groups: dict[str, list[TensorEntry]] = {}
    for alias, stored in aliases.items():
        target = by_name.get(stored)
        if target is None or alias in by_name:
            continue
        alias_entry = TensorEntry.lazy(alias, target.shape, target.dtype, target.tensor, kind=target.kind)
        by_name[alias] = alias_entry
        groups.setdefault(stored, [target]).append(alias_entry)
    for group in groups.values():
        tie_group(group)
    order = _json(metadata.get(ORDER_KEY), [])
    ordered = [by_name[n] for n in order if n in by_name]
    seen = {e.name for e in ordered}
    ordered += [e for e in [*entries, *by_name.values()] if e.name not in seen and not seen.add(e.name)]
    return ordered


def _json(text: str | None, default):
    if not text:
        return default
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return default
    return value if isinstance(value, type(default)) else default


def load_safetensors(path: str) -> Document:
    entries, metadata, close = open_entries(path)
    entries = restore_aliases(entries, metadata)
    return Document(entries, path=path, fmt="safetensors", metadata=metadata, closers=[close])
