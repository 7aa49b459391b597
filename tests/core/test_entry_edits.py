"""Scalar entries and safetensors __metadata__ as undoable, recordable edits (edits/entries.py)."""
import json
import math
from collections import OrderedDict, namedtuple

import pytest
import torch
from safetensors.torch import save_file

from app.__main__ import main
from app.core.edits.entries import SetEntryEdit, SetMetadataEdit, find_entry, parse_value
from app.core.errors import UserError
from app.core.formats import load_document
from app.core.formats.save import save_document
from app.core.model.document import Document
from app.core.recipes.recipe import RecipeError, check_step, edit_for_step, load_recipe

Pair = namedtuple("Pair", "tag weight")


def checkpoint(named: bool = True) -> dict:
    """A training checkpoint; ``named`` adds a namedtuple (a class torch.load refuses)."""
    g = torch.Generator().manual_seed(0)
    ck = {
        "model": OrderedDict([("w", torch.randn(3, 4, generator=g)), ("b", torch.randn(3, generator=g))]),
        "optimizer": {"param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "nesterov": False,
                                        "name": "main", "foreach": None}]},
        "epoch": 3,
        "pair": ("tag", torch.ones(2)),
        "outer": [{"inner": (1, (2.5, torch.zeros(1)))}],
        "history": [1, 2, 3],
    }
    if named:
        ck["named"] = Pair("x", torch.ones(1))
    return ck


def tree_value(doc, name):
    node = doc.node(name)
    assert node is not None, name
    return node.summary


def bits(doc):
    return {n: doc.tensor(n).clone().view(torch.uint8) if doc.tensor(n).dtype.is_floating_point
            else doc.tensor(n).clone() for n in doc.tensors}


CASES = [
    ("epoch", 3, 12, "int: 12"),
    ("optimizer.param_groups.0.lr", 0.1, 3e-4, "float: 0.0003"),
    ("optimizer.param_groups.0.nesterov", False, True, "bool: True"),
    ("optimizer.param_groups.0.name", "main", "side", "str: 'side'"),
    ("optimizer.param_groups.0.foreach", None, True, "bool: True"),
    ("optimizer.param_groups.0.lr", 0.1, None, "None"),
]


@pytest.mark.parametrize("name,old,new,shown", CASES)
def test_set_and_undo_each_type(name, old, new, shown):
    doc = Document.from_object(checkpoint())
    before_ids = {n: id(doc.tensor(n)) for n in doc.tensors}
    edit = SetEntryEdit(name, new)
    edit.apply(doc)
    _path, value = find_entry(doc, name)
    assert value == new and type(value) is type(new)
    assert tree_value(doc, name) == shown
    edit.revert(doc)
    _path, value = find_entry(doc, name)
    assert value == old and type(value) is type(old)
    assert {n: id(doc.tensor(n)) for n in doc.tensors} == before_ids  # no tensor rebound
    edit.apply(doc)  # redo
    assert find_entry(doc, name)[1] == new


def test_int_stays_int_and_float_stays_float():
    doc = Document.from_object(checkpoint())
    SetEntryEdit("epoch", parse_value("12", "int")).apply(doc)
    assert type(doc.container["epoch"]) is int
    SetEntryEdit("optimizer.param_groups.0.lr", parse_value("3e-4", "float")).apply(doc)
    assert doc.container["optimizer"]["param_groups"][0]["lr"] == 3e-4


def test_inside_tuples_rebuilt_and_restored_exactly():
    ck = checkpoint()
    doc = Document.from_object(ck)
    old_pair, old_outer = ck["pair"], ck["outer"][0]["inner"]
    tensor = ck["pair"][1]
    e1 = SetEntryEdit("pair.0", "renamed")
    e1.apply(doc)
    assert ck["pair"] == ("renamed", tensor) and ck["pair"][1] is tensor
    assert tree_value(doc, "pair.0") == "str: 'renamed'"
    e2 = SetEntryEdit("outer.0.inner.1.0", 7.5)  # a tuple in a tuple in a dict
    e2.apply(doc)
    assert ck["outer"][0]["inner"][1][0] == 7.5 and type(ck["outer"][0]["inner"]) is tuple
    e3 = SetEntryEdit("named.0", "y")  # a namedtuple keeps its type
    e3.apply(doc)
    assert type(ck["named"]) is Pair and ck["named"].tag == "y"
    e3.revert(doc)
    e2.revert(doc)
    e1.revert(doc)
    assert ck["pair"] is old_pair and ck["outer"][0]["inner"] is old_outer


