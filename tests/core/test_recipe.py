"""Recipes: loading and checking, replay of value steps against plain torch, edits -> steps -> replay."""
import json

import pytest
import torch
from torch import nn

from app.core.model.document import Document
from app.core.edits.values import CellEdit, ExprEdit, FillEdit, RequiresGradEdit, ResetParametersEdit
from app.core.recipes.recipe import OPS, RecipeError, edit_for_step, load_recipe, replay, resolve_targets
from tests.checkpoints import tied_lm


def recipe(*steps):
    return {"version": 1, "steps": list(steps)}


def state_doc(seed=0):
    return Document.from_object(tied_lm(seed).state_dict())


# -- loading ------------------------------------------------------------------------------------

def test_load_reads_a_file(tmp_path):
    path = tmp_path / "r.json"
    steps = [{"op": "fill", "target": "head.bias", "value": 0.0, "index": "[0:2]"},
             {"op": "expr", "target": "head.weight", "expr": "w * 0.5 + 1", "index": "[:, 0]"},
             {"op": "init", "target": "encoder.*.weight", "fn": "xavier_uniform_", "args": {"gain": 1.0}, "seed": 0},
             {"op": "rename", "from": "^module\\.", "to": ""}, {"op": "delete", "target": "aux.*"},
             {"op": "cast", "target": "*", "dtype": "bfloat16"}]
    path.write_text(json.dumps(recipe(*steps)))
    assert load_recipe(path)["steps"] == steps
    assert load_recipe(str(path)) == load_recipe(recipe(*steps))


@pytest.mark.parametrize("text, words", [
    ("{not json", "r.json is not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({"steps": []}), "version must be 1"),
    (json.dumps({"version": 2, "steps": []}), "version must be 1, not 2"),
    (json.dumps({"version": 1, "steps": "x"}), '"steps" must be a list'),
    (json.dumps(recipe(1)), "step 1: a step must be a JSON object"),
])
def test_unreadable_recipes(tmp_path, text, words):
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(RecipeError, match=words.replace("(", r"\(")) as info:
        load_recipe(path)
    assert "\n" not in str(info.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "none.json")


BAD_STEPS = [
    ({"op": "frobnicate", "target": "*"},
     "step 2: unknown op 'frobnicate' (known: init, expr, fill, rename, delete, cast, requires_grad, reset_parameters"),
    ({"op": "fill", "value": 1.0}, "fill needs 'target'"),
    ({"op": "fill", "target": "x"}, "fill needs 'value'"),
    ({"op": "fill", "target": "x", "value": "abc"}, "'value' must be a number"),
    ({"op": "fill", "target": "x", "value": 1, "index": "[w]"}, "index '[w]'"),
    ({"op": "expr", "target": "x", "expr": "w *"}, "expression `w *`: invalid syntax"),
    ({"op": "expr", "target": "x", "expr": "w", "mask": "open('f')"}, "unknown name 'open'"),
    ({"op": "expr", "target": "x"}, "expr needs 'expr'"),
    ({"op": "cast", "target": "*", "dtype": "float17"}, "unknown dtype 'float17'"),
    ({"op": "rename", "from": "(", "to": ""}, "bad regular expression"),
    ({"op": "init", "target": "*", "fn": "load"}, "not a function of torch.nn.init"),
    ({"op": "init", "target": "*", "fn": "normal_", "seed": True}, "'seed' must be an integer"),
    ({"op": "init", "target": "*", "fn": "normal_", "args": [1]}, "'args' must be an object"),
    ({"op": "requires_grad", "target": "*", "value": 1}, "'value' must be true or false"),
    ({"op": "delete", "target": 3}, "'target' must be a tensor name or glob"),
    ({"op": "fill", "targets": [], "value": 0}, "'targets' must be a non-empty list"),
]


@pytest.mark.parametrize("step, words", BAD_STEPS)
def test_bad_steps_fail_at_load(tmp_path, step, words):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recipe({"op": "delete", "target": "a"}, step)))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert msg.startswith("recipe r.json: step 2: ") and words in msg and "\n" not in msg


# -- replay -------------------------------------------------------------------------------------

def test_replay_fill_and_expr_equal_plain_torch():
    doc = state_doc()
    ref = {k: v.clone() for k, v in tied_lm().state_dict().items() if k != "lm_head.weight"}
    replay(recipe(
        {"op": "expr", "target": "body.0.weight", "expr": "w * 0.5 + 1", "index": "[:, 0]"},
        {"op": "fill", "target": "body.0.bias", "value": 0.0, "index": "[0:2]"},
        {"op": "expr", "target": "body.*.bias", "expr": "w - 3", "mask": "w > 0"},
        {"op": "fill", "targets": ["embed.weight"], "value": 2, "index": "[-1]"},
    ), doc)
    ref["body.0.weight"][:, 0] = ref["body.0.weight"][:, 0] * 0.5 + 1
    ref["body.0.bias"][0:2] = 0.0
    for k in ("body.0.bias", "body.1.bias"):
        ref[k] = torch.where(ref[k] > 0, ref[k] - 3, ref[k])
    ref["embed.weight"][-1] = 2
    for k, v in ref.items():
        assert torch.equal(doc.tensor(k), v), k
    assert torch.equal(doc.tensor("lm_head.weight"), ref["embed.weight"])


