"""``main.py apply RECIPE PATH -o OUT`` in a fresh process: success, and every bad-recipe case."""
import json

import pytest
import torch

from app.core.formats import load_document
from tests.checkpoints import tied_lm, training_checkpoint
from tests.cli import assert_one_error_line, run_main, run_main_process

pytest.importorskip("app.core.recipes.recipe")


@pytest.fixture
def ddp(tmp_path):
    sd = {f"module.{k}": v for k, v in tied_lm().state_dict().items()}
    path = tmp_path / "ddp.pt"
    torch.save(sd, path)
    return path


def write_recipe(tmp_path, steps, name="r.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"version": 1, "steps": steps}))
    return path


SURGERY = [{"op": "rename", "from": "^module\\.", "to": ""},
           {"op": "delete", "target": "body.1.*"},
           {"op": "cast", "target": "*", "dtype": "bfloat16"}]


@pytest.mark.parametrize("out", ["out.pt", "out.safetensors"])
def test_apply_writes_out(tmp_path, ddp, out):
    before = ddp.read_bytes()
    proc = run_main("apply", write_recipe(tmp_path, SURGERY), ddp, "-o", tmp_path / out)
    assert proc.returncode == 0, proc.stderr
    assert ddp.read_bytes() == before
    doc = load_document(str(tmp_path / out))
    assert list(doc.tensors) == ["embed.weight", "body.0.weight", "body.0.bias", "lm_head.weight"]
    assert all(e.dtype == torch.bfloat16 for e in doc.tensors.values())
    assert doc.entry("lm_head.weight").shared_with == ["embed.weight"]
    src = load_document(str(ddp))
    assert torch.equal(doc.tensor("body.0.bias"), src.tensor("module.body.0.bias").to(torch.bfloat16))


def test_apply_drop_optimizer_keeps_other_entries(tmp_path):
    torch.save(training_checkpoint(tied_lm()), tmp_path / "ck.pt")
    # the subprocess smoke test of `apply`: a fresh process, as a user runs it
    proc = run_main_process("apply", write_recipe(tmp_path, [{"op": "delete", "target": "optimizer"}]),
                            tmp_path / "ck.pt", "-o", tmp_path / "small.pt")
    assert proc.returncode == 0, proc.stderr
    back = torch.load(tmp_path / "small.pt", weights_only=True)
    assert list(back) == ["model", "epoch", "config", "history"] and back["epoch"] == 12


BAD = {
    "unknown op": [{"op": "frobnicate", "target": "*"}],
    "no match": [{"op": "delete", "target": "nothing.*"}],
    "no match after good step": [{"op": "cast", "target": "*", "dtype": "float16"},
                                 {"op": "cast", "target": "zzz", "dtype": "float16"}],
    "bad dtype": [{"op": "cast", "target": "*", "dtype": "float17"}],
    "bad expression": [{"op": "expr", "target": "module.embed.weight", "expr": "w *"}],
    "bad regex": [{"op": "rename", "from": "(", "to": ""}],
    "rename collision": [{"op": "rename", "from": "\\.(weight|bias)$", "to": ".w"}],
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("existing", [False, True])
def test_bad_recipes_exit_2_and_write_nothing(tmp_path, ddp, case, existing):
    out = tmp_path / "out.pt"
    if existing:
        out.write_bytes(b"previous")
    before = ddp.read_bytes()
    proc = run_main("apply", write_recipe(tmp_path, BAD[case]), ddp, "-o", out)
    assert_one_error_line(proc)
    assert ddp.read_bytes() == before
    assert (out.read_bytes() == b"previous") if existing else not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["ddp.pt", "r.json"] + (["out.pt"] if existing else []))


@pytest.mark.parametrize("text", ["{not json", json.dumps({"steps": "x"}), json.dumps([1, 2])])
def test_unreadable_recipe(tmp_path, ddp, text):
    (tmp_path / "r.json").write_text(text)
    proc = run_main("apply", tmp_path / "r.json", ddp, "-o", tmp_path / "o.pt")
    assert_one_error_line(proc)
    assert not (tmp_path / "o.pt").exists()


def test_missing_recipe_and_missing_input(tmp_path, ddp):
    assert_one_error_line(run_main("apply", tmp_path / "none.json", ddp, "-o", tmp_path / "o.pt"))
    recipe = write_recipe(tmp_path, SURGERY)
    assert_one_error_line(run_main("apply", recipe, tmp_path / "none.pt", "-o", tmp_path / "o.pt"))
    assert not (tmp_path / "o.pt").exists()


def test_entries_refused_for_safetensors_out(tmp_path):
    torch.save(training_checkpoint(tied_lm()), tmp_path / "ck.pt")
    recipe = write_recipe(tmp_path, [{"op": "cast", "target": "model.*", "dtype": "float16"}])
    line = assert_one_error_line(run_main("apply", recipe, tmp_path / "ck.pt", "-o", tmp_path / "o.safetensors"))
    assert "optimizer" in line
    assert not (tmp_path / "o.safetensors").exists()
