"""The tree filter over a flat name index: glob, re:, dtype:, shape:, kind: terms; the
subtree ranges that decide which rows show; the NaN/Inf scan; 100k-tensor tree building."""
from __future__ import annotations

import random

import pytest
import torch

from app.core.errors import UserError
from app.core.model.document import Document
from app.core.tree_filter import NameIndex, parse_filter
from app.core.model.nonfinite import nonfinite_names
from app.core.model.tensor_entry import TensorEntry
from app.core.model.tree import Node, tree_from_names


def index_of(names_dtypes) -> NameIndex:
    entries = [TensorEntry.of(n, t) for n, t in names_dtypes]
    return NameIndex(tree_from_names(entries))


@pytest.fixture
def index():
    return index_of([
        ("encoder.rnn.weight_ih_l0", torch.zeros(8, 4)),
        ("encoder.rnn.weight_ih_l1", torch.zeros(8, 8)),
        ("encoder.conv.weight", torch.zeros(4, 3, 1, 1, dtype=torch.bfloat16)),
        ("encoder.bn.running_mean", torch.zeros(4)),
        ("decoder.Head.bias", torch.zeros(2, dtype=torch.float16)),
        ("step", torch.tensor(3)),
    ])


def found(index, text):
    return [index.full[i] for i in index.matches(parse_filter(text))]


def test_substring_and_glob_terms(index):
    assert found(index, "ih_l") == ["encoder.rnn.weight_ih_l0", "encoder.rnn.weight_ih_l1"]
    assert found(index, "bn.running_*") == ["encoder.bn.running_mean"]  # a tail after a dot
    assert found(index, "coder.*.weight") == []                         # tails start at dots
    assert found(index, "HEAD") == ["decoder.Head", "decoder.Head.bias"]  # case-insensitive


def test_regex_dtype_shape_and_kind_terms_combine(index):
    assert found(index, r"re:weight_ih_l[1-9]$") == ["encoder.rnn.weight_ih_l1"]
    assert found(index, "re:Head") == ["decoder.Head", "decoder.Head.bias"]  # as written
    assert found(index, "dtype:bfloat16") == ["encoder.conv.weight"]
    assert found(index, "dtype:float*") == ["encoder.rnn.weight_ih_l0", "encoder.rnn.weight_ih_l1",
                                            "encoder.bn.running_mean", "decoder.Head.bias"]
    assert found(index, "shape:*x1x1") == ["encoder.conv.weight"]
    assert found(index, "shape:scalar") == ["step"]
    assert found(index, "kind:group") == ["encoder", "encoder.rnn", "encoder.conv", "encoder.bn",
                                          "decoder", "decoder.Head"]
    assert found(index, "rnn shape:8x8") == ["encoder.rnn.weight_ih_l1"]
    assert found(index, "dtype:float32 re:l0$") == ["encoder.rnn.weight_ih_l0"]


@pytest.mark.parametrize("text", ["re:(unclosed", "kind:nonsense", "dtype:", "re:" + "a" * 2000])
def test_bad_terms_are_one_line_user_errors(text):
    with pytest.raises(UserError) as err:
        parse_filter(text)
    assert "\n" not in str(err.value) and str(err.value).startswith("filter")


def test_a_hostile_regex_ends_within_its_budget(index):
    from app.core.expressions.user_regex import Deadline
    long_index = index_of([("a" * 40 + "!", torch.zeros(1))])
    with pytest.raises(UserError, match="took longer"):
        long_index.matches(parse_filter("re:(a|aa)+$"), Deadline(0.05))


def test_typing_narrows_from_the_previous_matches_with_the_same_answer(index):
    for text in ("w", "we", "wei", "weight", "weight_ih", "weight_ih_l1"):
        flt = parse_filter(text)
        narrowed = index.matches(flt)
        assert narrowed == [i for i, n in enumerate(index.names) if flt.name in n]
    assert parse_filter("weight_ih").narrows(parse_filter("weight"))
    assert not parse_filter("w*t").narrows(parse_filter("w"))


def test_globs_agree_with_fnmatch_on_every_tail():
    from app.qt.models.tree_model import name_matches
    random.seed(3)
    names = sorted({"".join(random.choice("ab.c_1") for _ in range(random.randint(1, 9))).strip(".")
                    or "x" for _ in range(300)})
    index = index_of([(n, torch.zeros(1)) for n in names])
    for pattern in ["*", "a*", "*.b", "a?c", "[ab]*", "[!a]*", "*c_1", "b.*", "a*b*c", "?.?", "[z-a]*"]:
        got = {index.full[i] for i in index.matches(parse_filter(pattern))}
        assert got == {n for n in index.full if name_matches(n, pattern)}, pattern


