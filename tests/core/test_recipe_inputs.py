"""Issue 12: a transplant from reference A, then an expression reading ``ref[...]`` of reference
B: the exported recipe names both files (``ref``, ``ref2``), each step the one it read, and
``paramedit apply`` replays the same result; ``--input NAME=PATH`` overrides each."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from app.__main__ import main
from app.core.compare.merge import TransplantEdit
from app.core.edits.history import EditHistory
from app.core.edits.values import ExprEdit
from app.core.formats import load_document
from app.core.recipes.check import RecipeError, load_recipe


def tensors(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"enc.weight": torch.randn(4, 3, generator=g), "head.bias": torch.randn(2, generator=g)}


@pytest.fixture
def files(tmp_path):
    for name, seed in (("doc", 0), ("a", 1), ("b", 2), ("c", 3)):
        save_file(tensors(seed), str(tmp_path / f"{name}.safetensors"))
    return tmp_path


def window_edits(files) -> tuple[EditHistory, dict]:
    """What the window does: Compare With a.safetensors, transplant head.bias; Compare With
    b.safetensors, an expression reading ref["enc.weight"]."""
    doc = load_document(str(files / "doc.safetensors"))
    ref_a = load_document(str(files / "a.safetensors"))
    ref_b = load_document(str(files / "b.safetensors"))
    history = EditHistory(doc)
    history.push(TransplantEdit(ref_a, ["head.bias"], "ref", ref_a.path))
    history.push(ExprEdit(["enc.weight"], 'w + 0.5 * (ref["enc.weight"] - w)', ref=ref_b,
                          ref_path=ref_b.path))
    result = {n: doc.tensor(n).clone() for n in doc.names()}
    for d in (doc, ref_a, ref_b):
        d.close()
    return history, result


def test_each_reference_is_its_own_input_and_apply_replays_the_same(files):
    history, result = window_edits(files)
    recipe = history.recipe()
    assert recipe["inputs"] == {"ref": str(files / "a.safetensors"),
                                "ref2": str(files / "b.safetensors")}
    assert recipe["steps"] == [
        {"op": "transplant", "from": "ref", "targets": ["head.bias"]},
        {"op": "expr", "target": "enc.weight", "expr": 'w + 0.5 * (ref["enc.weight"] - w)',
         "ref": "ref2"}]
    path = files / "edits.recipe.json"
    path.write_text(json.dumps(recipe))
    out = files / "out.safetensors"
    assert main(["apply", str(path), str(files / "doc.safetensors"), "-o", str(out)]) == 0
    got = load_file(str(out))
    assert all(torch.equal(got[n], result[n]) for n in result)
    a, b = tensors(1), tensors(2)
    assert torch.equal(got["head.bias"], a["head.bias"])  # from A, not B
    assert torch.allclose(got["enc.weight"], (tensors(0)["enc.weight"] + b["enc.weight"]) / 2)


def test_input_overrides_each_name(files):
    history, _ = window_edits(files)
    path = files / "edits.recipe.json"
    path.write_text(json.dumps(history.recipe()))
    out = files / "out.safetensors"
    assert main(["apply", str(path), str(files / "doc.safetensors"), "-o", str(out),
                 "--input", f"ref2={files / 'c.safetensors'}"]) == 0
    got, c = load_file(str(out)), tensors(3)
    assert torch.equal(got["head.bias"], tensors(1)["head.bias"])  # ref stays A
    assert torch.allclose(got["enc.weight"], (tensors(0)["enc.weight"] + c["enc.weight"]) / 2)
    assert main(["apply", str(path), str(files / "doc.safetensors"), "-o", str(out),
                 "--input", f"ref={files / 'c.safetensors'}"]) == 0
    assert torch.equal(load_file(str(out))["head.bias"], tensors(3)["head.bias"])


def test_the_same_reference_twice_is_one_input(files):
    doc = load_document(str(files / "doc.safetensors"))
    ref = load_document(str(files / "a.safetensors"))
    history = EditHistory(doc)
    history.push(TransplantEdit(ref, ["head.bias"], "ref", ref.path))
    history.push(ExprEdit(["enc.weight"], 'ref["enc.weight"]', ref=ref, ref_path=ref.path))
    recipe = history.recipe()
    assert recipe["inputs"] == {"ref": str(files / "a.safetensors")}
    assert "ref" not in recipe["steps"][1]
    doc.close(), ref.close()


@pytest.mark.parametrize("step, message", [
    ({"op": "expr", "target": "x", "expr": "w * 2", "ref": "ref2"}, "reads no ref"),
    ({"op": "expr", "target": "x", "expr": 'ref["x"]', "ref": "no good"}, "input names"),
])
def test_a_ref_key_is_checked(step, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe({"version": 1, "steps": [step]})
