"""The tree's filter text: a name term plus ``dtype:``, ``shape:`` and ``kind:`` terms, matched
over a flat index of every node's full name (never through the Qt model, row by row).

Syntax (terms separated by spaces, all must hold):

- ``encoder``: the name contains the text (case-insensitive);
- ``encoder.*.weight``: a glob (``*`` ``?`` ``[...]``) matching the whole name or any tail that
  starts after a dot (``bn.running_*`` finds ``conv.bn.running_mean``);
- ``re:layers\\.[0-3]\\.``: a regular expression searched in the name (the rest of the text,
  spaces included; run by the ``regex`` package with a time budget);
- ``dtype:bfloat16`` (or a glob: ``dtype:float*``), ``shape:*x1x1`` (``4x3x1x1``; ``scalar``),
  ``kind:buffer`` (``param``/``parameter``, ``buffer``, ``tensor``, ``entry``, ``module``,
  ``group``).
"""
from __future__ import annotations

import bisect
import fnmatch
import re
from itertools import compress, repeat
from operator import contains
from dataclasses import dataclass
from typing import Callable

import regex

from .errors import UserError
from .expressions.user_regex import Deadline, compile_pattern, search
from .model.tree import ENTRY, GROUP, MODULE, Node

KINDS = {"param": "parameter", "parameter": "parameter", "parameters": "parameter",
         "buffer": "buffer", "buffers": "buffer", "tensor": "tensor", "tensors": "tensor",
         "entry": ENTRY, "entries": ENTRY, "module": MODULE, "modules": MODULE,
         "group": GROUP, "groups": GROUP}
TERMS = ("dtype", "shape", "kind")
SYNTAX_HELP = (
    "Filter the tree (all terms must hold):\n"
    "  encoder            names containing the text\n"
    "  encoder.*.weight   a glob (* ? [..]) on the name or any tail after a dot\n"
    "  re:layers\\.[0-3]\\.  a regular expression (the rest of the text)\n"
    "  dtype:bfloat16     dtype (a glob: dtype:float*)\n"
    "  shape:*x1x1        shape as 4x3x1x1 (shape:scalar)\n"
    "  kind:buffer        param, buffer, tensor, entry, module or group")


#: regex syntax that means something else in names joined by newlines: string anchors, inline
#: flags and lookarounds, escapes that name a newline
_PER_NAME = re.compile(r"\\[AZzn]|\(\?|\\x0[aA]|\\u000[aA]|\\N|\\012")


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _tail_glob(pattern: str) -> Callable[[str], object]:
    """A glob matching a whole name or any tail after a dot, as one anchored regex match."""
    return re.compile(r"(?s:.*\.)?" + fnmatch.translate(pattern)).match


def _literals(pattern: str) -> list[str]:
    """Text every match must contain (the glob's literal runs), longest first: a cheap
    substring pass narrows 100k names before the regex runs on the rest."""
    if "[" in pattern:
        return []
    return sorted((s for s in re.split(r"[*?]", pattern) if s), key=len, reverse=True)


@dataclass(frozen=True)
class NameFilter:
    """A parsed filter text; ``parse_filter`` builds it, ``NameIndex.matches`` applies it."""

    text: str = ""
    name: str = ""            # lower-cased substring or glob
    regex: str | None = None  # ``re:`` term
    dtype: str | None = None
    shape: str | None = None
    kind: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.name or self.regex or self.dtype or self.shape or self.kind)

    def narrows(self, previous: "NameFilter") -> bool:
        """Whether every match of ``self`` is a match of ``previous`` (typing one more letter
        of a plain name): then only ``previous``'s matches need to be searched."""
        return (not previous.empty and not is_glob(self.name) and not is_glob(previous.name)
                and previous.name in self.name and self.regex == previous.regex
                and self.dtype == previous.dtype and self.shape == previous.shape
                and self.kind == previous.kind)


