"""Transplant, linear merge, task arithmetic and LoRA merge: core edits and recipe ops."""
import json

import pytest
import torch
from safetensors.torch import save_file

from app.__main__ import main
from app.core.model.document import Document
from app.core.errors import UserError
from app.core.formats import load_document
from app.core.compare.merge import LinearMergeEdit, TaskArithmeticEdit, TransplantEdit, plan_transplant
from app.core.compare.merge_lora import LoraMergeEdit, lora_scale, open_adapter
from app.core.recipes.recipe import replay
from tests.checkpoints import tied_lm, training_checkpoint


def sd(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"enc.weight": torch.randn(4, 3, generator=g), "enc.bias": torch.randn(4, generator=g),
            "head.weight": torch.randn(2, 4, generator=g), "steps": torch.tensor(7)}


def test_transplant_in_place_new_and_refused(tmp_path):
    a, b = sd(0), sd(1)
    b["head.weight"] = torch.randn(5, 4)
    b["new.weight"] = torch.ones(2, 2)
    doc, ref = Document.from_object(a), Document.from_object(b)
    enc = doc.tensor("enc.weight")
    copy, add, refused = plan_transplant(doc, ref, ["enc.weight", "new.weight", "head.weight"])
    assert copy == [("enc.weight", "enc.weight")] and add == [("new.weight", "new.weight")]
    assert refused == [("head.weight", "shape [5, 4] in the reference, [2, 4] here")]
    with pytest.raises(UserError, match="cannot transplant head.weight: shape"):
        TransplantEdit(ref, ["enc.weight", "head.weight"]).apply(doc)
    assert torch.equal(doc.tensor("enc.weight"), sd(0)["enc.weight"])  # nothing half-done
    edit = TransplantEdit(ref, ["enc.weight", "new.weight"], "ref", "b.pt")
    edit.apply(doc)
    assert doc.tensor("enc.weight") is enc and torch.equal(enc, b["enc.weight"])  # in place
    assert torch.equal(doc.tensor("new.weight"), b["new.weight"]) and "new.weight" in doc.container
    assert edit.recipe_step() == {"op": "transplant", "from": "ref",
                                  "targets": ["enc.weight", "new.weight"]}
    assert edit.inputs == {"ref": "b.pt"} and edit.structural
    edit.revert(doc)
    assert torch.equal(enc, sd(0)["enc.weight"]) and "new.weight" not in doc.tensors
    assert "new.weight" not in doc.container


def test_transplant_into_a_training_checkpoint_and_tied_weights(tmp_path):
    model = tied_lm()
    ck = training_checkpoint(model)
    torch.save(ck, tmp_path / "ck.pt")
    doc = load_document(str(tmp_path / "ck.pt"))
    other = tied_lm(seed=5).state_dict()
    ref = Document.from_object({"model.embed.weight": other["embed.weight"].clone(),
                                "model.extra.bias": torch.ones(3)})
    TransplantEdit(ref, ["model.embed.weight", "model.extra.bias"]).apply(doc)
    assert torch.equal(doc.tensor("model.lm_head.weight"), other["embed.weight"])  # tied alias
    assert doc.entry("model.extra.bias").path == ("model", "extra.bias")
    assert torch.equal(doc.container["model"]["extra.bias"], torch.ones(3))


def test_linear_merge_and_task_arithmetic_match_torch():
    a, b, c = sd(0), sd(1), sd(2)
    doc = Document.from_object({k: v.clone() for k, v in a.items()})
    refs = {"b": Document.from_object(b), "c": Document.from_object(c)}
    edit = LinearMergeEdit(refs, [0.5, 0.25, 0.25], None, doc)
    edit.apply(doc)
    for k in ("enc.weight", "enc.bias", "head.weight"):
        want = (a[k].double() * 0.5 + b[k].double() * 0.25 + c[k].double() * 0.25).float()
        assert torch.equal(doc.tensor(k), want)
    assert doc.tensor("steps").item() == 7  # integers are not averaged
    assert edit.recipe_step() == {"op": "merge", "inputs": ["b", "c"],
                                  "weights": [0.5, 0.25, 0.25], "target": "*"}
    edit.revert(doc)
    assert all(torch.equal(doc.tensor(k), a[k]) for k in a)
    edit = TaskArithmeticEdit({"b": refs["b"]}, [0.7], ["head.weight"], doc)
    edit.apply(doc)
    base = a["head.weight"].double()
    assert torch.equal(doc.tensor("head.weight"),
                       (base + 0.7 * (b["head.weight"].double() - base)).float())
    assert torch.equal(doc.tensor("enc.weight"), a["enc.weight"])
    with pytest.raises(UserError, match="weights"):
        LinearMergeEdit(refs, [0.5, 0.5], None, doc)


