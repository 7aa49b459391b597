"""Value edits on real tensors: in place, bit-exact revert, ties, index / mask, errors, mmap, property."""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from torch import nn

from app.core.model.document import Document
from app.core.edits.values import (CellEdit, ExprEdit, FillEdit, RequiresGradEdit, ResetParametersEdit,
                            parse_cell_value)
from app.core.errors import UserError
from app.core.expressions.expr import evaluate
from app.core.formats import load_document
from app.core.expressions.index_text import check_index, format_index, parse_index
from tests.checkpoints import tied_lm
from tests.helpers.tensors import bits, same
from tests.helpers.tensors import snapshot as _snapshot


def snapshot(doc: Document) -> dict:
    return _snapshot(doc, requires_grad=True)


def identity(doc: Document) -> dict:
    return {n: (id(doc.tensor(n)), doc.tensor(n).data_ptr()) for n in doc.tensors}


# -- every edit kind: in place, same Parameter, same storage, bit-exact revert ---------------

EDITS = {
    "fill": lambda: FillEdit(["body.0.weight"], 0.5, index="[0:2]"),
    "fill all": lambda: FillEdit(["body.0.bias", "body.1.weight"], -2.0),
    "expr": lambda: ExprEdit(["body.0.weight"], "w * 2 + 1", index="[:, 1]"),
    "expr mask": lambda: ExprEdit(["embed.weight"], "torch.zeros_like(w)", mask="w.abs() > 0.5"),
    "expr random": lambda: ExprEdit(["body.0.bias"], "torch.randn_like(w)"),
    "cell": lambda: CellEdit("body.0.weight", (1, 2), 3.0),
    "requires_grad": lambda: RequiresGradEdit(["body.0.weight", "embed.weight"], False),
    "reset_parameters": lambda: ResetParametersEdit(["body"]),
}


@pytest.mark.parametrize("kind", sorted(EDITS))
def test_live_module_edit_in_place_and_revert(kind):
    model = tied_lm()
    params = {n: p for n, p in model.named_parameters(remove_duplicate=False)}
    ptrs = {n: p.data_ptr() for n, p in params.items()}
    doc = Document.from_module(model)
    start, ids = snapshot(doc), identity(doc)
    edit = EDITS[kind]()
    edit.apply(doc)
    assert not same(snapshot(doc), start)
    assert edit.touched() and edit.label and edit.recipe_step()["op"]
    for n, p in model.named_parameters(remove_duplicate=False):
        assert p is params[n] and p.data_ptr() == ptrs[n]
    assert model.body[0].weight is params["body.0.weight"]
    assert identity(doc) == ids
    edit.revert(doc)
    assert same(snapshot(doc), start)
    assert identity(doc) == ids


@pytest.mark.parametrize("kind", ["fill", "fill all", "expr", "expr mask", "cell"])
def test_state_dict_edit_in_place_and_revert(kind):
    sd = tied_lm().state_dict()
    doc = Document.from_object(sd)
    start, ids = snapshot(doc), identity(doc)
    edit = EDITS[kind]()
    edit.apply(doc)
    assert not same(snapshot(doc), start) and identity(doc) == ids
    assert doc.tensor("body.0.weight") is sd["body.0.weight"]
    edit.revert(doc)
    assert same(snapshot(doc), start) and identity(doc) == ids


def test_memory_cost_is_only_the_region():
    doc = Document.from_object({"w": torch.randn(4, 4), "b": torch.randn(4, dtype=torch.float64)})
    edit = FillEdit(["w"], 0.0, index="[0:2]")
    edit.apply(doc)
    assert edit.memory_cost() == 2 * 4 * 4
    cell = CellEdit("b", (3,), 1.0)
    cell.apply(doc)
    assert cell.memory_cost() == 8
    whole = ExprEdit(["w", "b"], "w + 1")
    whole.apply(doc)
    assert whole.memory_cost() == 16 * 4 + 4 * 8


def test_tied_tensors_edited_once_and_all_aliases_touched():
    model = tied_lm()
    doc = Document.from_module(model)
    before = model.embed.weight.detach().clone()
    edit = ExprEdit(["embed.weight", "lm_head.weight"], "w + 1")
    edit.apply(doc)
    assert torch.equal(model.lm_head.weight, before + 1)  # once per storage, not twice
    assert sorted(edit.touched()) == ["embed.weight", "lm_head.weight"]
    fill = FillEdit(["lm_head.weight"], 7.0, index="[0]")
    fill.apply(doc)
    assert (model.embed.weight[0] == 7).all() and sorted(fill.touched()) == ["embed.weight", "lm_head.weight"]
    assert model.lm_head.weight is model.embed.weight


