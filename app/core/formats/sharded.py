"""Sharded checkpoints: a folder or its ``*.index.json`` whose ``weight_map`` names the shards."""
from __future__ import annotations

import os

from ..model.document import Document
from ..errors import CheckpointError
from ..model.nested import distinct_names
from ..model.tensor_entry import TensorEntry
from .detect import SAFETENSORS, TORCH_LEGACY, TORCH_ZIP, detect, read_index, require_regular
from .safetensors_file import open_entries, restore_aliases


def load_sharded(path: str, progress=None, trust: bool = False) -> Document:
    try:
        folder, index = read_index(path)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    weight_map: dict[str, str] = index["weight_map"]
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not _plain_file_name(shard):
            raise CheckpointError(f"{path}: the index maps {name!r} to {shard!r}, "
                                  "which is not a file name in the checkpoint's folder")
    shards = list(dict.fromkeys(weight_map.values()))
    found: list[tuple[str, TensorEntry]] = []  # (shard, entry) in shard order
    metadata: dict[str, str] = {}
    closers: list = []
    kinds = set()
    try:
        for i, shard in enumerate(shards):
            entries, meta, close, kind = _open_shard(path, folder, shard, trust)
            kinds.add(kind)
            metadata.update(meta)
            if close is not None:
                closers.append(close)
            found += [(shard, e) for e in entries]
            if progress:
                progress(i + 1, len(shards))
        ordered = _index_order(path, weight_map, found)
    except BaseException:
        for close in closers:
            close()
        raise
    metadata.update({k: str(v) for k, v in (index.get("metadata") or {}).items() if isinstance(v, str)})
    ordered = restore_aliases(ordered, metadata)
    fmt = "safetensors-sharded" if kinds == {SAFETENSORS} else "torch-sharded"
    return Document(ordered, path=path, fmt=fmt, metadata=metadata, closers=closers)


def _open_shard(path: str, folder: str, shard: str, trust: bool):
    shard_path = os.path.join(folder, shard)
    if not os.path.lexists(shard_path):
        raise CheckpointError(f"{path}: shard {shard} named by the index is missing")
    require_regular(shard_path)
    if os.path.isdir(shard_path):
        raise CheckpointError(f"{path}: shard {shard} named by the index is a folder")
    try:
        kind = detect(shard_path)
    except ValueError as exc:
        raise CheckpointError(f"{path}: shard {shard} cannot be opened: {exc}") from None
    if kind not in (SAFETENSORS, TORCH_ZIP, TORCH_LEGACY):
        raise CheckpointError(f"{path}: shard {shard} is not a safetensors or torch file")
    if kind == SAFETENSORS:
        entries, meta, close = open_entries(shard_path)
        return entries, meta, close, kind
    from .torch_pickle import load_torch
    doc = load_torch(shard_path, legacy=kind != TORCH_ZIP, trust=trust)
    return list(doc.tensors.values()), {}, None, kind


def _index_order(path: str, weight_map: dict, found: list[tuple[str, TensorEntry]]) -> list[TensorEntry]:
    """The index's names in its order, each from the shard it names (else the first holding it);
    tensors of the shards the index does not name follow, renamed ``NAME~2`` where a name is
    taken, so nothing is dropped."""
    chosen: dict[str, TensorEntry] = {}
    for shard, e in found:
        if weight_map.get(e.name) == shard and e.name not in chosen:
            chosen[e.name] = e
    for _shard, e in found:
        if e.name in weight_map and e.name not in chosen:
            chosen[e.name] = e
    missing = [n for n in weight_map if n not in chosen]
    if missing:
        raise CheckpointError(f"{path}: the index names tensors no shard holds: {', '.join(missing[:5])}")
    picked = {id(e) for e in chosen.values()}
    strays = [e for _s, e in found if id(e) not in picked]
    for e, name in zip(strays, distinct_names([(e.name,) for e in strays], set(chosen))):
        e.name = name
    return [chosen[n] for n in weight_map] + strays


def _plain_file_name(name: str) -> bool:
    """A shard is a file directly in the index's folder: no path, no parent, nothing hidden."""
    return (bool(name) and name == os.path.basename(name) and name not in (".", "..")
            and "/" not in name and "\\" not in name and "\0" not in name)
