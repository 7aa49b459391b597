"""Scalar entries of a checkpoint (an epoch, a learning rate, a string) and safetensors
``__metadata__``, changed as undoable, recordable Edits.

Recipe steps: ``{"op": "set_entry", "target": "optimizer.param_groups.0.lr", "value": 0.0003}``
and ``{"op": "set_metadata", "key": "format", "value": "pt"}`` (``null`` removes the key).

A scalar is set in place in its parent dict or list; an item of a tuple is set by rebuilding the
tuple in its own parent (and so on up, while parents are tuples). Undo puts back the very objects
that were there (the old value with its type, the old tuple). Names are the tree's dotted names;
``NAME.I`` also reaches item I of a list or tuple of plain values (``betas.0``).
"""
from __future__ import annotations

import weakref
from typing import Any

from ..errors import UserError
from ..model.document import Document
from ..model.nested import _is_flat_list, distinct_names, get_at, path_name, value_paths
from .base import Edit

MAX_TEXT = 10_000          # a value's text, a string value, a metadata value
MAX_KEY = 1000             # a metadata key
MAX_INT_BITS = 4096        # an integer value (JSON and str() still write it)
KINDS = ("int", "float", "bool", "str", "None")
METADATA_FORMATS = ("safetensors", "safetensors-sharded")


def scalar_kind(value: Any) -> str | None:
    """``int`` / ``float`` / ``bool`` / ``str`` / ``None`` for a plain value, else None."""
    if value is None:
        return "None"
    for kind in (bool, int, float, str):  # bool first: True is an int too
        if isinstance(value, kind):
            return kind.__name__
    return None


def value_text(value: Any) -> str:
    """The text that gives ``value`` back through ``parse_value`` (floats round-trip)."""
    if isinstance(value, float):
        return repr(float(value))
    return str(value)


def editable_text(value: Any, name: str = "the value") -> str:
    """``value_text`` for a dialog; UserError when it is too long to edit as text (a dialog
    must never cut it short and write the cut value back)."""
    try:
        text = value_text(value)
    except ValueError:  # an integer of more digits than Python converts
        text = None
    if text is None or len(text) > MAX_TEXT:
        raise UserError(f"{name} is longer than {MAX_TEXT:,} characters; set it with a recipe "
                        "step (set_entry) instead")
    return text


def brief(value: Any, limit: int = 40) -> str:
    if isinstance(value, str) and len(value) > 4 * limit:
        value = value[: 4 * limit]
    try:
        text = " ".join(repr(value).split()) if not isinstance(value, str) else repr(value)
    except ValueError:  # an integer of more digits than Python converts
        text = f"<{type(value).__name__} of {value.bit_length():,} bits>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_value(text: str, kind: str, name: str = "the value") -> Any:
    """``text`` read as ``kind``; a UserError of one line when it does not fit.

    ``None`` is given only by the text ``None`` (for a str, the text is the string itself)."""
    if kind not in KINDS:
        raise UserError(f"unknown value type {kind!r} (known: {', '.join(KINDS)})")
    if not isinstance(text, str):
        raise UserError(f"{name}: the value must be text")
    if len(text) > MAX_TEXT:
        raise UserError(f"{name}: the value is longer than {MAX_TEXT:,} characters")
    if kind == "str":
        return text
    t = text.strip()
    if t == "None":
        return None
    if kind == "None":
        raise UserError(f"{name}: type None takes only the text None, not {brief(text)}")
    if kind == "bool":
        if t.lower() in ("true", "false"):
            return t.lower() == "true"
        raise UserError(f"{name} is a bool: write true or false, not {brief(text)}")
    if kind == "int":
        try:
            value = int(t, 10)
        except ValueError:
            raise UserError(f"{name} is an int: {brief(text)} is not a whole number") from None
        check_int(value, name)
        return value
    try:
        return float(t)
    except ValueError:
        raise UserError(f"{name} is a float: {brief(text)} is not a number (e.g. 3e-4)") from None


def check_int(value: int, name: str = "the value") -> None:
    if value.bit_length() > MAX_INT_BITS:
        raise UserError(f"{name}: the integer is too large (at most {MAX_INT_BITS} bits)")


def check_scalar(value: Any, name: str = "the value") -> None:
    """UserError unless ``value`` is a plain int, float, bool, str or None within bounds."""
    if value is not None and type(value) not in (bool, int, float, str):
        raise UserError(f"{name}: only a number, true/false, text or None can be set, "
                        f"not a {type(value).__name__}")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise UserError(f"{name}: the text is longer than {MAX_TEXT:,} characters")
    if type(value) is int:
        check_int(value, name)


