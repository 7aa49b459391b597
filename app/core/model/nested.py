"""Find tensors at any depth of a loaded checkpoint (dicts, lists, tuples) and summarise the rest.

Loaded checkpoints are untrusted: containers may hold themselves (a cycle), nest thousands of
levels deep, or reach one container by exponentially many paths (``[x, x]`` nested). Every walk
here is iterative, skips a container already on its own path, and stops with a CheckpointError
past ``MAX_DEPTH`` levels, ``MAX_VISITS`` visited items or ``MAX_PATHS_TO_ONE`` paths into one container, so no input recurses or runs forever.
"""
from __future__ import annotations

import reprlib
from typing import Any, Iterator

import torch

from ..errors import ContentError

MAX_DEPTH = 256
MAX_VISITS = 1_000_000
#: one container object may be entered by at most this many paths (a DAG of ``[x, x]``)
MAX_PATHS_TO_ONE = 1024
#: a list or tuple of at most this many plain values is shown as its value, not summarised
SMALL_LIST = 16
MAX_ENTRIES = 10_000
_SCALARS = (bool, int, float, complex, str, bytes, type(None))


class TooComplex(ContentError):
    """A container structure that cannot be walked in bounded time."""


def _children(obj: Any):
    if isinstance(obj, dict):
        return list(obj.items())
    if isinstance(obj, (list, tuple)):
        return list(enumerate(obj))
    return None


def walk(obj: Any) -> Iterator[tuple[tuple, Any]]:
    """(key path, value) for ``obj`` and everything inside it, depth first in container order.

    A container met again while it is still on the current path (a cycle) is yielded but not
    entered. Raises TooComplex past MAX_DEPTH levels or MAX_VISITS items.
    """
    for path, value, _cycle in _walk(obj):
        yield path, value


def _walk(obj: Any) -> Iterator[tuple[tuple, Any, bool]]:
    """``walk`` that also says whether a container is one of its own ancestors."""
    visits = 0
    on_path: set[int] = set()
    entered: dict[int, int] = {}
    # stack of (path, value, leaving?): leaving marks the exit of a container
    stack: list[tuple[tuple, Any, bool]] = [((), obj, False)]
    while stack:
        path, value, leaving = stack.pop()
        if leaving:
            on_path.discard(id(value))
            continue
        visits += 1
        if visits > MAX_VISITS:
            raise TooComplex(f"it holds more than {MAX_VISITS:,} items (containers reached by "
                             "too many paths)")
        if len(path) > MAX_DEPTH:
            raise TooComplex(f"its containers nest deeper than {MAX_DEPTH} levels")
        kids = _children(value)
        cycle = kids is not None and id(value) in on_path
        yield path, value, cycle
        if kids is None or cycle or _is_flat_list(value):
            continue
        n = entered[id(value)] = entered.get(id(value), 0) + 1
        if n > MAX_PATHS_TO_ONE:
            raise TooComplex(f"one of its containers ({path_name(path) or 'the top level'}) is "
                             f"reached by more than {MAX_PATHS_TO_ONE} paths")
        on_path.add(id(value))
        stack.append((path, value, True))
        for k, v in reversed(kids):
            stack.append((path + (k,), v, False))


def iter_tensors(obj: Any, path: tuple = ()) -> Iterator[tuple[tuple, torch.Tensor]]:
    """(key path, tensor) for every tensor inside ``obj``, in container order; each state_dict's
    ``_metadata`` is checked on the way (``check_attributes``)."""
    for p, v in walk(obj):
        if isinstance(v, torch.Tensor):
            yield path + p, v
        elif isinstance(v, dict) and type(v) is not dict:
            check_attributes(v)


def check_attributes(d: dict) -> None:
    """A state_dict's ``_metadata`` (an attribute, which no walk enters) is saved with it: one
    nested deeper than ``MAX_DEPTH`` (a hostile file's; torch writes two levels) stopped the
    save with a RecursionError. Refused at open, like a container nested as deep."""
    meta = getattr(d, "__dict__", {}).get("_metadata")
    if meta is None:
        return
    stack, visits = [(meta, 0)], 0
    while stack:
        value, depth = stack.pop()
        visits += 1
        if depth > MAX_DEPTH or visits > MAX_VISITS:
            raise TooComplex(f"a state_dict's _metadata nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((x, depth + 1) for kv in value.items() for x in kv)
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack.extend((x, depth + 1) for x in value)


def path_name(path: tuple) -> str:
    """The CONTRACT's dotted name: keys joined by '.', list items by their index."""
    return ".".join(str(k) for k in path)


def distinct_names(paths: list[tuple], taken: set[str] | None = None) -> list[str]:
    """A distinct dotted name per key path, in order.

    Different paths can join to one name (``{"a.b": x, "a": {"b": y}}``, keys ``1`` and
    ``"1"``, a lone tensor and a key ``"tensor"``). The first keeps its name; each later one gets
    ``NAME~2``, ``NAME~3``... (the first such suffix still free), so nothing disappears.
    """
    taken = set() if taken is None else taken
    natural = [path_name(p) or "tensor" for p in paths]
    claimed = set(natural)
    out = []
    for name in natural:
        if name not in taken:
            taken.add(name)
            out.append(name)
            continue
        n = 2
        while f"{name}~{n}" in taken or f"{name}~{n}" in claimed:
            n += 1
        taken.add(f"{name}~{n}")
        out.append(f"{name}~{n}")
    return out


def tensor_dict(obj: Any) -> bool:
    """A plain state_dict: a dict of non-empty text keys to tensors only. Its names are its
    keys, and it holds no other values: the general walk (a generator step, a path tuple and a
    summary check per item) is skipped, which was half of building a 100k-tensor document."""
    return (isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values())
            and all(type(k) is str and k for k in obj))


