"""Expressions over several tensors: t["NAME"] (the document) and ref["NAME"] (the reference)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from app.__main__ import main
from app.core.errors import UserError
from app.core.edits.values import ExprEdit
from app.core.expressions.env import Env
from app.core.expressions.expr import compile_expr, evaluate
from app.core.model.document import Document
from app.core.model.tensor_entry import TensorEntry
from app.core.recipes.recipe import replay


def doc_of(tensors: dict, path=None) -> Document:
    return Document([TensorEntry.of(n, t) for n, t in tensors.items()], path=path)


def env_of(doc=None, ref=None) -> Env:
    return Env(tensors=doc.__getitem__ if doc is not None else None,
               ref=ref.__getitem__ if ref is not None else None)


def test_interpolation_toward_the_reference_is_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    w, a = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    got = evaluate('w + 0.5 * (ref["a"] - w)', w, env=env_of(ref={"a": a}))
    assert torch.equal(got, w + 0.5 * (a - w))


def test_transpose_of_another_tensor_of_the_document():
    head = torch.arange(16.0).reshape(4, 4)
    doc = doc_of({"x": torch.zeros(4, 4), "head.weight": head})
    edit = ExprEdit(["x"], 't["head.weight"].T')
    edit.apply(doc)
    assert torch.equal(doc.tensor("x"), head.T)
    assert torch.equal(doc.tensor("head.weight"), torch.arange(16.0).reshape(4, 4))
    edit.revert(doc)
    assert torch.equal(doc.tensor("x"), torch.zeros(4, 4))


def test_only_the_named_tensors_are_read():
    read = []

    def lookup(name):
        read.append(name)
        return {"a": torch.ones(2), "b": torch.ones(2)}[name]
    evaluate('w + t["a"]', torch.zeros(2), env=Env(tensors=lookup))
    assert read == ["a"]


@pytest.mark.parametrize("text, why", [
    ("t[0]", 't[...] takes a tensor name in quotes'),
    ("t[w]", 't[...] takes a tensor name in quotes'),
    ('t["a" + "b"]', 't[...] takes a tensor name in quotes'),
    ("t", "t on its own is not a value"),
    ('ref("a")', "ref on its own is not a value"),
])
def test_names_of_tensors_must_be_constant_text(text, why):
    with pytest.raises(UserError, match=r"\[|on its own") as info:
        compile_expr(text)
    assert why in str(info.value) and "\n" not in str(info.value)


def test_unknown_tensor_and_missing_reference_are_one_clear_line():
    w = torch.zeros(2)
    with pytest.raises(UserError) as info:
        evaluate('w + t["missing"]', w, env=env_of(doc={"a": w}))
    assert "no tensor named 'missing'" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UserError, match="no reference is open"):
        evaluate('ref["a"]', w, env=env_of(doc={"a": w}))
    with pytest.raises(UserError, match="no reference is open: File > Compare With"):
        ExprEdit(["a"], 'w + ref["a"]')


@pytest.mark.parametrize("text", [
    'torch.nn.functional.relu(t["x"], True)',
    'torch.nn.functional.relu(ref["r"], True)',
    'torch.nn.functional.hardtanh(t["x"], -1.0, 1.0, True)',
    'torch.nn.functional.leaky_relu(ref["r"], 0.1, True)',
    'torch.add(w, 1, out=t["x"])',
    't["x"].add_(1)',
])
def test_in_place_writes_through_the_new_names_are_refused(text):
    x, r = torch.randn(4) - 0.5, torch.randn(4) - 0.5
    x0, r0 = x.clone(), r.clone()
    with pytest.raises(UserError):
        evaluate(text, torch.zeros(4), env=env_of(doc={"x": x}, ref={"r": r}))
    assert torch.equal(x, x0) and torch.equal(r, r0)
    assert x._version == 0 and r._version == 0


def test_other_tensors_count_toward_the_size_bound():
    w, big = torch.zeros(4), torch.zeros(2**21)  # the bound grows with what is read ...
    assert evaluate('(t["big"] * 2).sum()', w, env=env_of(doc={"big": big})) == 0
    with pytest.raises(UserError, match="more than an expression"):  # ... but stays a bound
        evaluate('t["big"].repeat(1000)', w, env=env_of(doc={"big": big}))


def test_shapes_must_fit_the_region():
    doc = doc_of({"x": torch.zeros(3, 3), "y": torch.zeros(2, 3)})
    with pytest.raises(UserError, match="does not fit the region of shape"):
        ExprEdit(["x"], 't["y"] * 2').apply(doc)
    with pytest.raises(UserError, match="must match"):
        ExprEdit(["x"], 'w + t["y"]').apply(doc)
    assert torch.equal(doc.tensor("x"), torch.zeros(3, 3))


def test_large_tensors_reading_others_are_evaluated_whole(monkeypatch):
    monkeypatch.setattr(ExprEdit, "chunk_elements", 4)
    doc = doc_of({"x": torch.arange(64.0).reshape(8, 8), "y": torch.ones(8, 8)})
    edit = ExprEdit(["x"], 'w + t["y"]')
    assert not edit._chunkable([("x", doc.tensor("x"))])
    assert ExprEdit(["x"], "w * 2 + 1")._chunkable([("x", doc.tensor("x"))])
    edit.apply(doc)
    assert torch.equal(doc.tensor("x"), torch.arange(64.0).reshape(8, 8) + 1)


def test_the_edit_records_the_reference_as_an_input(tmp_path):
    ref = doc_of({"a": torch.ones(3)}, path=str(tmp_path / "ref.safetensors"))
    edit = ExprEdit(["a"], 'w + 0.5 * (ref["a"] - w)', ref=ref)
    assert edit.inputs == {"ref": str(tmp_path / "ref.safetensors")}
    assert edit.recipe_step() == {"op": "expr", "target": "a", "expr": 'w + 0.5 * (ref["a"] - w)'}
    assert not getattr(ExprEdit(["a"], 't["a"] * 2'), "inputs", {})


def test_recipe_round_trip_with_input_override(tmp_path, capsys):
    g = torch.Generator().manual_seed(1)
    base = {"enc.weight": torch.randn(4, 4, generator=g), "head.weight": torch.randn(4, 4, generator=g)}
    r1 = {k: torch.randn(v.shape, generator=g) for k, v in base.items()}
    r2 = {k: torch.randn(v.shape, generator=g) for k, v in base.items()}
    for name, sd in (("base", base), ("r1", r1), ("r2", r2)):
        save_file(sd, str(tmp_path / f"{name}.safetensors"))
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"version": 1, "inputs": {"ref": "r1.safetensors"}, "steps": [
        {"op": "expr", "target": "enc.*", "expr": 'w + 0.5 * (ref["enc.weight"] - w)'},
        {"op": "expr", "target": "head.weight", "expr": 't["enc.weight"].T'}]}))
    out = tmp_path / "out.safetensors"
    assert main(["apply", str(recipe), str(tmp_path / "base.safetensors"), "-o", str(out)]) == 0
    got = load_file(str(out))
    merged = base["enc.weight"] + 0.5 * (r1["enc.weight"] - base["enc.weight"])
    assert torch.equal(got["enc.weight"], merged)
    assert torch.equal(got["head.weight"], merged.T)
    assert main(["apply", str(recipe), str(tmp_path / "base.safetensors"), "-o", str(out),
                 "--input", f"ref={tmp_path / 'r2.safetensors'}"]) == 0
    merged = base["enc.weight"] + 0.5 * (r2["enc.weight"] - base["enc.weight"])
    assert torch.equal(load_file(str(out))["enc.weight"], merged)
    capsys.readouterr()
    recipe.write_text(json.dumps({"version": 1, "steps": [
        {"op": "expr", "target": "enc.*", "expr": 'ref["enc.weight"]'}]}))
    assert main(["apply", str(recipe), str(tmp_path / "base.safetensors"), "-o",
                 str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no input named 'ref'" in err[0]
    assert not (tmp_path / "x.safetensors").exists()


def test_replay_reads_the_documents_own_tensors():
    doc = doc_of({"a": torch.ones(2, 2), "b": torch.full((2, 2), 3.0)})
    replay({"version": 1, "steps": [{"op": "expr", "target": "a", "expr": 'w * t["b"]'}]}, doc)
    assert torch.equal(doc.tensor("a"), torch.full((2, 2), 3.0))


def test_the_dialogs_preview_reads_the_document_and_the_reference():
    from app.core.edits.specs import EditSpec, preview_edit
    doc = doc_of({"x": torch.zeros(3), "y": torch.arange(3.0)})
    ref = doc_of({"x": torch.full((3,), 2.0)})
    p = preview_edit(EditSpec(op="expr", expr='t["y"] + ref["x"]'), "x", doc.tensor("x"),
                     doc=doc, ref=ref)
    assert torch.equal(p.after, torch.arange(3.0) + 2) and p.changed == 3
    assert torch.equal(doc.tensor("x"), torch.zeros(3))  # a preview changes nothing


def test_redo_works_after_the_reference_file_was_closed(tmp_path):
    from app.core.formats import load_document
    save_file({"a": torch.full((3,), 4.0)}, str(tmp_path / "ref.safetensors"))
    ref = load_document(str(tmp_path / "ref.safetensors"))
    doc = doc_of({"a": torch.zeros(3)})
    edit = ExprEdit(["a"], 'w + 0.5 * (ref["a"] - w)', ref=ref)
    edit.apply(doc)
    edit.revert(doc)
    ref.close()  # e.g. File > Compare With… another file
    edit.apply(doc)
    assert torch.equal(doc.tensor("a"), torch.full((3,), 2.0))