# -- where a name sits -------------------------------------------------------------------------

#: doc -> (revision, id(container), paths): a recipe of many set_entry steps walks the
#: checkpoint once, not once per step (setting a scalar changes no path)
_PATHS: "weakref.WeakKeyDictionary[Document, tuple[int, int, dict[str, tuple]]]" = \
    weakref.WeakKeyDictionary()


def entry_paths(doc: Document, fresh: bool = False) -> dict[str, tuple]:
    """The tree's dotted name of every non-tensor value -> its key path in ``doc.container``."""
    if doc.module is not None or doc.container is None:
        return {}
    cached = _PATHS.get(doc)
    if not fresh and cached is not None and cached[:2] == (doc.revision, id(doc.container)):
        return cached[2]
    found = value_paths(doc.container)
    names = distinct_names([p for p, _v, _c in found])
    paths = {n: p for n, (p, _v, cycle) in zip(names, found) if not cycle}
    _PATHS[doc] = (doc.revision, id(doc.container), paths)
    return paths


def _still_current(doc: Document, was_current: bool) -> None:
    """After a change of one scalar: the cached paths hold for the new revision too."""
    cached = _PATHS.get(doc)
    if was_current and cached is not None:
        _PATHS[doc] = (doc.revision, id(doc.container), cached[2])


def _cache_current(doc: Document) -> bool:
    cached = _PATHS.get(doc)
    return cached is not None and cached[:2] == (doc.revision, id(doc.container))


def find_entry(doc: Document, name: str) -> tuple[tuple, Any]:
    """(key path, value) of the scalar entry ``name``; UserError when there is none."""
    if not isinstance(name, str) or not name:
        raise UserError("set_entry: 'target' must be an entry's dotted name")
    if doc.module is not None or doc.container is None:
        raise UserError(f"{name}: only a checkpoint's own entries can be set (this document "
                        "has no entries besides tensors)")
    if name in doc.tensors:
        raise UserError(f"{name} is a tensor; edit its values instead")
    try:
        return _find(doc, name, entry_paths(doc))
    except (KeyError, IndexError, TypeError, UserError):  # the cache may be stale: walk again
        return _find(doc, name, entry_paths(doc, fresh=True))


def _find(doc: Document, name: str, paths: dict[str, tuple]) -> tuple[tuple, Any]:
    path = paths.get(name)
    if path is None:  # an item of a list or tuple of plain values: betas.0
        head, _, tail = name.rpartition(".")
        holder = paths.get(head)
        if holder is not None and tail.isascii() and tail.isdigit() and len(tail) < 12:
            seq = get_at(doc.container, holder)
            if _is_flat_list(seq) and int(tail) < len(seq):
                path = holder + (int(tail),)
    if path is None:
        raise UserError(f"there is no entry named {brief(name, 80)}")
    if len(path) == 1 and sum(str(k) == str(path[0]) for k in _top_keys(doc.container)) > 1:
        raise UserError(f"several top-level entries are named {brief(name, 80)}")
    value = get_at(doc.container, path)
    if scalar_kind(value) is None:
        what = type(value).__name__
        hint = f"; set one item as {brief(name + '.0', 60)}" if _is_flat_list(value) else ""
        raise UserError(f"{name} is a {what}, not a single value (int, float, bool, str or "
                        f"None){hint}")
    return path, value


def _top_keys(container: Any) -> list:
    return list(container) if isinstance(container, dict) else []


_DOC = object()  # the holder of a top-level container (``doc.container`` itself)


def _rebuilt(seq: tuple, index: int, value: Any) -> tuple:
    items = list(seq)
    items[index] = value
    if type(seq) is tuple:
        return tuple(items)
    make = getattr(type(seq), "_make", None)  # a namedtuple
    if callable(make):
        try:
            rebuilt = make(items)
        except Exception:
            rebuilt = None
        if (type(rebuilt) is type(seq) and len(rebuilt) == len(items)
                and all(a is b for a, b in zip(rebuilt, items))):
            return rebuilt
    raise UserError(f"the value sits in a {type(seq).__name__}, which cannot be rebuilt")