def make_adapter(folder, base: dict, r=2, alpha=8, extra=None, **cfg):
    folder.mkdir(exist_ok=True)
    g = torch.Generator().manual_seed(9)
    weights = {}
    for module in ("enc", "head"):
        w = base[f"{module}.weight"]
        weights[f"base_model.model.{module}.lora_A.weight"] = torch.randn(r, w.shape[1], generator=g)
        weights[f"base_model.model.{module}.lora_B.weight"] = torch.randn(w.shape[0], r, generator=g)
    weights.update(extra or {})
    save_file(weights, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": ["enc", "head"], **cfg}))
    return weights


def test_lora_merge_is_bit_for_bit_the_sum_by_hand(tmp_path, capsys):
    base = sd(0)
    torch.save(base, tmp_path / "base.pt")
    lora = make_adapter(tmp_path / "adapter", base, r=2, alpha=8)
    recipe = tmp_path / "merge.json"
    recipe.write_text(json.dumps({"version": 1, "inputs": {"lora": "adapter"},
                                  "steps": [{"op": "lora_merge", "adapter": "lora"}]}))
    out = tmp_path / "merged.safetensors"
    assert main(["apply", str(recipe), str(tmp_path / "base.pt"), "-o", str(out)]) == 0
    merged = load_document(str(out))
    for module in ("enc", "head"):
        A = lora[f"base_model.model.{module}.lora_A.weight"]
        B = lora[f"base_model.model.{module}.lora_B.weight"]
        W = base[f"{module}.weight"]
        assert torch.equal(merged.tensor(f"{module}.weight"), W + (8 / 2) * (B @ A))
    assert torch.equal(merged.tensor("enc.bias"), base["enc.bias"])


def test_lora_checks_every_key_found_its_target(tmp_path):
    base = sd(0)
    doc = Document.from_object(base)
    make_adapter(tmp_path / "bad", base, extra={
        "base_model.model.decoder.lora_A.weight": torch.ones(2, 3),
        "base_model.model.decoder.lora_B.weight": torch.ones(3, 2)})
    adapter, cfg = open_adapter(str(tmp_path / "bad"))
    with pytest.raises(UserError, match="2 adapter tensor.*decoder.lora_A"):
        LoraMergeEdit(doc, adapter, cfg)
    (tmp_path / "noconf").mkdir()
    save_file({"x": torch.ones(1)}, str(tmp_path / "noconf" / "adapter_model.safetensors"))
    with pytest.raises(UserError, match="adapter_config.json"):
        open_adapter(str(tmp_path / "noconf"))


def test_lora_variants_scale_embedding_and_modules_to_save(tmp_path):
    cfg = {"r": 4, "lora_alpha": 8, "use_rslora": True, "rank_pattern": {"head": 2}}
    assert lora_scale(cfg, "enc") == 8 / 2.0 and lora_scale(cfg, "model.head") == 8 / 2 ** 0.5
    g = torch.Generator().manual_seed(0)
    base = {"emb.weight": torch.randn(10, 4, generator=g), "cls.weight": torch.zeros(3, 4)}
    A, B = torch.randn(2, 10, generator=g), torch.randn(4, 2, generator=g)
    folder = tmp_path / "emb"
    folder.mkdir()
    save_file({"base_model.model.emb.lora_embedding_A": A, "base_model.model.emb.lora_embedding_B": B,
               "base_model.model.cls.modules_to_save.default.weight": torch.ones(3, 4)},
              str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"r": 2, "lora_alpha": 2}))
    doc = Document.from_object({k: v.clone() for k, v in base.items()})
    adapter, conf = open_adapter(str(folder))
    edit = LoraMergeEdit(doc, adapter, conf)
    edit.apply(doc)
    assert torch.equal(doc.tensor("emb.weight"), base["emb.weight"] + (1.0 * (B @ A)).T)
    assert torch.equal(doc.tensor("cls.weight"), torch.ones(3, 4))
    edit.revert(doc)
    assert torch.equal(doc.tensor("emb.weight"), base["emb.weight"])


def test_recipe_inputs_and_input_override(tmp_path, capsys):
    a, b, c = sd(0), sd(1), sd(2)
    for name, s in (("a", a), ("b", b), ("c", c)):
        torch.save(s, tmp_path / f"{name}.pt")
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"version": 1, "inputs": {"ref": "b.pt"}, "steps": [
        {"op": "transplant", "from": "ref", "targets": ["head.weight"]},
        {"op": "merge", "inputs": ["ref"], "weights": [0.5, 0.5], "target": "enc.*"}]}))
    out = tmp_path / "out.pt"
    assert main(["apply", str(recipe), str(tmp_path / "a.pt"), "-o", str(out)]) == 0
    got = torch.load(out)
    assert torch.equal(got["head.weight"], b["head.weight"])
    assert torch.equal(got["enc.bias"], ((a["enc.bias"].double() + b["enc.bias"].double()) * 0.5).float())
    assert main(["apply", str(recipe), str(tmp_path / "a.pt"), "-o", str(out),
                 "--input", f"ref={tmp_path / 'c.pt'}"]) == 0
    assert torch.equal(torch.load(out)["head.weight"], c["head.weight"])
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "steps": [
        {"op": "transplant", "from": "nope", "target": "*"}]}))
    assert main(["apply", str(bad), str(tmp_path / "a.pt"), "-o", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no input named 'nope'" in err[0] and "--input nope=PATH" in err[0]
    assert not (tmp_path / "x.pt").exists()
    for wrong in ({"op": "merge", "inputs": ["ref"], "weights": [1]},
                  {"op": "lora_merge", "adapter": "../x"}):
        bad.write_text(json.dumps({"version": 1, "steps": [wrong]}))
        assert main(["apply", str(bad), str(tmp_path / "a.pt"), "-o", str(tmp_path / "x.pt")]) == 2
    capsys.readouterr()


def test_replay_with_inputs_object(tmp_path):
    a, b = sd(0), sd(1)
    torch.save(b, tmp_path / "b.pt")
    doc = Document.from_object({k: v.clone() for k, v in a.items()})
    from app.core.compare.merge_ops import Inputs
    edits = replay({"version": 1, "steps": [
        {"op": "task_arithmetic", "finetuned": ["ft"], "lambdas": [1.0], "target": "*"}]},
        doc, inputs=Inputs({"ft": str(tmp_path / "b.pt")}))
    assert torch.equal(doc.tensor("enc.weight"), b["enc.weight"])
    edits[0].revert(doc)
    assert torch.equal(doc.tensor("enc.weight"), a["enc.weight"])
