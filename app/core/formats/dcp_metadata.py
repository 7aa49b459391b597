"""The ``.metadata`` of a torch.distributed.checkpoint (DCP) folder, read without running code.

torch's own ``FileSystemReader.read_metadata`` calls ``pickle.load``: a hostile ``.metadata``
runs whatever it names. Here the pickle goes through paramedit's restricted unpickler
(``restricted_pickle``) with exactly the metadata classes added to torch's weights-only
allowlist, then every field is checked (types, shapes inside their tensor, chunks covering the
tensor once, byte ranges inside their files) before anything is read, so a malformed file gives
one ``ContentError`` and a bounded amount of work.
"""
from __future__ import annotations

import os
import pathlib
import pickle
from dataclasses import dataclass

import torch

from ..errors import ContentError
from . import restricted_pickle
from .dcp_transforms import extensions

METADATA_NAME = ".metadata"
MAX_METADATA_BYTES = 256 * 1024 * 1024


def _metadata_classes() -> dict[str, object]:
    """The globals a ``.metadata`` written by torch names, beside torch's weights-only ones."""
    from torch.distributed.checkpoint import filesystem, metadata as md
    allowed = {f"{c.__module__}.{c.__qualname__}": c for c in (
        md.Metadata, md.TensorStorageMetadata, md.TensorProperties, md.ChunkStorageMetadata,
        md.BytesStorageMetadata, md.MetadataIndex, md.StorageMeta, md._MEM_FORMAT_ENCODING,
        filesystem._StorageInfo)}
    # TensorProperties pickles its layout through this helper; a PosixPath is the checkpoint_id
    allowed["torch.serialization._get_layout"] = torch.serialization._get_layout
    for cls in (pathlib.PosixPath, pathlib.PurePosixPath):
        allowed[f"pathlib.{cls.__name__}"] = cls
    return allowed


class _MetadataUnpickler(restricted_pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file)
        extra = _metadata_classes()
        self._allowed.update(extra)
        # first in the list: BUILD looks a class up in it linearly, once per object (thousands)
        self._callables[:0] = list(extra.values())
        self._callable_ids = {id(c) for c in self._callables}

    def _check_callable(self, func) -> None:
        if id(func) not in self._callable_ids:
            super()._check_callable(func)


@dataclass
class Chunk:
    """One stored piece of a tensor: where it sits in the tensor and where its bytes are."""
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    file: str
    offset: int
    length: int
    #: the stream transforms its bytes went through (``"stream.zstd/1"``), in the stored order
    transforms: tuple[str, ...] = ()


@dataclass
class TensorMeta:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    chunks: list[Chunk]


@dataclass
class BytesMeta:
    """A non-tensor value (a step counter, a learning rate), pickled with ``torch.save``."""
    name: str
    file: str
    offset: int
    length: int
    transforms: tuple[str, ...] = ()


@dataclass
class DcpMetadata:
    """What ``.metadata`` says: entries in its order, each with its key path in the state dict."""
    tensors: dict[str, TensorMeta]
    values: dict[str, BytesMeta]
    order: list[str]
    paths: dict[str, tuple]
    #: the transforms most entries were stored through (what a save back writes), () for none
    transforms: tuple[str, ...] = ()


def read_metadata(folder: str) -> DcpMetadata:
    """Parse and check ``folder/.metadata``; ContentError says what is wrong."""
    path = os.path.join(folder, METADATA_NAME)
    size = os.path.getsize(path)
    if size > MAX_METADATA_BYTES:
        raise ContentError(f"its .metadata is larger than any DCP metadata "
                           f"({MAX_METADATA_BYTES // 2**20} MiB)")
    with open(path, "rb") as f:
        try:
            raw = _MetadataUnpickler(f).load()
        except restricted_pickle.NeedsGlobal as exc:
            raise ContentError(f"its .metadata names {exc.name}, which a DCP metadata never "
                               "needs; it was not loaded") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, UnicodeDecodeError) as exc:
            text = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ContentError(f"its .metadata is not a readable DCP metadata ({text})") from None
    return _checked(raw, folder)