@pytest.mark.parametrize("index", ["[:, 0]", "[0:2]", "[..., -1]", "[1, 1:4:2]", "[None]",
                                   "[[0, 2], :]", "3", "", "[::2, [1, 3]]"])
def test_index_and_mask_match_plain_torch(index):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 5, generator=g)
    doc = Document.from_object({"w": w.clone()})
    ExprEdit(["w"], "w * 0.5 + 1", index=index, mask="w > 0").apply(doc)
    expected = w.clone()
    idx = parse_index(index)
    region = expected[idx]
    expected[idx] = torch.where(region > 0, region * 0.5 + 1, region)
    assert torch.equal(doc.tensor("w"), expected)
    FillEdit(["w"], -3.0, index=index).apply(doc)
    expected[idx] = -3.0
    assert torch.equal(doc.tensor("w"), expected)


def test_expression_result_is_cast_to_the_tensor_dtype():
    doc = Document.from_object({"i": torch.arange(6), "h": torch.ones(3, dtype=torch.bfloat16),
                                "m": torch.tensor([True, False])})
    ExprEdit(["i"], "torch.round(w * 1.7)").apply(doc)
    ExprEdit(["h"], "w.float() / 3").apply(doc)
    ExprEdit(["m"], "~w").apply(doc)
    assert torch.equal(doc.tensor("i"), torch.round(torch.arange(6) * 1.7).long())
    assert torch.equal(doc.tensor("h"), (torch.ones(3) / 3).to(torch.bfloat16))
    assert doc.tensor("m").tolist() == [False, True]


@pytest.mark.parametrize("expr, dtype, words", [
    ("w + 1000", torch.int8, "outside what int8 holds"),     # would wrap to [-88, -24, 39]
    ("w - 200", torch.uint8, "outside what uint8 holds"),
    ("w * 1.5", torch.int64, "fractions"),                    # would truncate silently
    ("w / 0", torch.int32, "NaN or Inf"),
    ("w * 3", torch.bool, "outside what bool holds"),
])
def test_integer_tensors_refuse_results_they_cannot_hold(expr, dtype, words):
    start = torch.tensor([-128, 0, 127]) if dtype == torch.int8 else torch.tensor([1, 0, 1])
    doc = Document.from_object({"t": start.to(dtype)})
    before = doc.tensor("t").clone()
    with pytest.raises(UserError, match=words):
        ExprEdit(["t"], expr).apply(doc)
    assert torch.equal(doc.tensor("t"), before)


def test_integer_expressions_in_range_are_exact():
    doc = Document.from_object({"t": torch.tensor([-64, 0, 63], dtype=torch.int8)})
    ExprEdit(["t"], "w * 2 + 1").apply(doc)
    assert doc.tensor("t").dtype == torch.int8
    assert doc.tensor("t").tolist() == [-127, 1, 127]


def test_random_expression_redo_gives_the_same_values():
    doc = Document.from_object({"w": torch.zeros(100)})
    edit = ExprEdit(["w"], "torch.randn_like(w)", mask="torch.rand_like(w) < 0.5")
    edit.apply(doc)
    first = doc.tensor("w").clone()
    edit.revert(doc)
    assert (doc.tensor("w") == 0).all()
    torch.randn(10)  # the global RNG moved on meanwhile
    edit.apply(doc)
    assert torch.equal(doc.tensor("w"), first)


# -- errors leave the document unchanged ------------------------------------------------------

def bad_edits():
    return [
        lambda: ExprEdit(["a"], "w *"),                           # syntax
        lambda: ExprEdit(["a"], "w @ torch.ones(99)"),            # runtime error
        lambda: ExprEdit(["a"], "torch.ones(7)"),                 # shape does not fit
        lambda: ExprEdit(["a"], "[1, 2]"),                        # not a tensor
        lambda: ExprEdit(["a"], "w", mask="w + 1"),               # mask not boolean
        lambda: ExprEdit(["a"], "torch.load('x')"),               # forbidden
        lambda: ExprEdit(["a"], "w.mul_(2)"),                     # in place behind our back
        lambda: FillEdit(["a"], 1.0, index="[9]"),                # out of range
        lambda: FillEdit(["a"], 1.0, index="[w]"),                # not an index
        lambda: FillEdit(["a", "i"], 0.5),                        # second target is int64
        lambda: FillEdit(["a", "u"], 300),                        # out of range for uint8
        lambda: FillEdit(["h"], 1e6),                             # overflows float16
        lambda: FillEdit(["missing"], 0.0),
        lambda: CellEdit("a", (0, 9), 1.0),
        lambda: CellEdit("a", (0,), 1.0),
        lambda: CellEdit("i", (0,), "abc"),
        lambda: RequiresGradEdit(["a"], True),                    # plain tensors only
        lambda: ResetParametersEdit([""]),                        # not a live model
    ]


