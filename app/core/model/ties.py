"""Detect tied tensors: several names viewing exactly the same memory.

Linear in the number of names: entries are grouped by a memory key in one pass. A group's
``shared_with`` lists are inherently quadratic in its size, so one storage may be reachable by at
most ``MAX_TIE_NAMES`` names (real checkpoints tie a tensor under a handful); a file whose
containers reach one tensor by more paths (``[x, x]`` nested 18 deep: 2**18 names) is refused.
"""
from __future__ import annotations

from typing import Iterable

import torch

from ..gil_pacer import Pacer
from ..errors import ContentError
from .tensor_entry import TensorEntry

MAX_TIE_NAMES = 1024


class TooManyAliases(ContentError):
    """One storage reachable under more names than can be listed."""


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


def _key(t: torch.Tensor) -> tuple:
    if t.device.type == "meta" or t.layout != torch.strided:  # no memory of its own to compare
        return ("object", id(t))
    try:
        # The same view of the same memory: where its first element lives, with its shape,
        # strides and dtype (tie_key's storage object costs a Python object per tensor; a
        # non-empty view's address is unique to its storage while both are alive).
        return (t.device.type, t.device.index, t.data_ptr(), t.shape, t.stride(), t.dtype)
    except (RuntimeError, NotImplementedError):  # sparse / quantized / wrapper: by object
        return ("object", id(t))


def link_aliases(entries: Iterable[TensorEntry]) -> None:
    """Fill ``shared_with`` of every loaded entry whose tensor aliases another one's memory."""
    groups: dict[tuple, list[TensorEntry]] = {}
    by_object: dict[int, tuple] = {}  # one tensor object reached by many paths: key it once
    pace = Pacer()  # in a loading worker: a tensor's C calls must not starve the window
    for e in entries:
        pace()
        if e.is_loaded:
            t = e.tensor()
            key = by_object.get(id(t))
            if key is None:
                if t.numel() == 0:
                    continue
                key = by_object[id(t)] = _key(t)
            group = groups.setdefault(key, [])
            group.append(e)
            if len(group) > MAX_TIE_NAMES:
                raise TooManyAliases(
                    f"one tensor is reachable under more than {MAX_TIE_NAMES} names "
                    f"({group[0].name}, {group[1].name}, ...): a container nested in itself "
                    "many times; the file was not opened")
    for group in groups.values():
        if len(group) > 1:
            tie_group(group)


def tie_group(group: list[TensorEntry]) -> None:
    if len(group) > MAX_TIE_NAMES:
        raise TooManyAliases(f"{group[0].name} would be tied under more than {MAX_TIE_NAMES} names")
    names = [e.name for e in group]
    for i, e in enumerate(group):
        e.shared_with = names[:i] + names[i + 1:]


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
