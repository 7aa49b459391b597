"""Sharded checkpoints: a folder or its ``*.index.json`` whose ``weight_map`` names the shards."""
from __future__ import annotations

import os

from ..document import Document
from ..errors import CheckpointError
from ..tensor_entry import TensorEntry
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
    by_name: dict[str, TensorEntry] = {}
    metadata: dict[str, str] = {}
    closers = []
    kinds = set()
    for i, shard in enumerate(shards):
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
        kinds.add(kind)
        if kind == SAFETENSORS:
            entries, meta, close = open_entries(shard_path)
            metadata.update(meta)
            closers.append(close)
        else:
            from .torch_pickle import load_torch
            doc = load_torch(shard_path, legacy=kind != TORCH_ZIP, trust=trust)
            entries = list(doc.tensors.values())
        for e in entries:
            by_name[e.name] = e
        if progress:
            progress(i + 1, len(shards))
    missing = [n for n in weight_map if n not in by_name]
    if missing:
        raise CheckpointError(f"{path}: the index names tensors no shard holds: {', '.join(missing[:5])}")
    metadata.update({k: str(v) for k, v in (index.get("metadata") or {}).items() if isinstance(v, str)})
    ordered = [by_name[n] for n in weight_map] + [e for n, e in by_name.items() if n not in weight_map]
    ordered = restore_aliases(ordered, metadata)
    fmt = "safetensors-sharded" if kinds == {SAFETENSORS} else "torch-sharded"
    return Document(ordered, path=path, fmt=fmt, metadata=metadata, closers=closers)


def _plain_file_name(name: str) -> bool:
    """A shard is a file directly in the index's folder: no path, no parent, nothing hidden."""
    return (bool(name) and name == os.path.basename(name) and name not in (".", "..")
            and "/" not in name and "\\" not in name and "\0" not in name)
