"""Recipes and user regexes are untrusted (issue 9), and renames must give names a module can
hold (issue 10): bounded regex time, every recipe field checked, one-line errors, exit 2."""
from __future__ import annotations

import json
import os

import pytest
import torch

from app.core.model.document import Document
from app.core.errors import UserError
from app.core.recipes.recipe import RecipeError, load_recipe
from app.core.edits.surgery import RenameEdit


def long_names_doc():
    return Document.from_object({"a" * 3000 + ".weight": torch.ones(2), "enc.weight": torch.ones(2),
                                 "enc.bias": torch.zeros(2)})


# -- regexes with a time budget ----------------------------------------------------------------

def test_a_backtracking_rename_ends_with_a_clear_error():
    doc = long_names_doc()
    with pytest.raises(UserError, match=r"took longer than .* s on 'aaaa.*simplify it"):
        RenameEdit(r"(a+)+b", "x").plan(doc)
    assert "enc.weight" in doc.tensors


def test_the_issue_pattern_on_long_names_ends_promptly():
    doc = long_names_doc()
    with pytest.raises(UserError, match="rename: "):  # no match, or over the budget: either ends
        RenameEdit(r"(.*)*x", "").plan(doc)


def test_bad_patterns_and_replacements_are_one_line_errors():
    doc = long_names_doc()
    for pattern, repl, words in [("(unclosed", "", "bad regular expression"),
                                 ("enc", r"\2", "bad replacement"),
                                 ("x" * 2000, "", "longer than"),
                                 ("enc", "y" * 2000, "longer than")]:
        with pytest.raises(UserError, match=words) as info:
            RenameEdit(pattern, repl).plan(doc)
        assert "\n" not in str(info.value)


# -- names a module can hold (issue 10) ------------------------------------------------------

@pytest.mark.parametrize("pattern, repl, bad", [
    ("^enc", "", ".weight"), (r"\.", "..", "enc..weight"), (r"weight$", "", "enc."),
    ("^", ".", ".enc.weight"),
])
def test_rename_refuses_empty_path_components(pattern, repl, bad):
    doc = Document.from_object({"enc.weight": torch.ones(2), "enc.bias": torch.zeros(2)})
    with pytest.raises(UserError, match="empty part"):
        RenameEdit(pattern, repl).apply(doc)
    assert list(doc.tensors) == ["enc.weight", "enc.bias"]
    with pytest.raises(KeyError, match="empty"):  # what torch itself says of such a part
        torch.nn.Module().register_parameter("", torch.nn.Parameter(torch.ones(1)))


def test_rename_to_dotted_names_still_works():
    doc = Document.from_object({"module.enc.weight": torch.ones(2)})
    edit = RenameEdit(r"^module\.", "")
    edit.apply(doc)
    assert list(doc.tensors) == ["enc.weight"]


# -- recipe fields -----------------------------------------------------------------------------

def steps(*s):
    return {"version": 1, "steps": list(s)}


@pytest.mark.parametrize("step, words", [
    ({"op": "expr", "target": "w", "expr": "w", "mask ": "w > 0"}, "unknown key 'mask '"),
    ({"op": "expr", "target": ["w"], "expr": "w"}, "'target' must be"),
    ({"op": "expr", "target": "w" * 5000, "expr": "w"}, "longer than"),
    ({"op": "expr", "target": "w", "expr": 5}, "'expr' must be"),
    ({"op": "expr", "target": "w", "expr": "w", "index": 3}, "'index' must be"),
    ({"op": "expr", "target": "w", "expr": "w", "mask": ["w"]}, "'mask' must be"),
    ({"op": "fill", "target": "w", "value": [1] * 10000}, "must be a number"),
    ({"op": "fill", "target": "w", "value": 10**30}, "too large"),
    ({"op": "fill", "target": "w", "value": {"x": 1}}, "must be a number"),
    ({"op": "fill", "target": "w"}, "needs 'value'"),
    ({"op": "rename", "from": 5, "to": ""}, "'from' must be"),
    ({"op": "rename", "from": "a", "to": 5}, "replacement must be text"),
    ({"op": "rename", "from": "(a", "to": ""}, "bad regular expression"),
    ({"op": "cast", "target": "*", "dtype": ["float16"]}, "'dtype' must be"),
    ({"op": "cast", "target": "*", "dtype": "os.system"}, "unknown dtype"),
    ({"op": "init", "target": "w", "fn": "normal_", "args": {"std": "x" * 500}}, "too long"),
    ({"op": "init", "target": "w", "fn": "normal_", "args": {"std": [1, 2]}}, "must be a number"),
    ({"op": "init", "target": "w", "fn": "normal_", "args": {"nope": 1}}, "nope"),
    ({"op": "init", "target": "w", "fn": "normal_", "seed": 2**80}, "out of range"),
    ({"op": "init", "target": "w", "fn": "normal_", "seed": "1"}, "'seed' must be"),
    ({"op": "requires_grad", "target": "w", "value": "yes"}, "true or false"),
    ({"op": "delete", "target": "w", "targets": ["w"]}, "unknown key 'targets'"),
    ({"op": ["expr"]}, "unknown op"),
    ("step", "a step must be a JSON object"),
])
def test_every_field_is_checked_with_a_one_line_error(step, words):
    with pytest.raises(RecipeError, match=words) as info:
        load_recipe(steps(step))
    msg = str(info.value)
    assert msg.startswith("recipe: step 1: ") and "\n" not in msg and len(msg) < 400


def test_the_recipe_file_itself_is_bounded(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(RecipeError, match="nested too deeply|not valid JSON"):
        load_recipe(deep)
    digits = tmp_path / "digits.json"
    digits.write_text('{"version": 1, "steps": [{"op": "fill", "target": "w", "value": '
                      + "9" * 10000 + "}]}")
    with pytest.raises(RecipeError, match="not valid JSON"):
        load_recipe(digits)
    many = tmp_path / "many.json"
    many.write_text(json.dumps(steps(*[{"op": "delete", "target": "w"}] * 10_001)))
    with pytest.raises(RecipeError, match="more than 10,000 steps"):
        load_recipe(many)
    with pytest.raises(RecipeError, match="version must be 1, not \\[0, 0"):
        load_recipe({"version": [0] * 100_000, "steps": []})
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(RecipeError, match="not a regular file"):
        load_recipe(fifo)  # open() on a FIFO would wait for a writer forever


def test_apply_with_a_backtracking_rename_exits_2(tmp_path, capsys):
    from app.__main__ import main
    src = tmp_path / "m.pt"
    torch.save({"a" * 3000 + ".weight": torch.ones(2)}, src)
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(steps({"op": "rename", "from": "(a+)+b", "to": "x"})))
    assert main(["apply", str(recipe), str(src), "-o", str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "took longer" in err
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("index, words", [
    ("[" + "9" * 5000 + "]", "not valid"),            # more digits than Python converts
    ("[" + "[" * 300 + "]" * 300 + "]", "not valid"),  # nesting
    ("[::" + "9" * 30 + "]", "out of range"),          # torch would wrap it to a negative stride
    ("[0:" + "9" * 100 + "]", "out of range"),
    ("[" + "1," * 6000 + "]", "at most 10,000 characters"),
])
def test_hostile_index_text_is_one_short_line(index, words):
    from app.core.edits.values import FillEdit
    doc = Document.from_object({"t": torch.zeros(4, 4)})
    with pytest.raises(UserError, match=words) as info:
        FillEdit(["t"], 1.0, index=index).apply(doc)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300
    assert torch.equal(doc.tensor("t"), torch.zeros(4, 4))