def test_item_of_a_tuple_of_plain_values():
    doc = Document.from_object(checkpoint())
    edit = SetEntryEdit("optimizer.param_groups.0.betas.1", 0.99)
    edit.apply(doc)
    assert doc.container["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)
    edit.revert(doc)
    assert doc.container["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)


def test_top_level_tuple_checkpoint():
    doc = Document.from_object((1, torch.ones(2)))
    t = doc.container
    edit = SetEntryEdit("0", 5)
    edit.apply(doc)
    assert doc.container == (5, t[1]) and doc.container[1] is t[1]
    edit.revert(doc)
    assert doc.container is t


@pytest.mark.parametrize("name,value,words", [
    ("model.w", 1, "is a tensor"),
    ("history", 1, "not a single value"),
    ("optimizer", 1, "no entry"),
    ("nope", 1, "no entry"),
    ("optimizer.param_groups.0.betas.7", 1, "no entry"),
    ("epoch", [1], "only a number"),
    ("epoch", 1j, "only a number"),
    ("epoch", b"x", "only a number"),
    ("epoch", 1 << 5000, "too large"),
    ("epoch", "x" * 10_001, "longer than"),
])
def test_refusals_leave_the_document_unchanged(name, value, words):
    ck = checkpoint()
    doc = Document.from_object(ck)
    before = repr(ck)
    with pytest.raises(UserError) as err:
        SetEntryEdit(name, value).apply(doc)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert repr(ck) == before


@pytest.mark.parametrize("text,kind,words", [
    ("abc", "int", "not a whole number"), ("3.5", "int", "not a whole number"),
    ("x", "float", "not a number"), ("yes", "bool", "true or false"),
    ("1", "None", "only the text None"), ("1", "complex", "unknown value type"),
    ("9" * 20_000, "int", "longer than"),
])
def test_parse_refusals(text, kind, words):
    with pytest.raises(UserError) as err:
        parse_value(text, kind, "epoch")
    assert words in str(err.value) and "\n" not in str(err.value)


def test_parse_values():
    assert parse_value(" 12 ", "int") == 12
    assert parse_value("3e-4", "float") == 3e-4
    assert math.isnan(parse_value("nan", "float"))
    assert parse_value("TRUE", "bool") is True
    assert parse_value(" None ", "str") == " None "  # text as is
    assert parse_value("None", "int") is None


def test_live_model_refused():
    doc = Document.from_module(torch.nn.Linear(2, 2))
    with pytest.raises(UserError):
        SetEntryEdit("weight", 1).apply(doc)


def test_save_pt_and_reload(tmp_path):
    doc = Document.from_object(checkpoint(named=False))
    before = bits(doc)
    SetEntryEdit("epoch", 12).apply(doc)
    SetEntryEdit("optimizer.param_groups.0.lr", 3e-4).apply(doc)
    SetEntryEdit("pair.0", "new").apply(doc)
    out = tmp_path / "out.pt"
    save_document(doc, str(out))
    again = load_document(str(out))
    assert again.container["epoch"] == 12
    assert again.container["optimizer"]["param_groups"][0]["lr"] == 3e-4
    assert again.container["pair"][0] == "new"
    assert tree_value(again, "optimizer.param_groups.0.lr") == "float: 0.0003"
    after = bits(again)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_metadata_set_remove_round_trip(tmp_path):
    src = tmp_path / "m.safetensors"
    save_file({"w": torch.arange(6.0).reshape(2, 3)}, str(src), metadata={"format": "pt", "a": "1"})
    doc = load_document(str(src))
    original = dict(doc.metadata)
    add, change, remove = (SetMetadataEdit("note", "hello"), SetMetadataEdit("format", "np"),
                           SetMetadataEdit("a", None))
    for e in (add, change, remove):
        e.apply(doc)
    assert doc.metadata["note"] == "hello" and doc.metadata["format"] == "np" and "a" not in doc.metadata
    for e in (remove, change, add):
        e.revert(doc)
    assert list(doc.metadata.items()) == list(original.items())
    for e in (add, change, remove):
        e.apply(doc)
    out = tmp_path / "out.safetensors"
    save_document(doc, str(out))
    again = load_document(str(out))
    assert again.metadata["note"] == "hello" and again.metadata["format"] == "np"
    assert "a" not in again.metadata
    assert torch.equal(again.tensor("w"), torch.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize("key,value,words", [
    ("paramedit.order", "x", "written by paramedit"), ("", "x", "non-empty"),
    ("k", 3, "only text"), ("w", "x", "names a tensor"), ("missing", None, "no key"),
    ("k", "v" * 10_001, "longer than"),
])
def test_metadata_refusals(tmp_path, key, value, words):
    src = tmp_path / "m.safetensors"
    save_file({"w": torch.zeros(2)}, str(src), metadata={"format": "pt"})
    doc = load_document(str(src))
    with pytest.raises(UserError) as err:
        SetMetadataEdit(key, value).apply(doc)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert doc.metadata == {"format": "pt"}


def test_metadata_refused_for_torch_files():
    doc = Document.from_object(checkpoint())
    with pytest.raises(UserError, match="only safetensors"):
        SetMetadataEdit("k", "v").apply(doc)


def test_recipe_steps_checked():
    check_step({"op": "set_entry", "target": "epoch", "value": 3})
    check_step({"op": "set_entry", "target": "epoch", "value": None})
    check_step({"op": "set_metadata", "key": "format", "value": None})
    for bad in ({"op": "set_entry", "target": "epoch"},
                {"op": "set_entry", "target": "epoch", "value": [1]},
                {"op": "set_entry", "target": "epoch", "value": {"a": 1}},
                {"op": "set_entry", "target": "", "value": 1},
                {"op": "set_entry", "target": "epoch", "value": 1, "mask": "w"},
                {"op": "set_entry", "target": "epoch", "value": "x" * 10_001},
                {"op": "set_metadata", "key": "format", "value": 1},
                {"op": "set_metadata", "key": 5, "value": "x"},
                {"op": "set_metadata", "key": "k", "value": "x" * 10_001}):
        with pytest.raises(UserError):
            load_recipe({"version": 1, "steps": [bad]})


def test_recipe_step_builds_the_edit():
    doc = Document.from_object(checkpoint())
    step = SetEntryEdit("epoch", 9).recipe_step()
    assert step == {"op": "set_entry", "target": "epoch", "value": 9}
    edit_for_step(step, doc).apply(doc)
    assert doc.container["epoch"] == 9


def test_exported_recipe_replayed_by_apply_gives_the_same_file(tmp_path):
    src = tmp_path / "ck.pt"
    torch.save(checkpoint(named=False), src)
    doc = load_document(str(src))
    edits = [SetEntryEdit("epoch", 12), SetEntryEdit("optimizer.param_groups.0.lr", 3e-4),
             SetEntryEdit("optimizer.param_groups.0.name", "x\ny"), SetEntryEdit("pair.0", None)]
    for e in edits:
        e.apply(doc)
    gui_out = tmp_path / "gui.pt"
    save_document(doc, str(gui_out))
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"version": 1, "steps": [e.recipe_step() for e in edits]}))
    cli_out = tmp_path / "cli.pt"
    assert main(["apply", str(recipe), str(src), "-o", str(cli_out)]) == 0
    a, b = load_document(str(gui_out)), load_document(str(cli_out))
    assert repr({k: v for k, v in a.container.items() if k != "model"}) == \
        repr({k: v for k, v in b.container.items() if k != "model"})
    assert b.container["epoch"] == 12 and b.container["pair"][0] is None
    assert all(torch.equal(a.tensor(n), b.tensor(n)) for n in a.tensors)


