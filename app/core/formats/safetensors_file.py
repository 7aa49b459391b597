"""``.safetensors`` files, opened lazily: the header is parsed at once, tensor data on first use.

paramedit records what the format itself cannot hold in the header metadata:
``paramedit.aliases`` (JSON ``{alias: stored name}``: tied tensors stored once) and
``paramedit.order`` (JSON list of all names in document order).
"""
from __future__ import annotations

import json
from typing import Callable

from ..model.document import Document
from ..model.tensor_entry import TENSOR, TensorEntry
from ..model.ties import tie_group
from .safetensors_header import (CODES, DTYPES, MAX_HEADER_BYTES, _check_layout,  # noqa: F401
                                 _check_tensor, _tensors_valid, read_header, read_header_at,
                                 read_tensor_table)

ALIASES_KEY = "paramedit.aliases"
ORDER_KEY = "paramedit.order"
#: a file's metadata may name at most this many aliases per stored tensor
MAX_ALIASES_PER_TENSOR = 64


def open_entries(path: str) -> tuple[list[TensorEntry], dict[str, str], Callable[[], None]]:
    """Lazy entries of one file, its metadata, and a function closing the file handle."""
    table, metadata, handle = read_tensor_table(path)
    entries = [TensorEntry(name, TENSOR, loader.shape, loader.dtype, None, loader)
               for name, loader in table]
    return entries, dict(metadata), handle.close


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
