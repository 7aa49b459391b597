"""Detect tied tensors: several names viewing exactly the same memory."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import torch

from .tensor_entry import TensorEntry


def tie_key(t: torch.Tensor) -> tuple:
    """Identity of the memory a tensor views. Reading it never touches the data (mmap stays lazy).
    A sparse tensor has no storage of its own: it is known by its component tensors' memory."""
    if t.layout == torch.sparse_coo:
        return (str(t.layout), tuple(t.shape), tie_key(t._indices()), tie_key(t._values()))
    if t.layout in (torch.sparse_csr, torch.sparse_bsr):
        return (str(t.layout), tuple(t.shape), tie_key(t.crow_indices()),
                tie_key(t.col_indices()), tie_key(t.values()))
    if t.layout in (torch.sparse_csc, torch.sparse_bsc):
        return (str(t.layout), tuple(t.shape), tie_key(t.ccol_indices()),
                tie_key(t.row_indices()), tie_key(t.values()))
    storage = t.untyped_storage()
    return (t.device.type, storage.data_ptr(), storage.nbytes(), t.storage_offset(),
            tuple(t.shape), tuple(t.stride()), t.dtype)


def link_aliases(entries: Iterable[TensorEntry]) -> None:
    """Fill ``shared_with`` of every loaded entry whose tensor aliases another one's memory."""
    groups: dict[tuple, list[TensorEntry]] = defaultdict(list)
    for e in entries:
        if e.is_loaded:
            t = e.tensor()
            if t.numel() == 0:
                continue
            key = ("object", id(t)) if t.device.type == "meta" else tie_key(t)  # meta has no memory
            groups[key].append(e)
    for group in groups.values():
        if len(group) > 1:
            tie_group(group)


def tie_group(group: list[TensorEntry]) -> None:
    names = [e.name for e in group]
    for e in group:
        e.shared_with = [n for n in names if n != e.name]


def unique_entries(entries: Iterable[TensorEntry]) -> list[TensorEntry]:
    """One entry per distinct storage: the first of each tie group, in order."""
    seen: set[str] = set()
    out = []
    for e in entries:
        if e.name in seen:
            continue
        seen.add(e.name)
        seen.update(e.shared_with)
        out.append(e)
    return out