def test_metadata_recipe_through_apply(tmp_path):
    src = tmp_path / "m.safetensors"
    save_file({"w": torch.arange(4.0)}, str(src), metadata={"format": "pt", "old": "1"})
    recipe = tmp_path / "r.json"
    steps = [SetMetadataEdit("format", "np").recipe_step(), SetMetadataEdit("old", None).recipe_step()]
    recipe.write_text(json.dumps({"version": 1, "steps": steps}))
    out = tmp_path / "out.safetensors"
    assert main(["apply", str(recipe), str(src), "-o", str(out)]) == 0
    again = load_document(str(out))
    assert again.metadata.get("format") == "np" and "old" not in again.metadata


def test_failing_step_names_itself(tmp_path):
    src = tmp_path / "ck.pt"
    torch.save(checkpoint(named=False), src)
    doc = load_document(str(src))
    from app.core.recipes.apply_cli import replay_lean
    with pytest.raises(RecipeError, match=r"step 1 \(set_entry\).*no entry"):
        replay_lean(load_recipe({"version": 1, "steps": [
            {"op": "set_entry", "target": "nope", "value": 1}]}), doc)


def test_a_run_of_entry_steps_rebuilds_the_tree_once():
    from app.core.recipes.apply_cli import replay_lean
    doc = Document.from_object(checkpoint(named=False))
    before = doc.announcements
    steps = [{"op": "set_entry", "target": "epoch", "value": i} for i in range(50)]
    replay_lean(load_recipe({"version": 1, "steps": steps}), doc)
    assert doc.announcements == before + 1
    assert doc.container["epoch"] == 49 and tree_value(doc, "epoch") == "int: 49"