def _put(doc: Document, path: tuple, value: Any) -> tuple[Any, Any, Any]:
    """Set ``value`` at ``path``; returns (holder, key, old object) for ``_restore``."""
    while True:
        parent = doc.container if len(path) == 1 else get_at(doc.container, path[:-1])
        key = path[-1]
        if isinstance(parent, (dict, list)):
            old = parent[key]
            parent[key] = value
            return parent, key, old
        if not isinstance(parent, tuple):
            raise UserError(f"{path_name(path)} sits in a {type(parent).__name__}, "
                            "which cannot be changed")
        value = _rebuilt(parent, key, value)
        path = path[:-1]
        if not path:  # the whole checkpoint is a tuple
            old, doc.container = doc.container, value
            return _DOC, None, old


def _restore(doc: Document, record: tuple[Any, Any, Any]) -> None:
    holder, key, old = record
    if holder is _DOC:
        doc.container = old
    else:
        holder[key] = old


class SetEntryEdit(Edit):
    """Set the scalar entry ``name`` (dotted, as in the tree) to ``value``."""

    structural = True  # the tree shows entries' values: it is rebuilt

    def __init__(self, name: str, value: Any):
        if not isinstance(name, str) or not name:
            raise UserError("set_entry: 'target' must be an entry's dotted name")
        check_scalar(value, name)
        self.name, self.value = name, value
        self._record: tuple | None = None

    @property
    def label(self) -> str:
        name = self.name if len(self.name) <= 60 else self.name[:59] + "…"
        return f"Set {name} = {brief(self.value)}"

    def apply(self, doc: Document) -> None:
        path, _old = find_entry(doc, self.name)
        current = _cache_current(doc)
        record = _put(doc, path, self.value)
        self._record = record
        doc.mark_changed()
        _still_current(doc, current)

    def revert(self, doc: Document) -> None:
        if self._record is None:
            return
        current = _cache_current(doc)
        _restore(doc, self._record)
        self._record = None
        doc.mark_changed()
        _still_current(doc, current)

    def recipe_step(self) -> dict:
        return {"op": "set_entry", "target": self.name, "value": self.value}

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> "SetEntryEdit":
        return cls(step["target"], step["value"])


def check_metadata_key(key: Any) -> str:
    from ..formats.safetensors_file import ALIASES_KEY, ORDER_KEY
    if not isinstance(key, str) or not key:
        raise UserError("set_metadata: 'key' must be non-empty text")
    if len(key) > MAX_KEY:
        raise UserError(f"set_metadata: the key is longer than {MAX_KEY:,} characters")
    if key in (ALIASES_KEY, ORDER_KEY):
        raise UserError(f"{key} is written by paramedit itself on every save; it cannot be set")
    return key


class SetMetadataEdit(Edit):
    """Add, change (``value`` text) or remove (``value`` None) a safetensors ``__metadata__`` key."""

    structural = True

    def __init__(self, key: str, value: str | None):
        self.key = check_metadata_key(key)
        if value is not None and not isinstance(value, str):
            raise UserError(f"set_metadata: __metadata__ holds only text, not {brief(value)}")
        if value is not None and len(value) > MAX_TEXT:
            raise UserError(f"set_metadata: the value is longer than {MAX_TEXT:,} characters")
        self.value = value
        self._old: tuple[list, bool] | None = None

    @property
    def label(self) -> str:
        if self.value is None:
            return f"Remove metadata {brief(self.key)}"
        return f"Set metadata {brief(self.key)} = {brief(self.value)}"

    def apply(self, doc: Document) -> None:
        if doc.format not in METADATA_FORMATS:
            raise UserError("only safetensors files have __metadata__; save as .safetensors "
                            "first to give it metadata")
        if self.key in doc.tensors:
            raise UserError(f"{self.key} names a tensor: safetensors uses such keys for tied "
                            "names, which paramedit writes itself")
        if self.value is None and self.key not in doc.metadata:
            raise UserError(f"__metadata__ has no key {brief(self.key)}")
        self._old = list(doc.metadata.items())  # order kept exactly on undo
        if self.value is None:
            del doc.metadata[self.key]
        else:
            doc.metadata[self.key] = self.value
        doc.mark_changed()

    def revert(self, doc: Document) -> None:
        if self._old is None:
            return
        doc.metadata.clear()
        doc.metadata.update(self._old)
        self._old = None
        doc.mark_changed()

    def recipe_step(self) -> dict:
        return {"op": "set_metadata", "key": self.key, "value": self.value}

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> "SetMetadataEdit":
        return cls(step["key"], step["value"])
