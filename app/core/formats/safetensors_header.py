"""The ``.safetensors`` header, read strictly: every field checked before any of it is used.

``read_header_at`` gives the JSON header as it is; ``read_tensor_table`` gives each tensor's
loader straight from the parse (a file of 100k tensors is not held twice: as JSON objects and as
entries).
"""
from __future__ import annotations

import json
import os
import struct
from itertools import chain
from math import prod
from operator import mul, sub

import numpy as np
import torch

from ..errors import CheckpointError
from .mapped_file import MappedFile, RangeLoader

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
    # A Python hook per object lets the interpreter switch threads while a 100k-entry header
    # is parsed (the C decoder alone held the GIL ~0.5 s: the window froze).
    n, data_len = _header_size(path)
    header = _parse(path, n, _same)
    if not _tensors_valid(header, data_len):  # only then the slow checks, for their message
        for name, info in header.items():
            if name != "__metadata__":
                _check_tensor(path, name, info, data_len)
        _check_layout(path, header, data_len)
    return header, 8 + n


def read_tensor_table(path: str) -> tuple[list[tuple[str, RangeLoader]], dict, MappedFile]:
    """Each tensor's name and loader in data order, the metadata, and the open file; checked as
    strictly as ``read_header_at``.

    Each tensor's JSON object becomes its loader as soon as it is parsed, its fields checked on
    the way: a 100k-tensor header is never held as 100k dicts of lists (twice the memory of
    the document it describes). An object that is no valid tensor stays as parsed, for the
    per-tensor checks to name what is wrong with it.
    """
    n, data_len = _header_size(path)
    handle = MappedFile(path)  # one mapping, never charged the file's size (see mapped_file)
    try:
        header = _parse(path, n, _loader_maker(handle, 8 + n, data_len))
        metadata = header.pop("__metadata__", None) or {}
        table = list(header.items())
        for name, info in table:
            if type(info) is not RangeLoader:  # refused by the maker: say why
                _check_tensor(path, name, info, data_len)
                raise CheckpointError(f"{path} has a corrupt safetensors header: tensor {name!r}")
        begins = np.fromiter((info.offset for _, info in table), np.int64, len(table)) - (8 + n)
        ends = begins + np.fromiter((info.nbytes for _, info in table), np.int64, len(table))
        if not _layout_valid(begins, ends, data_len):
            _check_layout(path, {name: {"data_offsets": [int(b), int(e)]} for (name, _), b, e
                                 in zip(table, begins, ends)}, data_len)
        order = np.argsort(begins, kind="stable")
        if np.any(order != np.arange(len(table))):
            table = [table[i] for i in order.tolist()]
        return table, metadata, handle
    except BaseException:
        handle.close()
        raise


def _loader_maker(handle: MappedFile, start: int, data_len: int):
    """The JSON object hook making a valid tensor object its loader (all of ``_check_tensor``
    but its messages); anything else is returned as parsed."""
    shapes: dict[tuple, tuple] = {}  # one tuple per distinct shape (most tensors share a few)
    sizes = {code: (dtype, dtype.itemsize) for code, dtype in DTYPES.items()}

    def make(obj: dict):
        try:
            dtype, itemsize = sizes[obj["dtype"]]
            shape, offsets = obj["shape"], obj["data_offsets"]
        except (KeyError, TypeError):  # no tensor (metadata, the header itself), unhashable
            return obj
        if type(shape) is not list or type(offsets) is not list or len(offsets) != 2:
            return obj
        begin, end = offsets
        if type(begin) is not int or type(end) is not int or not 0 <= begin <= end <= data_len:
            return obj
        numel = 1
        for d in shape:
            if type(d) is not int or d < 0:  # bool is no int
                return obj
            numel *= d
        if numel * itemsize != end - begin:
            return obj
        shape = tuple(shape)
        return RangeLoader(handle, start + begin, end - begin, dtype, shapes.setdefault(shape, shape))

    return make


def _header_size(path: str) -> tuple[int, int]:
    """The header's length in bytes and the data's after it; refuses what cannot be one."""
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
    return n, size - 8 - n


def _parse(path: str, n: int, hook) -> dict:
    """The ``n`` bytes of header parsed with ``hook`` on every object; ``__metadata__`` checked."""
    with open(path, "rb") as f:
        f.seek(8)
        raw = f.read(n)
    if len(raw) < n:
        raise CheckpointError(f"{path} is truncated: its header says {n} bytes")
    try:
        # decoded as json.loads decodes bytes, but the bytes go before the parse begins
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        del raw
        header = json.loads(text, object_hook=hook)
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
    return header


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
    return _layout_valid(np.array(begins, dtype=np.int64), np.array(ends, dtype=np.int64),
                         data_len)


def _layout_valid(b: np.ndarray, e: np.ndarray, data_len: int) -> bool:
    """The byte ranges ``[b, e)`` (each inside the data) tile the data: no gap, no overlap."""
    if not len(b):
        return data_len == 0
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


def _same(obj: dict) -> dict:
    return obj
