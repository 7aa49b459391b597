"""Compare two documents tensor by tensor (CONTRACT.md section 5).

Names are matched after rename rules (regular expressions applied to both sides), then each
matched pair is compared lazily: one tensor of each side is read at a time and compared in
chunks (``diff_tensor``), so neither checkpoint is ever held in memory. Tied names that map onto
tied names are compared once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from .tensor_diff import TensorDiff, compare_tensors, one_thread
from ..model import file_lease
from ..model.document import Document
from ..errors import Cancelled, UserError
from ..model.tensor_entry import TensorEntry

#: rules users reach for most: DataParallel/DDP's ``module.`` and torch.compile's ``_orig_mod.``
RENAME_PRESETS = {
    "module": (r"^module\.", ""),
    "_orig_mod": (r"(^|\.)_orig_mod\.", r"\1"),
}


@dataclass(frozen=True)
class RenameRule:
    pattern: str
    repl: str

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "_regex", re.compile(self.pattern))
        except re.error as exc:
            raise UserError(f"--rename {self.pattern!r}: not a regular expression ({exc})") from None

    def apply(self, name: str) -> str:
        try:
            return self._regex.sub(self.repl, name)
        except (re.error, IndexError) as exc:
            raise UserError(f"--rename {self.pattern}={self.repl}: bad replacement ({exc})") from None


def parse_rename(text: str) -> RenameRule:
    """``FROM=TO`` (split at the first ``=``), or a preset name: ``module``, ``_orig_mod``."""
    if "=" not in text:
        if text in RENAME_PRESETS:
            return RenameRule(*RENAME_PRESETS[text])
        raise UserError(f"--rename {text!r}: expected FROM=TO (a regular expression and its "
                        f"replacement) or a preset ({', '.join(RENAME_PRESETS)})")
    pattern, repl = text.split("=", 1)
    if not pattern:
        raise UserError(f"--rename {text!r}: the pattern before '=' is empty")
    return RenameRule(pattern, repl)


def renamed(name: str, rules: Iterable[RenameRule]) -> str:
    for r in rules:
        name = r.apply(name)
    return name


def match_names(names_a: list[str], names_b: list[str], rules: Iterable[RenameRule] = ()
                ) -> tuple[list[tuple[str, str, str]], list[str], list[str]]:
    """``(pairs, only_a, only_b)``: pairs are ``(key, name_a, name_b)`` in A's order."""
    rules = list(rules)
    keys_a = _keyed(names_a, rules, "A")
    keys_b = _keyed(names_b, rules, "B")
    pairs = [(k, na, keys_b[k]) for k, na in keys_a.items() if k in keys_b]
    only_a = [na for k, na in keys_a.items() if k not in keys_b]
    only_b = [nb for k, nb in keys_b.items() if k not in keys_a]
    return pairs, only_a, only_b


