"""The nested dicts and lists of a torch pickle, changed in step with a ``Document``: set, pop,
insert and rename entries at a path of keys."""
from __future__ import annotations

from typing import Any

from ..errors import UserError
from .nested import get_at, path_name
from .tensor_entry import TensorEntry


def _parent(container: Any, path: tuple) -> Any:
    if not path:
        raise UserError("the checkpoint is a lone tensor; it has no name to change")
    return get_at(container, path[:-1])


def _set_in_container(container: Any, path: tuple, value: Any) -> None:
    parent = _parent(container, path)
    if isinstance(parent, tuple):
        raise UserError(f"{path_name(path)} sits in a tuple, which cannot be changed")
    parent[path[-1]] = value


def _pop_from_container(container: Any, path: tuple) -> tuple[int, Any]:
    parent = _parent(container, path)
    if not isinstance(parent, dict):
        raise UserError(f"{path_name(path)} is an item of a list; only dict entries can be removed")
    index = list(parent).index(path[-1])
    return index, parent.pop(path[-1])


def _insert_into_container(container: Any, path: tuple, slot: tuple[int, Any], value: Any) -> None:
    parent = _parent(container, path)
    items = list(parent.items())
    items.insert(slot[0], (path[-1], value))
    parent.clear()  # same dict object: an OrderedDict keeps its ``_metadata``
    parent.update(items)


def _new_path(container: Any, old_path: tuple, new_name: str) -> tuple:
    """The deepest dict on ``old_path`` whose dotted name prefixes ``new_name`` gets the rest."""
    for cut in range(len(old_path) - 1, -1, -1):
        parent_path = old_path[:cut]
        prefix = path_name(parent_path)
        if prefix and not new_name.startswith(prefix + "."):
            continue
        rest = new_name[len(prefix) + 1:] if prefix else new_name
        if rest and isinstance(get_at(container, parent_path), dict):
            return parent_path + (rest,)
    raise UserError(f"cannot place a tensor named {new_name!r} in this checkpoint")


def _rename_in_container(container: Any, moves: list[tuple[TensorEntry, str]]) -> None:
    """Move tensors to the keys of their new names; a key renamed within its dict keeps its place."""
    if not moves:
        return
    plans = [(e, e.path, _new_path(container, e.path, new)) for e, new in moves]
    by_parent: dict[int, tuple[dict, dict]] = {}
    for e, old, new in plans:
        parent = get_at(container, old[:-1])
        if not isinstance(parent, dict):
            raise UserError(f"{e.name} is an item of a list; it cannot be renamed")
        if new[:-1] == old[:-1]:
            by_parent.setdefault(id(parent), (parent, {}))[1][old[-1]] = new[-1]
    moved = [(e, old, new) for e, old, new in plans if new[:-1] != old[:-1]]
    for parent, keys in by_parent.values():
        items = [(keys.get(k, k), v) for k, v in parent.items()]
        if len({k for k, _ in items}) != len(items):
            raise UserError("renaming would give two entries of one dict the same key")
    for e, _old, new in moved:
        if new[-1] in get_at(container, new[:-1]):
            raise UserError(f"renaming {e.name} would overwrite the entry {path_name(new)}")
    for parent, keys in by_parent.values():
        items = [(keys.get(k, k), v) for k, v in parent.items()]
        parent.clear()
        parent.update(items)
    for e, old, new in moved:
        value = get_at(container, old[:-1]).pop(old[-1])
        target = get_at(container, new[:-1])
        if new[-1] in target:
            raise UserError(f"renaming {e.name} would overwrite the entry {path_name(new)}")
        target[new[-1]] = value
    for e, _old, new in plans:
        e.path = new
