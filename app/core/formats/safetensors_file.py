"""``.safetensors`` files, opened lazily: the header is parsed at once, tensor data on first use.

paramedit records what the format itself cannot hold in the header metadata:
``paramedit.aliases`` (JSON ``{alias: stored name}``: tied tensors stored once) and
``paramedit.order`` (JSON list of all names in document order).
"""
from __future__ import annotations

import json
import os
import struct
from itertools import chain
from math import prod
from operator import mul, sub
from typing import Callable

import numpy as np
import torch

from .mapped_file import MappedFile, RangeLoader
from ..model.document import Document
from ..errors import CheckpointError
from ..model.tensor_entry import TensorEntry
from ..model.ties import tie_group

ALIASES_KEY = "paramedit.aliases"
ORDER_KEY = "paramedit.order"
#: a file's metadata may name at most this many aliases per stored tensor
MAX_ALIASES_PER_TENSOR = 64
#: the safetensors library refuses longer headers too (a hostile length would be read whole)
MAX_HEADER_BYTES = 100_000_000

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
    return read_header_at(path)[0]


def read_header_at(path: str) -> tuple[dict, int]:
    """The JSON header and where the data starts (its byte offset in the file).

    Everything the header says is checked before any of it is used: each tensor is an object
    with a known dtype, a shape of non-negative integers and ``data_offsets`` of two integers
    that lie inside the data and match the shape; ``__metadata__`` maps strings to strings.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path} is truncated: no safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8:
            raise CheckpointError(f"{path} is truncated: its header says {n} bytes, the file has {size}")
        if n > MAX_HEADER_BYTES:
            raise CheckpointError(f"{path} has a corrupt safetensors header: {n} bytes long, "
                                  f"more than the {MAX_HEADER_BYTES} safetensors allows")
        try:
            # A Python hook per object lets the interpreter switch threads while a 100k-entry
            # header is parsed (the C decoder alone held the GIL ~0.5 s: the window froze).
            header = json.loads(f.read(n), object_hook=_same)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path} has a corrupt safetensors header: {exc}") from None
        except RecursionError:
            raise CheckpointError(f"{path} has a corrupt safetensors header: it nests too deeply") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} has a corrupt safetensors header: not a JSON object")
    meta = header.get("__metadata__")
    if "__metadata__" in header and (not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items())):
        raise CheckpointError(f"{path} has a corrupt safetensors header: __metadata__ "
                              "must map strings to strings")
    data_len = size - 8 - n
    if not _tensors_valid(header, data_len):  # only then the slow checks, for their message
        for name, info in header.items():
            if name != "__metadata__":
                _check_tensor(path, name, info, data_len)
        _check_layout(path, header, data_len)
    return header, 8 + n


def _tensors_valid(header: dict, data_len: int) -> bool:
    """Every check of ``_check_tensor`` and ``_check_layout`` over all tensors at once (a
    checkpoint may hold 100k tensors): True when all pass; False sends the caller to the
    per-tensor checks, which say what is wrong."""
    infos = [v for k, v in header.items() if k != "__metadata__"]
    try:
        if not set(map(type, infos)) <= {dict}:
            return False
        dtypes = [DTYPES[i["dtype"]] for i in infos]
        shapes = [i["shape"] for i in infos]
        offsets = [i["data_offsets"] for i in infos]
    except (KeyError, TypeError):  # a missing key, an unhashable dtype
        return False
    if (not set(map(type, shapes)) <= {list} or not set(map(type, offsets)) <= {list}
            or not set(map(len, offsets)) <= {2}):
        return False
    dims = list(chain.from_iterable(shapes))
    flat = list(chain.from_iterable(offsets))
    if not set(map(type, dims)) <= {int} or not set(map(type, flat)) <= {int}:  # bool is no int
        return False
    if (dims and min(dims) < 0) or (flat and (min(flat) < 0 or max(flat) > data_len)):
        return False
    begins, ends = flat[0::2], flat[1::2]
    sizes = list(map(mul, map(prod, shapes), (d.itemsize for d in dtypes)))
    if list(map(sub, ends, begins)) != sizes:  # also refuses begin > end: sizes are >= 0
        return False
    if not infos:
        return data_len == 0
    b, e = np.array(begins, dtype=np.int64), np.array(ends, dtype=np.int64)
    order = np.lexsort((e, b))
    b, e = b[order], e[order]
    return bool(b[0] == 0 and e[-1] == data_len and np.array_equal(b[1:], e[:-1]))


def _check_layout(path: str, header: dict, data_len: int) -> None:
    """The tensors' byte ranges follow one another without gap or overlap and end with the
    data, as the safetensors library requires: no two names can share (hidden) bytes."""
    end = 0
    for name, info in sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                             key=lambda kv: tuple(kv[1]["data_offsets"])):
        begin, stop = info["data_offsets"]
        if begin != end:
            raise CheckpointError(f"{path} has a corrupt safetensors header: tensor {name!r} "
                                  f"starts at byte {begin}, not {end} (overlapping or gapped data)")
        end = stop
    if end != data_len:
        raise CheckpointError(f"{path} has a corrupt safetensors header: its tensors hold {end} "
                              f"bytes, the file has {data_len} after the header")


def _check_tensor(path: str, name: str, info, data_len: int) -> None:
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{path} has a corrupt safetensors header: tensor {name!r} {why}")

    if not isinstance(info, dict):
        raise bad("is not described by an object")
    if not isinstance(info.get("dtype"), str) or info["dtype"] not in DTYPES:
        raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {info.get('dtype')!r}")
    shape = info.get("shape")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise bad("has no shape of non-negative integers")
    offsets = info.get("data_offsets")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise bad("has no data_offsets [begin, end]")
    if offsets[1] > data_len:
        raise CheckpointError(f"{path} is truncated: tensor {name!r} ends past the end of the file")
    numel = 1
    for d in shape:
        numel *= d
    if numel * DTYPES[info["dtype"]].itemsize != offsets[1] - offsets[0]:
        raise bad(f"has {offsets[1] - offsets[0]} bytes of data for shape {shape}")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def open_entries(path: str) -> tuple[list[TensorEntry], dict[str, str], Callable[[], None]]:
    """Lazy entries of one file, its metadata, and a function closing the file handle."""
    header, start = read_header_at(path)
    metadata = dict(header.pop("__metadata__", None) or {})
    handle = MappedFile(path)  # one mapping, never charged the file's size (see mapped_file)

    entries = []
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, end = info["data_offsets"]
        dtype, shape = DTYPES[info["dtype"]], tuple(info["shape"])  # one tuple, entry and loader
        entries.append(TensorEntry.lazy(name, shape, dtype,
                                        RangeLoader(handle, start + begin, end - begin, dtype, shape)))
    return entries, metadata, handle.close


def restore_aliases(entries: list[TensorEntry], metadata: dict[str, str]) -> list[TensorEntry]:
    """Re-create tied names recorded by paramedit, and put everything back in document order."""
    by_name = {e.name: e for e in entries}
    order = _json(metadata.get(ORDER_KEY), [])
    if not order and not metadata.get(ALIASES_KEY) and len(by_name) == len(entries):
        return list(entries)  # not written by paramedit: the file's order, nothing to re-create
    stored_names = set(by_name)
    listed = {n for n in order if isinstance(n, str)}  # paramedit writes every alias in both keys
    aliases = _json(metadata.get(ALIASES_KEY), {})
    groups: dict[str, list[TensorEntry]] = {}
    for alias, stored in list(aliases.items())[:MAX_ALIASES_PER_TENSOR * len(stored_names)]:
        # untrusted metadata: an alias only names a tensor the file really stores, never a chain
        # of aliases, never a name the file has, never an empty name or path component
        if not (isinstance(alias, str) and isinstance(stored, str)) or stored not in stored_names:
            continue
        if alias in by_name or alias not in listed or not alias or "" in alias.split("."):
            continue
        target = by_name[stored]
        if len(groups.get(stored, ())) > MAX_ALIASES_PER_TENSOR:
            continue
        alias_entry = TensorEntry.lazy(alias, target.shape, target.dtype, target.tensor, kind=target.kind)
        by_name[alias] = alias_entry
        groups.setdefault(stored, [target]).append(alias_entry)
    for group in groups.values():
        tie_group(group)
    ordered = [by_name[n] for n in order if isinstance(n, str) and n in by_name]
    seen = {e.name for e in ordered}
    ordered += [e for e in [*entries, *by_name.values()] if e.name not in seen and not seen.add(e.name)]
    return ordered


def _json(text: str | None, default):
    if not text:
        return default
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return default
    return value if isinstance(value, type(default)) else default


def load_safetensors(path: str) -> Document:
    entries, metadata, close = open_entries(path)
    entries = restore_aliases(entries, metadata)
    return Document(entries, path=path, fmt="safetensors", metadata=metadata, closers=[close])


def _same(obj: dict) -> dict:
    return obj