def test_step_matching_nothing_fails_and_earlier_steps_are_undone():
    doc = state_doc()
    before = {k: doc.tensor(k).clone() for k in doc.tensors}
    with pytest.raises(RecipeError, match=r"^step 2 \(fill\): target 'aux\.\*' matches no tensor$"):
        replay(recipe({"op": "expr", "target": "*", "expr": "w * 0"},
                      {"op": "fill", "target": "aux.*", "value": 0}), doc)
    assert all(torch.equal(doc.tensor(k), v) for k, v in before.items())
    with pytest.raises(RecipeError, match=r"step 1 \(delete\): .*matches no tensor"):
        replay(recipe({"op": "delete", "target": "aux.*"}), doc)
    with pytest.raises(RecipeError, match=r"step 1 \(fill\): body.1.weight: .* out of range"):
        replay(recipe({"op": "fill", "target": "body.1.weight", "value": 0, "index": "[9]"}), doc)
    with pytest.raises(RecipeError, match="no tensor named 'nope'"):
        resolve_targets(doc, {"op": "fill", "targets": ["nope"], "value": 0})


def test_edits_recorded_as_steps_replay_to_the_same_result():
    torch.manual_seed(5)
    edits = [FillEdit(["body.0.weight"], 0.25, index="[1:3]"),
             ExprEdit(["body.0.bias", "body.1.weight"], "w * -2", index="[0:2]", mask="w < 0"),
             ExprEdit(["embed.weight", "body.1.bias"], "w + 1"),
             FillEdit(["body.0.bias", "body.1.bias"], -1.0, glob="body.*.bias"),
             CellEdit("embed.weight", (2, 3), "1e-3"),
             CellEdit("body.1.weight", (0,), 4)]
    direct = state_doc()
    for e in edits:
        e.apply(direct)
    steps = [e.recipe_step() for e in edits]
    assert steps[3] == {"op": "fill", "target": "body.*.bias", "value": -1.0}
    assert steps[1]["targets"] == ["body.0.bias", "body.1.weight"] and steps[1]["mask"] == "w < 0"
    loaded = load_recipe(recipe(*json.loads(json.dumps(steps))))
    again = state_doc()
    applied = replay(loaded, again)
    assert len(applied) == len(edits)
    for k in direct.tensors:
        assert torch.equal(direct.tensor(k), again.tensor(k)), k
    for e in reversed(applied):
        e.revert(again)
    fresh = state_doc()
    assert all(torch.equal(again.tensor(k), fresh.tensor(k)) for k in fresh.tensors)


def test_requires_grad_and_reset_parameters_steps_on_a_live_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.Linear(3, 2), nn.ReLU()))
    doc = Document.from_module(model)
    weight = model[1][0].weight
    before = weight.detach().clone()
    seen = []
    replay(recipe({"op": "requires_grad", "target": "0.*", "value": False},
                  {"op": "reset_parameters", "target": "1.*"}), doc, progress=lambda d, t: seen.append((d, t)))
    assert not model[0].weight.requires_grad and not model[0].bias.requires_grad
    assert model[1][0].weight is weight and not torch.equal(weight, before)
    assert seen == [(1, 2), (2, 2)]
    step = RequiresGradEdit(["0.weight"], True, glob="0.w*").recipe_step()
    assert step == {"op": "requires_grad", "target": "0.w*", "value": True}
    assert ResetParametersEdit([""]).recipe_step() == {"op": "reset_parameters", "target": ""}
    with pytest.raises(RecipeError, match="matches no module"):
        replay(recipe({"op": "reset_parameters", "target": "zz"}), doc)
    with pytest.raises(RecipeError, match="live model"):
        replay(recipe({"op": "reset_parameters", "target": ""}), state_doc())


def test_init_step_builds_an_init_edit():
    pytest.importorskip("app.core.edits.initializers")
    doc = state_doc()
    edit = edit_for_step({"op": "init", "target": "body.*.weight", "fn": "zeros_", "args": {}, "seed": 1}, doc)
    assert type(edit).__name__ == "InitEdit"
    assert set(OPS) >= {"init", "expr", "fill", "rename", "delete", "cast", "requires_grad", "reset_parameters"}