def _checked(raw, folder: str) -> DcpMetadata:
    from torch.distributed.checkpoint import filesystem, metadata as md
    if not isinstance(raw, md.Metadata) or not isinstance(raw.state_dict_metadata, dict):
        raise ContentError("its .metadata does not hold a DCP Metadata")
    storage = raw.storage_data
    if not isinstance(storage, dict):
        raise ContentError("its .metadata has no storage_data (where each entry's bytes are)")
    sizes: dict[str, int] = {}
    located: dict[tuple, tuple[str, int, int, tuple]] = {}
    used: dict[tuple, int] = {}
    for key, info in storage.items():
        if not isinstance(key, md.MetadataIndex) or not isinstance(info, filesystem._StorageInfo):
            raise ContentError("its .metadata has a malformed storage_data entry")
        transforms = info.transform_descriptors or ()
        if transforms:  # only torch's own, known ones: checked now, one line naming it
            if not (isinstance(transforms, (list, tuple)) and all(isinstance(d, str) for d in transforms)
                    and tuple(transforms) in used):
                extensions(f"{key.fqn!r}", transforms)
            transforms = tuple(transforms)
            used[transforms] = used.get(transforms, 0) + 1
        rel = info.relative_path
        if not (isinstance(rel, str) and rel and os.path.basename(rel) == rel
                and rel not in (".", "..") and "\0" not in rel and "\\" not in rel):
            raise ContentError(f"{key.fqn!r} is stored in {rel!r}, which is not a file of the folder")
        if rel not in sizes:
            full = os.path.join(folder, rel)
            if not os.path.isfile(full):
                raise ContentError(f"its storage file {rel} is missing")
            sizes[rel] = os.path.getsize(full)
        if not (_is_int(info.offset) and _is_int(info.length) and info.offset >= 0
                and info.length > 0 and info.offset + info.length <= sizes[rel]):
            raise ContentError(f"{key.fqn!r} lies outside its storage file {rel} "
                               "(the file is truncated?)")
        offsets = tuple(key.offset) if key.offset is not None else None
        located[(key.fqn, offsets)] = (rel, info.offset, info.length, transforms)
    planner = raw.planner_data if isinstance(raw.planner_data, dict) else {}
    tensors: dict[str, TensorMeta] = {}
    values: dict[str, BytesMeta] = {}
    paths: dict[str, tuple] = {}
    for name, item in raw.state_dict_metadata.items():
        if not isinstance(name, str):
            raise ContentError("its .metadata has a name that is not text")
        p = planner.get(name)
        paths[name] = (tuple(p) if isinstance(p, (tuple, list)) and p
                       and all(isinstance(k, (str, int)) for k in p) else (name,))
        if isinstance(item, md.BytesStorageMetadata):
            where = located.get((name, None))
            if where is None:
                raise ContentError(f"{name!r} has no stored bytes")
            values[name] = BytesMeta(name, *where)
        elif isinstance(item, md.TensorStorageMetadata):
            tensors[name] = _tensor_meta(name, item, located)
        else:
            raise ContentError(f"{name!r} has metadata of an unknown kind")
    common = max(used, key=used.get) if used else ()
    return DcpMetadata(tensors, values, list(raw.state_dict_metadata), paths, common)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _tensor_meta(name: str, item, located) -> TensorMeta:
    props = item.properties
    dtype = getattr(props, "dtype", None)
    if not isinstance(dtype, torch.dtype):
        raise ContentError(f"{name!r} has no dtype")
    shape = tuple(item.size) if isinstance(item.size, (tuple, list)) else None
    if shape is None or not all(_is_int(s) and s >= 0 for s in shape):
        raise ContentError(f"{name!r} has a malformed shape")
    numel = 1
    for s in shape:
        numel *= s
    element = torch.empty((), dtype=dtype).element_size()
    chunks, covered = [], 0
    for c in item.chunks if isinstance(item.chunks, list) else ():
        offsets, sizes = tuple(c.offsets), tuple(c.sizes)
        if (len(offsets) != len(shape) or len(sizes) != len(shape)
                or not all(_is_int(o) and _is_int(s) and o >= 0 and s >= 0 and o + s <= n
                           for o, s, n in zip(offsets, sizes, shape))):
            raise ContentError(f"{name!r} has a chunk outside its shape {list(shape)}")
        where = located.get((name, offsets))
        if where is None:
            raise ContentError(f"{name!r} has a chunk at {list(offsets)} with no stored bytes")
        n = 1
        for s in sizes:
            n *= s
        if not where[3] and where[2] < n * element:  # transformed (compressed) bytes may be fewer
            raise ContentError(f"{name!r}: a chunk of {n} elements is stored in {where[2]} bytes")
        covered += n
        chunks.append(Chunk(offsets, sizes, *where))
    if covered != numel:  # chunks of a saved tensor tile it exactly once
        raise ContentError(f"{name!r}: its chunks hold {covered} of its {numel} elements")
    return TensorMeta(name, shape, dtype, chunks)
