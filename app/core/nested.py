"""Find tensors at any depth of a loaded checkpoint (dicts, lists, tuples) and summarise the rest."""
from __future__ import annotations

from typing import Any, Iterator

import torch


def iter_tensors(obj: Any, path: tuple = ()) -> Iterator[tuple[tuple, torch.Tensor]]:
    """(key path, tensor) for every tensor inside ``obj``, in container order."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from iter_tensors(v, path + (k,))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from iter_tensors(v, path + (i,))


def path_name(path: tuple) -> str:
    """The CONTRACT's dotted name: keys joined by '.', list items by their index."""
    return ".".join(str(k) for k in path)


def holds_non_tensor(obj: Any) -> bool:
    if isinstance(obj, torch.Tensor):
        return False
    if isinstance(obj, dict):
        return any(holds_non_tensor(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(holds_non_tensor(v) for v in obj)
    return True


def summarize(obj: Any) -> str:
    """A one-line description of a non-tensor value: ``int: 12``, ``dict (3 keys)``."""
    if isinstance(obj, dict):
        return f"dict ({len(obj)} key{'s' if len(obj) != 1 else ''})"
    if isinstance(obj, (list, tuple)):
        kind = type(obj).__name__
        return f"{kind} ({len(obj)} item{'s' if len(obj) != 1 else ''})"
    if obj is None:
        return "None"
    text = repr(obj)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(obj).__name__}: {text}"


def top_level_entries(obj: Any) -> dict[str, str]:
    """Top-level keys of a checkpoint that hold anything besides tensors, summarised."""
    if not isinstance(obj, (dict, list, tuple)):
        return {} if isinstance(obj, torch.Tensor) else {"": summarize(obj)}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    return {str(k): summarize(v) for k, v in items if holds_non_tensor(v)}


def get_at(obj: Any, path: tuple) -> Any:
    for k in path:
        obj = obj[k]
    return obj
