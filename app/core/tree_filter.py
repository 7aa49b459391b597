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

import re
from dataclasses import dataclass

from .errors import UserError
from .expressions.user_regex import compile_pattern
from .model.tree import ENTRY, GROUP, MODULE
from .name_index import NameIndex, is_glob, shape_key

__all__ = ["KINDS", "SYNTAX_HELP", "NameFilter", "NameIndex", "is_glob", "parse_filter",
           "shape_key"]

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
