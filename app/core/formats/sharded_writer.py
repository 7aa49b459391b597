"""Sharded safetensors: ``model-0000k-of-0000n.safetensors`` files plus ``model.safetensors.index.json``.

All shards are written beside their targets first, then synced and moved into place together
(``Stager``); the index is replaced last, so a failure before it leaves the old index (and the
shards it names, unless overwritten by name) in place.
"""
from __future__ import annotations

import json
import os
from ..document import Document
from ..tensor_entry import TensorEntry
from .safetensors_file import ALIASES_KEY, ORDER_KEY
from .safetensors_writer import paramedit_metadata, plan, write_safetensors

INDEX_NAME = "model.safetensors.index.json"


def split(stored: list[TensorEntry], shard_size: int) -> list[list[TensorEntry]]:
    """Consecutive groups of at most ``shard_size`` bytes (a larger tensor gets its own shard)."""
    shards: list[list[TensorEntry]] = [[]]
    size = 0
    for e in stored:
        if shards[-1] and size + e.nbytes > shard_size:
            shards.append([])
            size = 0
        shards[-1].append(e)
        size += e.nbytes
    return shards


def write_sharded(doc: Document, out_path: str, shard_size: int, stager) -> tuple[str, dict[str, str]]:
    """Write shards then the index; returns (index path, metadata the reader will see)."""
    if out_path.endswith(".index.json"):
        folder, index_path = os.path.dirname(os.path.abspath(out_path)), out_path
    else:
        folder, index_path = out_path, os.path.join(out_path, INDEX_NAME)
    os.makedirs(folder, exist_ok=True)
    old_shards = _shards_named(index_path)
    entries = list(doc.tensors.values())
    stored, aliases = plan(entries)
    names = [e.name for e in entries]
    shards = split(stored, max(int(shard_size), 1))
    base = {k: v for k, v in doc.metadata.items() if k not in (ALIASES_KEY, ORDER_KEY)}
    weight_map: dict[str, str] = {}
    for k, group in enumerate(shards, 1):
        shard = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        group_names = [e.name for e in group]
        stager.stage(os.path.join(folder, shard),
                     lambda f, g=group, n=group_names: write_safetensors(f, g, base, n, {}))
        weight_map.update({n: shard for n in group_names})
    meta = paramedit_metadata(base, names, aliases)
    index = {"metadata": {"total_size": sum(e.nbytes for e in stored), **meta},
             "weight_map": weight_map}
    text = json.dumps(index, indent=2).encode("utf-8")
    stager.stage(index_path, lambda f: f.write(text))
    stager.commit()  # shards first, the index last
    for stale in old_shards - set(weight_map.values()):  # shards of the replaced index only
        try:
            os.unlink(os.path.join(folder, stale))
        except OSError:
            pass
    return index_path, meta


def _shards_named(index_path: str) -> set[str]:
    try:
        with open(index_path, encoding="utf-8") as f:
            weight_map = json.load(f).get("weight_map") or {}
    except (OSError, ValueError, AttributeError):
        return set()
    return {s for s in weight_map.values() if isinstance(s, str) and os.path.basename(s) == s}