def test_paths_follow_structural_changes_between_steps():
    from app.core.edits.surgery import DeleteEdit
    from app.core.recipes.apply_cli import replay_lean
    doc = Document.from_object(checkpoint(named=False))
    SetEntryEdit("optimizer.param_groups.0.lr", 0.2).apply(doc)
    DeleteEdit("optimizer").apply(doc)
    with pytest.raises(UserError, match="no entry"):
        SetEntryEdit("optimizer.param_groups.0.lr", 0.3).apply(doc)
    doc = Document.from_object(checkpoint(named=False))
    with pytest.raises(RecipeError, match=r"step 3 \(set_entry\).*no entry"):
        replay_lean(load_recipe({"version": 1, "steps": [
            {"op": "set_entry", "target": "epoch", "value": 4},
            {"op": "delete", "target": "optimizer"},
            {"op": "set_entry", "target": "optimizer.param_groups.0.lr", "value": 1.0}]}), doc)


@pytest.mark.parametrize("name", ["optimizer.param_groups.0.betas.²", "optimizer.param_groups.0.betas.-1",
                                  "optimizer.param_groups.0.betas." + "9" * 30, ".", "epoch.0"])
def test_odd_item_names_refused(name):
    doc = Document.from_object(checkpoint())
    with pytest.raises(UserError):
        SetEntryEdit(name, 1).apply(doc)


def test_editable_text_refuses_what_a_dialog_would_cut():
    from app.core.edits.entries import brief, editable_text
    assert editable_text(3e-4) == "0.0003" and editable_text(None) == "None"
    for value in ("x" * 10_001, 10 ** 5000):
        with pytest.raises(UserError, match="longer than"):
            editable_text(value, "cfg.note")
    assert "bits" in brief(10 ** 5000) and len(brief("z" * 10**6)) <= 40


def test_keys_that_read_alike_are_refused_not_guessed():
    ck = {1: 5, "1": 6, "w": torch.zeros(1)}
    doc = Document.from_object(ck)
    with pytest.raises(UserError, match="several top-level entries"):
        SetEntryEdit("1", 7).apply(doc)
    assert ck == {1: 5, "1": 6, "w": ck["w"]}


def test_metadata_of_a_sharded_folder_round_trip(tmp_path):
    from tests.checkpoints import save_sharded_safetensors
    index = save_sharded_safetensors({f"l{i}.w": torch.full((2,), float(i)) for i in range(4)},
                                     str(tmp_path / "in"))
    doc = load_document(index)
    assert doc.format == "safetensors-sharded"
    SetMetadataEdit("note", "sharded").apply(doc)
    out = tmp_path / "out"
    written = save_document(doc, str(out), shard_size=16)
    again = load_document(written)
    assert again.metadata.get("note") == "sharded"
    assert all(torch.equal(again.tensor(n), doc.tensor(n)) for n in doc.tensors)
