"""The flat index of a tree's names that the filter box runs over (``tree_filter`` parses the
text): every node's full name in depth-first order, so that a subtree is the index range
``[i, end[i])``, and whole-column scans in numpy (``name_scan``) instead of a call per name.

A keystroke at 100k tensors (185k nodes) must answer within 50 ms: the name term is one numpy
pass (or a narrowing of the previous answer), recent answers are kept (a backspace is a
lookup), and which rows show is computed for all nodes at once (``visibility``), so the tree
model asks one byte per row instead of bisecting the matches.
"""
from __future__ import annotations

import bisect
import fnmatch
import re
from collections import OrderedDict
from dataclasses import replace
from itertools import compress, repeat
from operator import contains
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import regex

from .expressions.user_regex import Deadline, compile_pattern, search
from .errors import UserError
from .model.tree import Node
from .name_scan import Codes, Matches, NameBytes, as_list, as_mask, both

if TYPE_CHECKING:
    from .tree_filter import NameFilter

#: answers kept per index (typing, then backspacing over it, asks for them again), as masks
#: of one byte per node, or as lists when no longer than this
RECENT, KEPT_LIST = 32, 4096
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


def shape_key(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape) if shape else "scalar"


class Visibility:
    """Which nodes a filter shows, one byte per node of the index (``shown``: it or a node
    below it matches; ``below``: a node strictly below it matches), and a last 0 byte: a
    position of -1 (a node not in the index) is never shown."""

    def __init__(self, shown: bytes, below: bytes):
        self.shown, self.below = shown, below


class NameIndex:
    """Every node under ``root`` (root excluded) with its lower-cased full name, in tree order.

    ``matches(filter)`` returns the sorted indices of matching nodes (a list that may be
    handed out again: not to be changed); ``shown(node, matches)`` whether a row is to be shown (it
    matches, or something below it does); ``visibility(matches)`` says it for every node."""

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
        self._columns: dict[str, Codes] = {}
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
        self._ends = np.array(self.end, dtype=np.int64)
        self.bytes = NameBytes(self.names)
        # filter -> its answer as a mask, or a short list (a list of 185k ints is 7 MB)
        self._recent: OrderedDict = OrderedDict()
        self._last: tuple[NameFilter, Matches] | None = None

    def __len__(self) -> int:
        return len(self.nodes)

    def matches(self, flt: NameFilter, deadline: Deadline | None = None) -> list[int]:
        """Indices of the nodes that pass every term of ``flt`` (all nodes when it is empty)."""
        if flt.empty:
            return list(range(len(self.nodes)))
        return self.answer(flt, deadline).list()

    def answer(self, flt: NameFilter, deadline: Deadline | None = None) -> Matches:
        """``matches`` as a ``Matches``: counted, with its mask, listed only when asked."""
        n = len(self.nodes)
        if flt.empty:
            return Matches(None, n)
        key = replace(flt, text="")  # "a  b" and "a b" are one filter
        kept = self._recent.get(key)
        if kept is None:
            last = self._last
            candidates = None
            if last is not None and flt.narrows(last[0]) and len(last[1]) * 8 < n:
                candidates = last[1].list()
            kept = self._match(flt, candidates, deadline or Deadline())
            if kept is None or (isinstance(kept, list) and len(kept) > KEPT_LIST):
                kept = as_mask(kept, n)
            self._recent[key] = kept
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        self._recent.move_to_end(key)
        out = Matches(kept, n)
        self._last = (flt, out)
        return out

    def visibility(self, matches: Sequence[int]) -> Visibility:
        """Which nodes ``matches`` shows, for all nodes at once (a few ms at 185k nodes)."""
        mask = getattr(matches, "mask", None)
        if mask is None:
            mask = as_mask(list(matches), len(self.nodes))
        counts = np.zeros(len(self.nodes) + 1, dtype=np.int64)
        np.cumsum(mask, out=counts[1:])
        inside = counts[self._ends]
        return Visibility((inside > counts[:-1]).tobytes() + b"\0",
                          (inside > counts[1:]).tobytes() + b"\0")

    def _match(self, flt: NameFilter, candidates: list[int] | None, deadline: Deadline):
        """The matching nodes: a mask over every node, or a sorted list of positions."""
        sel, n = None, len(self.nodes)  # None: every node
        if flt.name:
            sel = self._glob(flt.name) if is_glob(flt.name) else \
                self._containing(flt.name, candidates)
        if flt.kind is not None:
            sel = both(sel, self._column("kind").where(flt.kind.__eq__), n)
        for what, value in (("dtype", flt.dtype), ("shape", flt.shape)):
            if value is not None:
                hit = re.compile(fnmatch.translate(value)).match if is_glob(value) else value.__eq__
                sel = both(sel, self._column(what).where(hit), n)
        if flt.regex is not None:
            compiled = compile_pattern(flt.regex, "filter")
            full = self.full
            idx = range(len(full)) if sel is None else as_list(sel, len(full))
            if isinstance(idx, range) or len(idx) > 1000:
                idx = self._regex_lines(flt.regex, idx, deadline)
            sel = [i for i in idx if search(compiled, full[i], deadline)]
        return sel

    def _containing(self, text: str, candidates: list[int] | None):
        """The names containing ``text``: a narrowing of few ``candidates`` (the previous
        answer, when it holds every match), else a whole-column pass."""
        names = self.names
        if candidates is not None:
            return [i for i in candidates if text in names[i]]
        mask = self.bytes.containing(text)
        if mask is not None:
            return mask
        return list(compress(range(len(names)), map(contains, names, repeat(text))))

    def _glob(self, pattern: str):
        mask = self.bytes.star_glob(pattern)
        if mask is not None:
            return mask
        names, sel = self.names, None
        for lit in _literals(pattern):
            found = self._containing(lit, sel if isinstance(sel, list) else None)
            sel = both(sel, found, len(names))
        hit = _tail_glob(pattern)
        idx = range(len(names)) if sel is None else as_list(sel, len(names))
        return [i for i in idx if hit(names[i])]

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

    def _column(self, what: str) -> Codes:
        """Each node's kind, dtype or shape (built on first use; None: not a tensor)."""
        col = self._columns.get(what)
        if col is None:
            if what == "kind":
                values = [n.kind for n in self.nodes]
            elif what == "dtype":
                values = [n.entry.dtype_name if n.entry is not None else None for n in self.nodes]
            else:
                values = [shape_key(n.entry.shape) if n.entry is not None else None
                          for n in self.nodes]
            col = self._columns[what] = Codes(values)
        return col

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
