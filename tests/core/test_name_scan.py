"""The name index's numpy passes answer as the plain Python tests do: substrings (UTF-8 names
included), ``*`` globs on every tail after a dot, the term columns, and the rows shown."""
from __future__ import annotations

import fnmatch
import random

import torch

from app.core import name_index
from app.core.model.tensor_entry import TensorEntry
from app.core.model.tree import tree_from_names
from app.core.name_scan import NameBytes
from app.core.tree_filter import NameIndex, parse_filter


def index_of(names) -> NameIndex:
    return NameIndex(tree_from_names([TensorEntry.of(n, torch.zeros(1)) for n in names]))


def tail_glob(name: str, pattern: str) -> bool:
    parts = name.split(".")
    return any(fnmatch.fnmatchcase(".".join(parts[i:]), pattern) for i in range(len(parts)))


def random_names(seed: int, count: int = 400) -> list[str]:
    random.seed(seed)
    names = set()
    while len(names) < count:
        name = ".".join("".join(random.choice("ab_c1é") for _ in range(random.randint(1, 4)))
                        for _ in range(random.randint(1, 4)))
        names.add(name)
    return sorted(n for n in names if not any(m.startswith(n + ".") for m in names))


def test_star_globs_in_numpy_agree_with_fnmatch_on_every_tail(monkeypatch):
    index = index_of(random_names(11))
    assert index.bytes.array is not None  # the numpy passes answer, not the regex

    def no_regex(pattern):
        raise AssertionError(pattern)
    monkeypatch.setattr(name_index, "_tail_glob", no_regex)
    random.seed(12)
    pieces = ["a", "b", "_", "c1", ".", "é", "a.b", "*", "*", "**"]
    for _ in range(300):
        pattern = "".join(random.choice(pieces) for _ in range(random.randint(1, 5)))
        if "*" not in pattern:
            pattern += "*"
        got = [index.full[i] for i in index.matches(parse_filter(pattern))]
        assert got == [n for n in index.full if tail_glob(n.lower(), pattern)], pattern


def test_substrings_of_utf8_names_and_a_nul(monkeypatch):
    index = index_of(["Ünïcode.Wéight", "plain.weight", "x\u00e9y.b"])
    assert [index.full[i] for i in index.matches(parse_filter("WÉI"))] == ["Ünïcode.Wéight"]
    assert [index.full[i] for i in index.matches(parse_filter("é"))] == [
        "Ünïcode.Wéight", "xéy", "xéy.b"]
    assert NameBytes(["a"]).containing("a\0") is None  # left to the Python scan


def test_names_too_many_to_hold_are_scanned_in_python(monkeypatch):
    monkeypatch.setattr("app.core.name_scan.MAX_BYTES", 10)
    index = index_of(["enc.rnn.weight", "enc.bn.bias", "dec.w"])
    assert index.bytes.array is None
    assert [index.full[i] for i in index.matches(parse_filter("n.b"))] == ["enc.bn.bias"]
    assert [index.full[i] for i in index.matches(parse_filter("rnn.*t"))] == ["enc.rnn.weight"]


def test_visibility_is_the_matches_and_their_ancestors():
    index = index_of(random_names(21))
    for text in ("a", "b.c", "*1", "é", "zzz"):
        matches = index.matches(parse_filter(text))
        seen = index.visibility(matches)
        for i, node in enumerate(index.nodes):
            assert bool(seen.shown[i]) == index.shown(node, matches), (text, i)
            below = any(index.shown(c, matches) for c in node.children)
            assert bool(seen.below[i]) == below, (text, i)
        assert seen.shown[-1] == 0  # a node not in the index (position -1) is not shown


def test_kind_dtype_and_shape_columns_are_tested_once_per_value():
    dtypes = (torch.float16, torch.float32)
    entries = [TensorEntry.of(f"l{i}.w", torch.zeros(i % 3 + 1, dtype=dtypes[i % 2]))
               for i in range(12)]
    index = NameIndex(tree_from_names(entries))
    found = [index.full[i] for i in index.matches(parse_filter("dtype:float1* shape:2"))]
    assert found == [f"l{i}.w" for i in range(12) if i % 2 == 0 and i % 3 == 1]
    assert [index.full[i] for i in index.matches(parse_filter("kind:group"))] == [
        f"l{i}" for i in range(12)]


def test_an_answer_is_counted_and_sliced_without_its_whole_list():
    index = index_of([f"layer{i}.w" for i in range(300)])
    answer = index.answer(parse_filter("w"))
    assert answer.mask is not None and answer._list is None
    assert len(answer) == 300 and answer[:3] == [1, 3, 5] and answer._list is None
    assert answer == index.matches(parse_filter("w")) and answer != None  # noqa: E711
    assert not index.answer(parse_filter("nothing"))