def parse_filter(text: str) -> NameFilter:
    """Parse the filter box's text; ``UserError`` (one line) for a bad term or regex."""
    regex = None
    head = text
    at = _find_re(text)
    if at is not None:
        head, regex = text[:at], text[at + 3:]
        if not regex:
            regex = None
        else:
            compile_pattern(regex, "filter")
    values: dict[str, str] = {}
    words = []
    for word in head.split():
        key, colon, value = word.partition(":")
        key = key.lower()
        if colon and key in TERMS:
            if not value:
                raise UserError(f"filter: {key}: needs a value ({key}:...)")
            values[key] = value.lower()
        else:
            words.append(word)
    kind = values.get("kind")
    if kind is not None:
        if kind not in KINDS:
            raise UserError(f"filter: kind:{kind} is not one of param, buffer, tensor, entry, "
                            "module, group")
        kind = KINDS[kind]
    return NameFilter(text, " ".join(words).lower(), regex, values.get("dtype"),
                      values.get("shape"), kind)


def _find_re(text: str) -> int | None:
    """Where a ``re:`` term starts (at the start or after a space)."""
    for m in re.finditer(r"(?:^|(?<=\s))re:", text):
        return m.start()
    return None


def shape_key(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape) if shape else "scalar"


class NameIndex:
    """Every node under ``root`` (root excluded) with its lower-cased full name, in tree order.

    ``matches(filter)`` returns the sorted indices of matching nodes; ``shown(node, matches)``
    whether a row is to be shown (it matches, or something below it does)."""

    def __init__(self, root: Node):
        self.root = root
        self.nodes: list[Node] = []
        self.full: list[str] = []  # as written (a regex may care about case)
        stack = [(c, c.name) for c in reversed(root.children)]
        while stack:
            node, path = stack.pop()
            self.nodes.append(node)
            self.full.append(node.entry.name if node.entry is not None else path)
            stack.extend((c, f"{path}.{c.name}") for c in reversed(node.children))
        self.names = [n.lower() for n in self.full]
        self._columns: dict[str, list] = {}
        self._joined: tuple[str, list[int]] | bool | None = None  # names joined, for regexes
        self.pos = {id(n): i for i, n in enumerate(self.nodes)}
        # end[i]: one past the last node of i's subtree (its parent's next child, or further up)
        self.end = [len(self.nodes)] * len(self.nodes)
        for i in range(len(self.nodes) - 1, -1, -1):
            node = self.nodes[i]
            if node.children:
                last = self.pos[id(node.children[-1])]
                self.end[i] = self.end[last]
            else:
                self.end[i] = i + 1
        self._last: tuple[NameFilter, list[int]] | None = None

    def __len__(self) -> int:
        return len(self.nodes)

    def matches(self, flt: NameFilter, deadline: Deadline | None = None) -> list[int]:
        """Indices of the nodes that pass every term of ``flt`` (all nodes when it is empty)."""
        if flt.empty:
            return list(range(len(self.nodes)))
        last = self._last
        candidates = last[1] if last is not None and flt.narrows(last[0]) else None
        out = self._match(flt, candidates, deadline or Deadline())
        self._last = (flt, out)
        return out

    def _match(self, flt: NameFilter, candidates: list[int] | None,
               deadline: Deadline) -> list[int]:
        names, nodes = self.names, self.nodes
        idx = range(len(names)) if candidates is None else candidates
        if flt.name:
            if is_glob(flt.name):
                idx = self._glob(flt.name, idx)
            else:
                idx = _containing(names, flt.name, idx)
        if flt.kind is not None:
            idx = _equal(self._column("kind"), flt.kind, idx)
        if flt.dtype is not None:
            idx = _glob_or_equal(self._column("dtype"), flt.dtype, idx)
        if flt.shape is not None:
            idx = _glob_or_equal(self._column("shape"), flt.shape, idx)
        if flt.regex is not None:
            compiled = compile_pattern(flt.regex, "filter")
            full = self.full
            if isinstance(idx, range) or len(idx) > 1000:
                idx = self._regex_lines(flt.regex, idx, deadline)
            idx = [i for i in idx if search(compiled, full[i], deadline)]
        return list(idx)

    def _regex_lines(self, pattern: str, idx, deadline: Deadline):
        """Candidate names for a regex, found by searching the names joined by newlines (one
        scan in C instead of a timed call per name: 2 s -> 0.05 s at 185k names). Every name
        with a match is a candidate (its match starts on its line); the caller checks each
        candidate on its own. Patterns whose meaning changes in a joined text (string anchors,
        inline flags and lookarounds, newlines) keep the per-name search."""
        if _PER_NAME.search(pattern) or self._blob() is None:
            return idx
        try:
            lines = regex.compile(pattern, regex.MULTILINE)
        except (regex.error, RecursionError, OverflowError, ValueError):
            return idx
        blob, starts = self._blob()
        found, pos, end = [], 0, len(blob)
        try:
            while pos <= end:
                m = lines.search(blob, pos, timeout=deadline.left())
                if m is None:
                    break
                line = bisect.bisect_right(starts, m.start()) - 1
                found.append(line)
                pos = starts[line + 1] if line + 1 < len(starts) else end + 1
        except TimeoutError:
            raise UserError(f"filter: the regular expression took longer than "
                            f"{deadline.seconds:g} s; simplify it") from None
        if isinstance(idx, range):
            return found
        keep = set(idx)
        return [i for i in found if i in keep]

    def _blob(self) -> tuple[str, list[int]] | None:
        if self._joined is None:
            text = "\n".join(self.full)
            if text.count("\n") != max(0, len(self.full) - 1):  # a name holds a newline
                self._joined = False
            else:
                starts, at = [], 0
                for name in self.full:
                    starts.append(at)
                    at += len(name) + 1
                self._joined = (text, starts)
        return self._joined or None

    def _column(self, what: str) -> list[str]:
        """Each node's kind, dtype or shape as text (built on first use; None: not a tensor)."""
        col = self._columns.get(what)
        if col is None:
            if what == "kind":
                col = [n.kind for n in self.nodes]
            elif what == "dtype":
                col = [n.entry.dtype_name if n.entry is not None else None for n in self.nodes]
            else:
                col = [shape_key(n.entry.shape) if n.entry is not None else None
                       for n in self.nodes]
            self._columns[what] = col
        return col

    def _glob(self, pattern: str, idx) -> list[int]:
        names = self.names
        for lit in _literals(pattern):
            idx = _containing(names, lit, idx)
        hit = _tail_glob(pattern)
        return [i for i in idx if hit(names[i])]

    def shown(self, node: Node, matches: list[int]) -> bool:
        """Whether ``node`` or a node below it is among ``matches`` (sorted indices): nodes are
        in depth-first order, so a subtree is the index range ``[i, end[i])`` and one bisection
        answers, with no set of ancestors to build per keystroke."""
        i = self.pos.get(id(node))
        if i is None:
            return False
        j = bisect.bisect_left(matches, i)
        return j < len(matches) and matches[j] < self.end[i]

    def ancestors(self, i: int) -> list[Node]:
        """The nodes above match ``i``, outermost first (to expand)."""
        out, node = [], self.nodes[i].parent
        while node is not None and node is not self.root:
            out.append(node)
            node = node.parent
        return out[::-1]


def _containing(names: list[str], text: str, idx) -> list[int]:
    """Indices (from ``idx``) of the names containing ``text``; the whole list in C calls."""
    if isinstance(idx, range):
        return list(compress(idx, map(contains, names, repeat(text))))
    return [i for i in idx if text in names[i]]


def _equal(column: list, value: str, idx) -> list[int]:
    if isinstance(idx, range):
        return [i for i, v in enumerate(column) if v == value]
    return [i for i in idx if column[i] == value]


def _glob_or_equal(column: list, pattern: str, idx) -> list[int]:
    if not is_glob(pattern):
        return _equal(column, pattern, idx)
    hit = re.compile(fnmatch.translate(pattern)).match
    memo: dict = {}  # few distinct dtypes and shapes: match each once
    keep = [i for i in idx if column[i] is not None
            and (memo[column[i]] if column[i] in memo else memo.setdefault(column[i], bool(hit(column[i]))))]
    return keep
