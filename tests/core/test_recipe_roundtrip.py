"""One op registry (core/recipes/registry.py): every op of the recipe allowlist replays and
exports again to the identical step, and the recipe's inputs come back under the same names."""
import copy
import json

import pytest
import torch
from safetensors.torch import save_file

from app.core.compare.merge_ops import Inputs
from app.core.edits.history import EditHistory
from app.core.formats import load_document
from app.core.model.document import Document
from app.core.recipes.check import OPS, load_recipe
from app.core.recipes.recipe import edit_for_step
from app.core.recipes.registry import REGISTRY, edit_class


def tensors(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"enc.weight": torch.randn(4, 3, generator=g), "enc.bias": torch.randn(4, generator=g),
            "head.weight": torch.randn(2, 4, generator=g), "head.bias": torch.randn(2, generator=g),
            "aux.weight": torch.randn(4, 3, generator=g)}


@pytest.fixture
def files(tmp_path):
    save_file(tensors(0), str(tmp_path / "doc.safetensors"), metadata={"format": "pt"})
    save_file(tensors(1), str(tmp_path / "a.safetensors"))
    save_file(tensors(2), str(tmp_path / "b.safetensors"))
    torch.save({"model": tensors(3), "epoch": 12}, tmp_path / "ck.pt")  # a training checkpoint
    adapter = tmp_path / "lora"
    adapter.mkdir()
    g = torch.Generator().manual_seed(9)
    save_file({"base_model.model.enc.lora_A.weight": torch.randn(2, 3, generator=g),
               "base_model.model.enc.lora_B.weight": torch.randn(4, 2, generator=g)},
              str(adapter / "adapter_model.safetensors"))
    (adapter / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["enc"]}))
    return tmp_path


def live() -> Document:
    torch.manual_seed(0)
    return Document.from_module(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
                                                    torch.nn.Linear(4, 2)))


A, B = "a.safetensors", "b.safetensors"
CASES = {  # op: (document, inputs, steps) -- the last step is the op's
    "init": ("doc", {}, [{"op": "init", "target": "*.weight", "fn": "xavier_uniform_",
                          "args": {"gain": 1.0}, "seed": 0}]),
    "init-targets": ("doc", {}, [{"op": "init", "target": "enc.weight", "fn": "normal_",
                                  "args": {"std": 0.02}, "seed": None,
                                  "targets": ["enc.weight", "head.weight"]}]),
    "expr": ("doc", {}, [{"op": "expr", "target": "*.weight", "expr": "w * 0.5 + 1",
                          "index": "[:, 0]"}]),
    "expr-mask": ("doc", {}, [{"op": "expr", "target": "head.weight", "expr": "w * 0",
                               "mask": "w > 0"}]),
    "fill": ("doc", {}, [{"op": "fill", "target": "head.bias", "value": 0.0, "index": "[0:2]"}]),
    "fill-targets": ("doc", {}, [{"op": "fill", "target": "enc.bias",
                                  "targets": ["enc.bias", "head.bias"], "value": 1.5}]),
    "rename": ("doc", {}, [{"op": "rename", "from": "^enc\\.", "to": "encoder."}]),
    "delete": ("doc", {}, [{"op": "delete", "target": "head.*"}]),
    "cast": ("doc", {}, [{"op": "cast", "target": "*", "dtype": "bfloat16"}]),
    "requires_grad": ("live", {}, [{"op": "requires_grad", "target": "0.*", "value": False}]),
    "reset_parameters": ("live", {}, [{"op": "reset_parameters", "target": "*"}]),
    "reset_parameters-seed": ("live", {}, [{"op": "reset_parameters", "target": "2", "seed": 3}]),
    "tie": ("doc", {}, [{"op": "tie", "target": "aux.weight", "source": "enc.weight"}]),
    "untie": ("doc", {}, [{"op": "tie", "target": "aux.weight", "source": "enc.weight"},
                          {"op": "untie", "target": "aux.weight"}]),
    "set_entry": ("ck", {}, [{"op": "set_entry", "target": "epoch", "value": 3}]),
    "set_metadata": ("doc", {}, [{"op": "set_metadata", "key": "note", "value": "hi"}]),
    "transplant": ("doc", {"ref": A}, [{"op": "transplant", "from": "ref", "target": "enc.*"}]),
    "transplant-targets": ("doc", {"ref": A}, [{"op": "transplant", "from": "ref",
                                                "targets": ["head.bias"]}]),
    "merge": ("doc", {"ref": A, "ft": B}, [{"op": "merge", "inputs": ["ref", "ft"],
                                            "weights": [0.5, 0.25, 0.25], "target": "enc.*"}]),
    "task_arithmetic": ("doc", {"ft": B}, [{"op": "task_arithmetic", "finetuned": ["ft"],
                                            "lambdas": [0.7], "target": "*"}]),
    "lora_merge": ("doc", {"lora": "lora"}, [{"op": "lora_merge", "adapter": "lora"}]),
    "expr-ref": ("doc", {"ref": A}, [{"op": "expr", "target": "enc.bias",
                                      "expr": 'w + ref["enc.bias"]'}]),
    "expr-ref2": ("doc", {"ref": A, "ref2": B}, [
        {"op": "transplant", "from": "ref", "targets": ["head.bias"]},
        {"op": "expr", "target": "enc.bias", "expr": '0.5 * (w + ref["enc.bias"])', "ref": "ref2"}]),
}


def test_every_op_of_the_allowlist_has_a_case_and_a_class():
    assert set(REGISTRY) == set(OPS)
    assert {key.split("-")[0] for key in CASES} == set(OPS)
    for op in OPS:
        assert callable(edit_class(op).from_step)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_step_replays_and_exports_to_the_identical_step(files, case):
    kind, names, steps = CASES[case]
    doc = live() if kind == "live" else load_document(str(files / {"doc": "doc.safetensors",
                                                                    "ck": "ck.pt"}[kind]))
    paths = {k: str(files / v) for k, v in names.items()}
    recipe = {"version": 1, **({"inputs": paths} if paths else {}), "steps": copy.deepcopy(steps)}
    load_recipe(recipe)  # the canonical form is a valid recipe
    inputs = Inputs(paths)
    history = EditHistory(doc)
    try:
        for step in steps:
            history.push(edit_for_step(step, doc, inputs))
        assert history.recipe() == recipe
        assert history.applied_edits()[-1].to_step() == steps[-1]
    finally:
        inputs.close()
        doc.close()