@pytest.mark.parametrize("n", range(len(bad_edits())))
def test_bad_edit_raises_user_error_and_changes_nothing(n):
    doc = Document.from_object({"a": torch.randn(3, 4), "i": torch.arange(4),
                                "u": torch.zeros(2, dtype=torch.uint8), "h": torch.ones(2, dtype=torch.float16)})
    start, ids = snapshot(doc), identity(doc)
    with pytest.raises(UserError) as info:
        bad_edits()[n]().apply(doc)
    msg = str(info.value)
    assert msg and "\n" not in msg and "Traceback" not in msg
    assert same(snapshot(doc), start) and identity(doc) == ids


def test_expression_messages_are_one_clear_line():
    with pytest.raises(UserError, match=r"^expression `w \*`: invalid syntax"):
        ExprEdit(["a"], "w *")
    for text in ["__import__('os')", "torch.os.system('ls')", "open('f')", "w.__class__",
                 "torch.save(w, 'f')", "[x for x in w]", "lambda: 1", "torch.nn.init.zeros_(w)",
                 "torch.add(w, 1, out=w)", "torch.sys", "2 ** 10 ** 10", "torch.manual_seed(0)"]:
        with pytest.raises(UserError):
            evaluate(text, torch.ones(2))
    w = torch.tensor([-6.0, 1.0, 7.0])
    assert torch.equal(evaluate("torch.where(w.abs() < 5, 0, w)", w), torch.tensor([-6.0, 0.0, 7.0]))
    assert torch.equal(evaluate("w.clamp(min=-1.0, max=None)", w), torch.tensor([-1.0, 1.0, 7.0]))
    assert torch.equal(evaluate("w * (w.abs() >= 5)", w), torch.tensor([-6.0, 0.0, 7.0]))


# -- cell text ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, dtype, expected", [
    ("0.5", torch.float32, 0.5), ("1e-3", torch.float16, 1e-3), ("-inf", torch.bfloat16, -math.inf),
    ("Infinity", torch.float64, math.inf), ("127", torch.int8, 127), ("-128", torch.int8, -128),
    ("255", torch.uint8, 255), ("3.0", torch.int64, 3), ("TRUE", torch.bool, True),
    ("0", torch.bool, False), ("9223372036854775807", torch.int64, 2 ** 63 - 1),
    ("6e4", torch.float16, 6e4), ("3e38", torch.bfloat16, 3e38),
])
def test_parse_cell_value_accepts(text, dtype, expected):
    assert parse_cell_value(text, dtype) == expected
    assert math.isnan(parse_cell_value("nan", torch.float32))


@pytest.mark.parametrize("text, dtype, words", [
    ("abc", torch.float32, "is not a number; type e.g. 0.5"), ("", torch.float32, "type a value"),
    ("128", torch.int8, "out of range for int8 (-128 to 127)"), ("-1", torch.uint8, "out of range"),
    ("0.5", torch.int64, "not a whole number"), ("nan", torch.int32, "not a whole number"),
    ("yes", torch.bool, "true or false"), ("2", torch.bool, "true or false"),
    ("1e6", torch.float16, "too large for float16"), ("1e39", torch.bfloat16, "too large for bfloat16"),
    ("1e39", torch.float32, "too large"), ("1e400", torch.float64, "too large"),
])
def test_parse_cell_value_refuses(text, dtype, words):
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_cell_value(text, dtype)


def test_cell_edit_on_0d_tensor_and_recipe_step():
    doc = Document.from_object({"s": torch.tensor(1.5), "m": torch.zeros(2, 3, dtype=torch.int8)})
    edit = CellEdit("s", (), "nan")
    edit.apply(doc)
    assert math.isnan(doc.tensor("s").item())
    assert edit.recipe_step()["op"] == "fill" and "index" not in edit.recipe_step()
    cell = CellEdit("m", (1, -1), "-7")
    cell.apply(doc)
    assert doc.tensor("m")[1, 2] == -7
    assert cell.recipe_step() == {"op": "fill", "target": "m", "value": -7, "index": "[1, -1]"}
    assert cell.label == "Set m[1, -1] to -7"