def test_shown_is_the_matches_and_their_ancestors():
    random.seed(5)
    names = {".".join(random.choice("abc") for _ in range(random.randint(1, 5))) for _ in range(200)}
    names = {n for n in names if not any(m.startswith(n + ".") for m in names)}  # leaves only
    index = index_of([(n, torch.zeros(1)) for n in sorted(names)])
    matches = index.matches(parse_filter("*b.c"))
    hit = {id(index.nodes[i]) for i in matches}
    expected = set()
    for i in matches:
        node = index.nodes[i]
        while node.parent is not None:
            expected.add(id(node))
            node = node.parent
    assert {id(n) for n in index.nodes if index.shown(n, matches)} == expected
    assert hit <= expected


def test_nonfinite_scan_names_the_two_tensors_and_their_ties():
    sd = {f"layer{i}.weight": torch.randn(3, 3) for i in range(5)}
    sd["layer1.weight"][0, 0] = float("nan")
    sd["layer3.weight"][2, 1] = float("inf")
    sd["tied.weight"] = sd["layer3.weight"]
    sd["ints"] = torch.arange(4)
    doc = Document.from_object(sd)
    ticks = []
    names = nonfinite_names(doc.tensors.values(), lambda d, t: ticks.append((d, t)))
    assert sorted(names) == ["layer1.weight", "layer3.weight", "tied.weight"]
    assert ticks and ticks[-1][0] == ticks[-1][1]


def test_nonfinite_scan_can_be_cancelled():
    from app.core.errors import Cancelled
    doc = Document.from_object({"a": torch.zeros(4)})
    with pytest.raises(Cancelled):
        nonfinite_names(doc.tensors.values(), cancelled=lambda: True)


def test_totals_add_up_children_and_count_ties_once():
    w = torch.zeros(10)
    sd = {"a.x": w, "a.y": torch.zeros(3), "b.x": w, "c.z": torch.zeros(2, dtype=torch.float64)}
    doc = Document.from_object(sd)
    root = doc.root
    assert root.totals() == (15, 68)           # w counted once
    assert (doc.total_numel(), doc.total_bytes()) == (15, 68)
    doc.remove_tensor("c.z")                   # a new revision: counted again
    assert (doc.total_numel(), doc.total_bytes()) == (13, 52)
    assert root.find("a").totals() == (13, 52)
    assert root.find("c").totals() == (2, 16)


def test_row_in_parent_survives_children_appended_later():
    root = Node("", "root")
    kids = [Node(str(i), "group", parent=root) for i in range(5)]
    assert [k.index_in_parent() for k in kids] == list(range(5))
    late = Node("late", "group")
    late.parent = root
    root.children.append(late)
    assert late.index_in_parent() == 5 and kids[3].index_in_parent() == 3


def test_odd_names_build_the_same_tree_as_splitting():
    names = ["a", ".x", "a..b", "a.b.c", "", "a.b.d", "..", "x.y" + ".q" * 70]
    root = tree_from_names([TensorEntry.of(n, torch.zeros(1)) for n in names])

    def shape(node):
        return [(c.name, c.kind, shape(c)) for c in node.children]
    expected = Node("", "root")
    for n in names:  # the plain algorithm: split every name, walk from the root
        parts = n.split(".", 63)
        node = expected
        for p in parts[:-1]:
            nxt = next((c for c in node.children if c.name == p and c.kind == "group"), None)
            node = nxt or Node(p, "group", parent=node)
        Node(parts[-1], "tensor", parent=node)
    assert shape(root) == shape(expected)


def test_regex_over_joined_names_finds_what_each_name_would():
    import regex
    names = [f"model.layers.{i}.{p}.{leaf}" for i in range(300) for p in ("q", "fc1")
             for leaf in ("weight", "bias")] + ["odd name with spaces", "x"]
    index = index_of([(n, torch.zeros(1)) for n in names])
    assert len(index) > 1000  # the joined search is used
    for pattern in (r"layers\.1\d\.", r"^model", r"weight$", r"[^a-z]q", r"\bfc\d", r"(?i)FC1",
                    r"\s", r"x*", r"\Ax\Z", r"s\.\d+\.q\.b", r"[\s\S]layers"):
        got = found(index, "re:" + pattern)
        want = [n for n in index.full if regex.search(pattern, n)]
        assert got == want, pattern
