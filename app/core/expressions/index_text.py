"""Numpy-style index text (``[:, 0]``, ``[1, 2:5:2]``, ``[..., -1]``, ``[[0, 2], :]``) parsed safely.

``parse_index`` reads the text with ``ast`` (never ``eval``) into a tuple of ints, slices,
``Ellipsis``, ``None`` and lists of ints; ``check_index`` refuses indices outside a shape;
``format_index`` writes the canonical text recipes store.
"""
from __future__ import annotations

import ast

from ..errors import UserError

Index = tuple
MAX_TEXT = 10_000
_INT64 = 2**63 - 1


def _show(text: str) -> str:
    """The index text for a message, cut short (hostile text never floods an error line)."""
    return repr(text if len(text) <= 60 else text[:59] + "…")


def _strip_brackets(text: str) -> str:
    """``[...]`` -> ``...`` when the first bracket closes at the very end (brackets are optional)."""
    if not (text.startswith("[") and text.endswith("]")):
        return text
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "["
        depth -= ch == "]"
        if depth == 0:
            return text[1:-1] if i == len(text) - 1 else text
    return text


def _int(node: ast.AST, text: str) -> int:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _int(node.operand, text)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Constant) and type(node.value) is int:
        if abs(node.value) > _INT64:
            raise UserError(f"index {_show(text)}: {_describe(node)} is out of range")
        return node.value
    raise UserError(f"index {_show(text)}: {_describe(node)} is not allowed; "
                    "use integers, slices like 0:2, ..., None or lists of integers")


def _describe(node: ast.AST) -> str:
    try:
        return _show(ast.unparse(node))
    except Exception:  # pragma: no cover - unparse handles every node ast.parse makes
        return type(node).__name__


def _item(node: ast.AST, text: str):
    if isinstance(node, ast.Slice):
        parts = [None if p is None else _int(p, text) for p in (node.lower, node.upper, node.step)]
        if parts[2] is not None and parts[2] <= 0:
            raise UserError(f"index {_show(text)}: a slice step must be positive, not {parts[2]}")
        return slice(*parts)
    if isinstance(node, ast.Constant) and node.value is Ellipsis:
        return Ellipsis
    if isinstance(node, ast.Constant) and node.value is None:
        return None
    if isinstance(node, ast.List):
        if not node.elts:
            raise UserError(f"index {_show(text)}: an index list must not be empty")
        return [_int(e, text) for e in node.elts]
    return _int(node, text)


def parse_index(text: str | None) -> Index:
    """Index text -> a tuple usable as ``tensor[idx]``. Empty text means the whole tensor: ``()``."""
    if text is None:
        return ()
    if not isinstance(text, str):
        raise UserError(f"an index must be text such as [0:2], not a {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise UserError(f"an index may be at most {MAX_TEXT:,} characters long")
    inner = _strip_brackets(text.strip()).strip()
    if not inner:
        return ()
    try:
        tree = ast.parse(f"_[{inner}]", mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise UserError(f"index {_show(text)} is not valid; write it like [:, 0] or [0:2]") from None
    sub = tree.body
    if not isinstance(sub, ast.Subscript):
        raise UserError(f"index {_show(text)} is not valid; write it like [:, 0] or [0:2]")
    node = sub.slice
    elements = node.elts if isinstance(node, ast.Tuple) else [node]
    items = tuple(_item(e, text) for e in elements)
    if sum(i is Ellipsis for i in items) > 1:
        raise UserError(f"index {_show(text)}: use ... at most once")
    return items


def check_index(idx: Index, shape) -> None:
    """UserError when ``idx`` does not fit ``shape`` (too many indices, or out of range)."""
    shape = tuple(shape)
    real = [i for i in idx if i is not None and i is not Ellipsis]
    if len(real) > len(shape):
        raise UserError(f"too many indices ({len(real)}) for a tensor of {len(shape)} "
                        f"dimension{'s' if len(shape) != 1 else ''}")
    dim = 0
    for i in idx:
        if i is None:
            continue
        if i is Ellipsis:
            dim += len(shape) - len(real)
            continue
        size = shape[dim]
        values = i if isinstance(i, list) else [i] if isinstance(i, int) else []
        for v in values:
            if not -size <= v < size:
                raise UserError(f"index {v} is out of range for dim {dim} of size {size}")
        if isinstance(i, slice) and i.step is not None and i.step <= 0:
            raise UserError(f"a slice step must be positive, not {i.step}")
        dim += 1


def _format_item(i) -> str:
    if i is Ellipsis:
        return "..."
    if i is None:
        return "None"
    if isinstance(i, slice):
        text = f"{'' if i.start is None else i.start}:{'' if i.stop is None else i.stop}"
        return text + (f":{i.step}" if i.step is not None else "")
    if isinstance(i, list):
        return "[" + ", ".join(str(int(v)) for v in i) + "]"
    return str(int(i))


def format_index(idx: Index) -> str:
    """Canonical text: ``(1, slice(0, 2))`` -> ``[1, 0:2]``; ``()`` -> ``""`` (whole tensor)."""
    if not idx:
        return ""
    return "[" + ", ".join(_format_item(i) for i in idx) + "]"