# -- flags and modules --------------------------------------------------------------------------

def test_requires_grad_skips_buffers_and_reverts():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    doc = Document.from_module(model)
    edit = RequiresGradEdit(["0.weight", "1.running_mean", "1.bias"], False)
    edit.apply(doc)
    assert not model[0].weight.requires_grad and not model[1].bias.requires_grad
    assert model[0].bias.requires_grad and sorted(edit.touched()) == ["0.weight", "1.bias"]
    assert edit.recipe_step() == {"op": "requires_grad", "target": "0.weight",
                                  "targets": ["0.weight", "1.running_mean", "1.bias"], "value": False}
    edit.revert(doc)
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(UserError):
        RequiresGradEdit(["1.running_mean"], True).apply(doc)


def test_reset_parameters_subtree_and_errors():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), nn.ReLU())
    model(torch.randn(4, 3))  # running stats move off their initial values
    doc = Document.from_module(model)
    start, ids = snapshot(doc), identity(doc)
    edit = ResetParametersEdit(["1"])
    edit.apply(doc)
    assert torch.equal(model[0].weight, doc.tensor("0.weight")) and bits(model[0].weight) == bits(start["0.weight"])
    assert (model[1][1].running_mean == 0).all() and (model[1][1].weight == 1).all()
    assert "1.0.weight" in edit.touched() and "1.1.running_var" in edit.touched()
    assert edit.recipe_step() == {"op": "reset_parameters", "target": "1"}
    assert edit.memory_cost() > 0 and identity(doc) == ids
    after = snapshot(doc)
    edit.revert(doc)
    assert same(snapshot(doc), start)
    edit.apply(doc)  # redo replays the same random numbers
    assert same(snapshot(doc), after)
    with pytest.raises(UserError, match="no module named"):
        ResetParametersEdit(["9"]).apply(doc)
    with pytest.raises(UserError, match="reset_parameters"):
        ResetParametersEdit(["2"]).apply(doc)


# -- index text ---------------------------------------------------------------------------------

def test_index_text_round_trip_and_errors():
    cases = {"[:, 0]": (slice(None), 0), "[0:2]": (slice(0, 2),), "[..., -1]": (Ellipsis, -1),
             "[1, 2:5:2]": (1, slice(2, 5, 2)), "[None]": (None,), "[[0, 2], :]": ([0, 2], slice(None)),
             "1, 2": (1, 2), "": ()}
    for text, idx in cases.items():
        assert parse_index(text) == idx
        assert parse_index(format_index(idx)) == idx
    assert format_index((1, 2)) == "[1, 2]"
    for bad in ["w", "1 + 2", "[0.5]", "[__import__('os')]", "[", "[..., ...]", "[0:4:-1]", "[[]]"]:
        with pytest.raises(UserError):
            parse_index(bad)
    with pytest.raises(UserError, match="index 7 is out of range for dim 0 of size 4"):
        check_index(parse_index("[7]"), (4,))
    with pytest.raises(UserError, match="dim 1 of size 3"):
        check_index(parse_index("[..., -4]"), (2, 3))
    with pytest.raises(UserError, match="too many indices"):
        check_index(parse_index("[0, 0, 0]"), (2, 3))
    check_index(parse_index("[None, ..., None, -1]"), (2, 3))


# -- memory-mapped files are copy-on-write ------------------------------------------------------

@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_editing_a_mapped_file_never_writes_it(tmp_path, suffix):
    tensors = {"a": torch.randn(64, 8), "b": torch.arange(10)}
    path = tmp_path / f"m{suffix}"
    torch.save(tensors, path) if suffix == ".pt" else save_file(tensors, str(path))
    before = path.read_bytes()
    doc = load_document(str(path))
    edits = [ExprEdit(["a"], "w * 0 + 5"), FillEdit(["b"], 3, index="[0:4]"), CellEdit("a", (0, 0), 1.0)]
    for e in edits:
        e.apply(doc)
    assert (doc.tensor("a")[1:] == 5).all() and doc.tensor("b")[:4].tolist() == [3] * 4
    assert path.read_bytes() == before
    for e in reversed(edits):
        e.revert(doc)
    assert torch.equal(doc.tensor("a"), tensors["a"]) and path.read_bytes() == before
    doc.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_edits_on_a_cuda_module():
    model = tied_lm().cuda()
    doc = Document.from_module(model)
    start, ids = snapshot(doc), identity(doc)
    edits = [ExprEdit(["embed.weight"], "torch.randn_like(w)", mask="w > 0"),
             FillEdit(["body.0.bias"], 1.0, index="[0:2]"), CellEdit("body.0.weight", (0, 0), "2")]
    for e in edits:
        e.apply(doc)
    assert model.embed.weight.is_cuda and identity(doc) == ids
    forward = snapshot(doc)
    for e in reversed(edits):
        e.revert(doc)
    assert same(snapshot(doc), start)
    for e in edits:
        e.apply(doc)
    assert same(snapshot(doc), forward)