def _keyed(names: list[str], rules: list[RenameRule], side: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n in names:
        k = renamed(n, rules)
        if k in out:
            raise UserError(f"after --rename, {out[k]!r} and {n!r} of {side} both become {k!r}")
        out[k] = n
    return out


@dataclass
class DiffResult:
    """What ``diff`` reports. Matched tensors are named by their key (the name after renaming);
    ``only_a`` / ``only_b`` by their own names in A / B. ``pairs`` maps key -> (name_a, name_b)."""

    a: str
    b: str
    atol: float = 0.0
    rtol: float = 0.0
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    shape_changed: list[dict] = field(default_factory=list)
    dtype_changed: list[dict] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    equal: list[str] = field(default_factory=list)
    pairs: dict[str, tuple[str, str]] = field(default_factory=dict)
    diffs: dict[str, TensorDiff] = field(default_factory=dict)

    @property
    def differs(self) -> bool:
        return bool(self.only_a or self.only_b or self.shape_changed or self.dtype_changed
                    or self.changed)

    @property
    def exit_code(self) -> int:
        return 1 if self.differs else 0

    def key_of_a(self) -> dict[str, str]:
        """name in A -> key, for matched tensors."""
        return {na: k for k, (na, _nb) in self.pairs.items()}

    def to_json(self) -> dict:
        return {
            "a": self.a, "b": self.b,
            "only_a": list(self.only_a), "only_b": list(self.only_b),
            "shape_changed": list(self.shape_changed), "dtype_changed": list(self.dtype_changed),
            "changed": [self.diffs[k].as_json(k) for k in self.changed],
            "equal": list(self.equal),
            "summary": {"matched": len(self.changed) + len(self.equal),
                        "changed": len(self.changed), "equal": len(self.equal),
                        "only_a": len(self.only_a), "only_b": len(self.only_b),
                        "shape_changed": len(self.shape_changed),
                        "dtype_changed": len(self.dtype_changed)},
            "atol": self.atol, "rtol": self.rtol,
        }


def read_entry(entry: TensorEntry) -> torch.Tensor:
    """The entry's tensor, without keeping it in the entry when it was not loaded yet (so a
    comparison holds one tensor per side at a time, not the whole file)."""
    while entry._tensor is None:
        loader = entry._loader
        owner = getattr(loader, "__self__", None)
        if isinstance(owner, TensorEntry):  # a tied alias reads its target
            entry = owner
            continue
        return loader()
    return entry._tensor


def diff_documents(doc_a: Document, doc_b: Document, *, atol: float = 0.0, rtol: float = 0.0,
                   rules: Iterable[RenameRule] = (), progress: Callable[[int, int], None] | None = None,
                   cancelled: Callable[[], bool] | None = None, a_label: str | None = None,
                   b_label: str | None = None) -> DiffResult:
    """Compare every matched tensor of ``doc_a`` with ``doc_b``; ``progress(done, total)`` counts
    elements; ``cancelled()`` raises ``Cancelled`` between chunks."""
    if atol < 0 or rtol < 0 or atol != atol or rtol != rtol:
        raise UserError("--atol and --rtol must be numbers >= 0")
    pairs, only_a, only_b = match_names(doc_a.names(), doc_b.names(), rules)
    res = DiffResult(a_label or doc_a.path or "A", b_label or doc_b.path or "B", float(atol),
                     float(rtol), only_a=only_a, only_b=only_b)
    todo = []
    for key, na, nb in pairs:
        ea, eb = doc_a.entry(na), doc_b.entry(nb)
        res.pairs[key] = (na, nb)
        if ea.dtype != eb.dtype:
            res.dtype_changed.append({"name": key, "a": ea.dtype_name, "b": eb.dtype_name})
        if tuple(ea.shape) != tuple(eb.shape):
            res.shape_changed.append({"name": key, "a": list(ea.shape), "b": list(eb.shape)})
        else:
            todo.append((key, ea, eb))
    total = sum(ea.numel for _k, ea, _eb in todo)
    done = 0
    memo: dict[tuple, TensorDiff] = {}

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    for key, ea, eb in todo:
        if cancelled is not None and cancelled():
            raise Cancelled()
        tie = (frozenset([ea.name, *ea.shared_with]), frozenset([eb.name, *eb.shared_with]))
        d = memo.get(tie)
        if d is None:
            with file_lease.reading():  # a rewrite of either file waits for this pair
                doc_a.guard(ea)
                doc_b.guard(eb)
                d = _compare_entries(key, ea, eb, atol, rtol, step, cancelled)
            if ea.shared_with or eb.shared_with:
                memo[tie] = d
        else:
            step(ea.numel)
        res.diffs[key] = d
        (res.equal if d.equal else res.changed).append(key)
    if progress is not None and total == 0:
        progress(0, 0)
    return res


def _compare_entries(key: str, ea: TensorEntry, eb: TensorEntry, atol: float, rtol: float,
                     step: Callable[[int], None], cancelled) -> TensorDiff:
    a, b = read_entry(ea), read_entry(eb)
    if a.device.type == "meta" or b.device.type == "meta":
        raise UserError(f"{key}: a tensor on the meta device has no values to compare")
    try:
        with one_thread():
            return compare_tensors(a, b, atol, rtol, progress=step, cancelled=cancelled)
    except (RuntimeError, TypeError) as exc:  # e.g. a dtype torch cannot convert
        raise UserError(f"{key}: cannot compare ({str(exc).splitlines()[0]})") from None


def open_and_diff(path_a: str, path_b: str, *, atol: float = 0.0, rtol: float = 0.0,
                  renames: Iterable[str] = (), trust: bool = False, progress=None,
                  cancelled=None) -> DiffResult:
    """Open both paths lazily and compare them; the documents are closed afterwards."""
    from ..formats import load_document
    rules = [parse_rename(r) for r in renames]
    doc_a = load_document(path_a, trust=trust)
    try:
        doc_b = load_document(path_b, trust=trust)
        try:
            with file_lease.leased(doc_a, doc_b):
                return diff_documents(doc_a, doc_b, atol=atol, rtol=rtol, rules=rules,
                                      progress=progress, cancelled=cancelled,
                                      a_label=str(path_a), b_label=str(path_b))
        finally:
            doc_b.close()
    finally:
        doc_a.close()


def suggest_rename(only_a: list[str], only_b: list[str]) -> str | None:
    """A ``--rename`` that would match many unmatched names: one side's extra leading component
    (``model.`` of a training checkpoint against a bare state_dict, ``module.``)."""
    best, best_n = None, 0
    for extra, other in ((only_a, set(only_b)), (only_b, set(only_a))):
        counts: dict[str, int] = {}
        for n in extra:
            head, dot, rest = n.partition(".")
            if dot and rest in other:
                counts[head] = counts.get(head, 0) + 1
        for head, c in counts.items():
            if c > best_n:
                best, best_n = f"^{re.escape(head)}\\.=", c
    return best
