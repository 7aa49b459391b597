"""Regular expressions typed by users or read from recipes, run with a time budget.

Python's ``re`` cannot be interrupted: ``(a+)+$`` on a long name backtracks for minutes. The
``regex`` package (same syntax) takes a ``timeout``; one budget covers a whole pass over the
names, so a hostile pattern costs at most ``budget`` seconds and ends with one clear error.
"""
from __future__ import annotations

import time

import regex

from ..errors import UserError, first_line as _first_line

MAX_PATTERN = 1000       # characters of a pattern or a replacement
BUDGET_S = 1.0           # seconds for one pass over all names


def compile_pattern(pattern, what: str = "rename") -> regex.Pattern:
    if not isinstance(pattern, str):
        raise UserError(f"{what}: the regular expression must be text, not {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN:
        raise UserError(f"{what}: the regular expression is longer than {MAX_PATTERN} characters")
    try:
        return regex.compile(pattern)
    except (regex.error, RecursionError, OverflowError, ValueError) as exc:
        raise UserError(f"{what}: bad regular expression {_short(pattern)}: {_first_line(exc)}") from None


def check_replacement(repl, what: str = "rename") -> str:
    if not isinstance(repl, str):
        raise UserError(f"{what}: the replacement must be text, not {type(repl).__name__}")
    if len(repl) > MAX_PATTERN:
        raise UserError(f"{what}: the replacement is longer than {MAX_PATTERN} characters")
    return repl


class Deadline:
    """One time budget shared by many regex calls."""

    def __init__(self, seconds: float = BUDGET_S):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(self.end - time.monotonic(), 0.001)


def sub(compiled: regex.Pattern, repl: str, text: str, deadline: Deadline, what: str = "rename") -> str:
    """``compiled.sub(repl, text)`` within the deadline; UserError on a timeout or a bad replacement."""
    try:
        return compiled.sub(repl, text, timeout=deadline.left())
    except TimeoutError:
        raise UserError(f"{what}: the regular expression {_short(compiled.pattern)} took longer "
                        f"than {deadline.seconds:g} s on {_short(text)}; simplify it (avoid "
                        "nested repeats such as (.*)*)") from None
    except (regex.error, IndexError) as exc:
        raise UserError(f"{what}: bad replacement {_short(repl)}: {_first_line(exc)}") from None


def search(compiled: regex.Pattern, text: str, deadline: Deadline, what: str = "filter") -> bool:
    try:
        return compiled.search(text, timeout=deadline.left()) is not None
    except TimeoutError:
        raise UserError(f"{what}: the regular expression {_short(compiled.pattern)} took longer "
                        f"than {deadline.seconds:g} s; simplify it") from None


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit - 1] + "…")