def named_tensors(obj: Any) -> list[tuple[str, tuple, torch.Tensor]]:
    """(distinct name, key path, tensor) for every tensor inside ``obj``, in container order."""
    from .ties import MAX_TIE_NAMES, TooManyAliases
    if tensor_dict(obj):
        check_attributes(obj)
        reached: dict[int, int] = {}
        for k, t in obj.items():
            n = reached[id(t)] = reached.get(id(t), 0) + 1
            if n > MAX_TIE_NAMES:
                raise TooManyAliases(f"one tensor is reachable under more than {MAX_TIE_NAMES} "
                                     f"names ({k}, ...)")
        return [(k, (k,), t) for k, t in obj.items()]
    found = []
    reached: dict[int, int] = {}
    for p, t in iter_tensors(obj):
        n = reached[id(t)] = reached.get(id(t), 0) + 1
        if n > MAX_TIE_NAMES:  # stop now: listing 2**18 paths of one tensor helps nobody
            raise TooManyAliases(f"one tensor is reachable under more than {MAX_TIE_NAMES} "
                                 f"names ({path_name(p)}, ...): a container is reached by too "
                                 "many paths")
        found.append((p, t))
    names = distinct_names([p for p, _ in found])
    return [(n, p, t) for n, (p, t) in zip(names, found)]


def holds_non_tensor(obj: Any) -> bool:
    return any(_children(v) is None and not isinstance(v, torch.Tensor) for _, v in walk(obj))


_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxstring, _repr.maxother, _repr.maxlist = 2, 57, 57, SMALL_LIST


def summarize(obj: Any) -> str:
    """A one-line description of a non-tensor value: ``int: 12``, ``dict (3 keys)``."""
    if isinstance(obj, dict):
        return f"dict ({len(obj)} key{'s' if len(obj) != 1 else ''})"
    if isinstance(obj, (list, tuple)):
        kind = type(obj).__name__
        return f"{kind} ({len(obj)} item{'s' if len(obj) != 1 else ''})"
    if obj is None:
        return "None"
    try:
        text = _repr.repr(obj)
    except (RecursionError, MemoryError, ValueError):
        text = "..."
    text = " ".join(text.split())
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(obj).__name__}: {text}"


def _is_flat_list(obj: Any) -> bool:
    """A non-empty list or tuple of plain values only: one value, never entered item by item."""
    return isinstance(obj, (list, tuple)) and bool(obj) and all(isinstance(v, _SCALARS) for v in obj)


def _is_small_list(obj: Any) -> bool:
    return _is_flat_list(obj) and len(obj) <= SMALL_LIST


def top_level_entries(obj: Any) -> dict[str, str]:
    """Top-level keys of a checkpoint that hold anything besides tensors, summarised."""
    if not isinstance(obj, (dict, list, tuple)):
        return {} if isinstance(obj, torch.Tensor) else {"": summarize(obj)}
    if tensor_dict(obj):
        return {}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    return {str(k): summarize(v) for k, v in items if v is not obj and holds_non_tensor(v)}


def value_paths(obj: Any) -> list[tuple[tuple, Any, bool]]:
    """(key path, value, refers to itself) of every non-tensor value below the top level.

    Plain values, lists of plain values, empty containers and containers met again on their own
    path (a cycle) are values; other containers are entered, not listed.
    """
    if not isinstance(obj, (dict, list, tuple)) or tensor_dict(obj):
        return []
    out = []
    for path, v, cycle in _walk(obj):
        if not path or isinstance(v, torch.Tensor):
            continue
        kids = _children(v)
        if kids is None or not kids or cycle or _is_flat_list(v):
            out.append((path, v, cycle))
    return out


def nested_entries(obj: Any) -> dict[str, str]:
    """Non-tensor values below the top level by dotted path (``optimizer.param_groups.0.lr``).

    At most MAX_ENTRIES are listed; a last key ``...`` says how many more there are.
    """
    found = value_paths(obj)
    names = distinct_names([p for p, _v, _c in found])
    deep = [(name, path, v, cycle) for name, (path, v, cycle) in zip(names, found) if len(path) >= 2]
    out = {}
    for name, path, v, cycle in deep[:MAX_ENTRIES]:
        if cycle:
            out[name] = f"{summarize(v)} (refers to itself)"
        elif _is_small_list(v):
            out[name] = f"{type(v).__name__}: {summarize_value_list(v)}"
        else:
            out[name] = summarize(v)
    if len(deep) > MAX_ENTRIES:
        out["..."] = f"{len(deep) - MAX_ENTRIES:,} more values not listed"
    return out


def summarize_value_list(v: Any) -> str:
    try:
        text = _repr.repr(v)
    except (RecursionError, MemoryError, ValueError):
        text = "..."
    return text if len(text) <= 120 else text[:117] + "..."


def get_at(obj: Any, path: tuple) -> Any:
    for k in path:
        obj = obj[k]
    return obj
