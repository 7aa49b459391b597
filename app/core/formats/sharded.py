"""Sharded checkpoints: a folder or its ``*.index.json`` whose ``weight_map`` names the shards."""
from __future__ import annotations

import os

from ..document import Document
from ..errors import CheckpointError
from ..tensor_entry import TensorEntry
from .detect import SAFETENSORS, detect, read_index
from .safetensors_file import open_entries, restore_aliases


def load_sharded(path: str, progress=None, trust: bool = False) -> Document:
    try:
        folder, index = read_index(path)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    weight_map: dict[str, str] = index["weight_map"]
    shards = list(dict.fromkeys(weight_map.values()))
    by_name: dict[str, TensorEntry] = {}
    metadata: dict[str, str] = {}
    closers = []
    kinds = set()
    for i, shard in enumerate(shards):
        shard_path = os.path.join(folder, shard)
        if not os.path.isfile(shard_path):
            raise CheckpointError(f"{path}: shard {shard} named by the index is missing")
        kind = detect(shard_path)
        kinds.add(kind)
        if kind == SAFETENSORS:
            entries, meta, close = open_entries(shard_path)
            metadata.update(meta)
            closers.append(close)
        else:
            from .torch_pickle import load_torch
            doc = load_torch(shard_path, legacy=kind != "torch", trust=trust)
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