# -- property: any sequence of edits reverts and re-applies bit for bit -------------------------

class Small(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.a = nn.Parameter(torch.randn(4, 3, generator=g))
        self.tied = self.a                                   # a tied pair: "a" and "tied"
        self.h = nn.Parameter(torch.randn(5, generator=g).to(torch.bfloat16))
        self.register_buffer("i", torch.arange(6).reshape(2, 3))
        self.register_buffer("m", torch.tensor([True, False, True, False]))
        self.register_buffer("s", torch.tensor(1.5))


INDEXES = ["", "[0]", "[-1]", "[0:2]", "[..., -1]", "[[0, 1]]", "[None]", "[::2]"]
VALUES = {"float": [0.0, -1.5, 1e-3, math.nan, math.inf], "int": [-5, 0, 7, 2.0], "bool": [0, 1, 1.0, True]}
EXPRS = {"float": ["w * 0.5 + 1", "torch.where(w.abs() < 0.5, 0, w)", "w.clamp(min=-1.0, max=None)",
                   "torch.rand_like(w)", "-w"],
         "int": ["w * 2 - 1", "w // 2", "-w"], "bool": ["~w", "w & False"]}
CELLS = {"float": ["0.25", "-3", "nan", "inf", "1e-3"], "int": ["7", "-2"], "bool": ["true", "0"]}
MASKS = {"float": "w > 0", "int": "w % 2 == 0", "bool": "w"}


def kind_of(t: torch.Tensor) -> str:
    return "bool" if t.dtype == torch.bool else "float" if t.is_floating_point() else "int"


@st.composite
def edit_strategy(draw, doc):
    names = list(doc.tensors)
    op = draw(st.sampled_from(["fill", "expr", "cell", "grad", "multi"]))
    name = draw(st.sampled_from(names))
    t = doc.tensor(name)
    kind = kind_of(t)
    index = draw(st.sampled_from(INDEXES if t.dim() else ["", "[None]", "[...]"]))
    if op == "fill":
        return FillEdit([name], draw(st.sampled_from(VALUES[kind])), index=index or None)
    if op == "expr":
        mask = draw(st.sampled_from([None, MASKS[kind]]))
        return ExprEdit([name], draw(st.sampled_from(EXPRS[kind])), index=index or None, mask=mask)
    if op == "cell":
        cell = tuple(draw(st.integers(-s, s - 1)) for s in t.shape)
        return CellEdit(name, cell, draw(st.sampled_from(CELLS[kind])))
    if op == "grad":
        return RequiresGradEdit(draw(st.lists(st.sampled_from(["a", "tied", "h", "i"]), min_size=1)),
                                draw(st.booleans()))
    several = draw(st.lists(st.sampled_from(["a", "tied", "h", "i", "m"]), min_size=2, max_size=4))
    if draw(st.booleans()):
        return FillEdit(several, draw(st.sampled_from([0.0, 1.0, 0.5])), index=draw(st.sampled_from(INDEXES)) or None)
    return ExprEdit(several, draw(st.sampled_from(["w * 0 + 1", "w", "w + 1.5"])),
                    index=draw(st.sampled_from(INDEXES)) or None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_edit_sequence_reverts_and_reapplies_bit_for_bit(data):
    model = Small()
    doc = Document.from_module(model)
    assert doc.aliases("a") == ["a", "tied"]
    start, ids = snapshot(doc), identity(doc)
    applied = []
    for _ in range(data.draw(st.integers(1, 8))):
        edit = data.draw(edit_strategy(doc))
        before = snapshot(doc)
        try:
            edit.apply(doc)
        except UserError:
            assert same(snapshot(doc), before)  # a refused edit changes nothing
            continue
        assert identity(doc) == ids and model.tied is model.a
        assert set(edit.touched()) >= ({"a", "tied"} & set(getattr(edit, "targets", [])))
        applied.append(edit)
    forward = snapshot(doc)
    for edit in reversed(applied):
        edit.revert(doc)
    assert same(snapshot(doc), start) and identity(doc) == ids
    for edit in applied:
        edit.apply(doc)
    assert same(snapshot(doc), forward) and identity(doc) == ids

