"""Hugging Face model folders and PEFT adapter folders open as one document with their config
shown; saving keeps the folder's layout and its config.json byte for byte."""
import json
import os

import pytest
import torch
from safetensors.torch import save_file

from app.__main__ import main
from app.core.errors import CheckpointError
from app.core.formats import load_document
from app.core.formats.save import can_save_in_place, save_document

CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4,
          "torch_dtype": "float32"}


def _weights():
    g = torch.Generator().manual_seed(0)
    return {"model.embed_tokens.weight": torch.randn(10, 4, generator=g),
            "model.layers.0.mlp.up_proj.weight": torch.randn(6, 4, generator=g),
            "lm_head.weight": torch.randn(10, 4, generator=g)}


def _config(folder, cfg=CONFIG, name="config.json") -> bytes:
    text = (json.dumps(cfg, indent=2) + "\n").encode()  # HF writes indented JSON
    (folder / name).write_bytes(text)
    return text


@pytest.fixture
def model_folder(tmp_path):
    folder = tmp_path / "tiny-llama"
    folder.mkdir()
    sd = _weights()
    save_file(sd, folder / "model.safetensors")
    cfg = _config(folder)
    (folder / "tokenizer.json").write_text('{"model": {"type": "BPE"}}')
    return folder, sd, cfg


@pytest.fixture
def sharded_model_folder(tmp_path):
    folder = tmp_path / "sharded"
    folder.mkdir()
    sd = _weights()
    names = list(sd)
    shards = {"model-00001-of-00002.safetensors": names[:2], "model-00002-of-00002.safetensors": names[2:]}
    for shard, keys in shards.items():
        save_file({k: sd[k] for k in keys}, folder / shard)
    index = {"metadata": {"total_size": 0}, "weight_map": {k: s for s, ks in shards.items() for k in ks}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder, sd, _config(folder)


@pytest.fixture
def adapter_folder(tmp_path):
    folder = tmp_path / "lora"
    folder.mkdir()
    g = torch.Generator().manual_seed(1)
    ad = {"base_model.model.model.layers.0.mlp.up_proj.lora_A.weight": torch.randn(2, 4, generator=g),
          "base_model.model.model.layers.0.mlp.up_proj.lora_B.weight": torch.randn(6, 2, generator=g)}
    save_file(ad, folder / "adapter_model.safetensors")
    _config(folder, {"peft_type": "LORA", "r": 2, "lora_alpha": 8, "target_modules": ["up_proj"],
                     "base_model_name_or_path": "tiny-llama"}, "adapter_config.json")
    return folder, ad


def test_a_model_folder_opens_as_one_document_with_its_config(model_folder, capsys):
    folder, sd, _ = model_folder
    doc = load_document(str(folder))
    assert set(doc.tensors) == set(sd)
    assert doc.entries["config.json"] == "llama (LlamaForCausalLM)"
    assert doc.hf.kind == "model" and doc.hf.config["hidden_size"] == 4
    assert main(["inspect", str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hf_config"] == {"kind": "model", "model_type": "llama",
                                "architectures": ["LlamaForCausalLM"], "torch_dtype": "float32"}
    assert {t["name"] for t in out["tensors"]} == set(sd)
    assert main(["inspect", str(folder)]) == 0
    assert "config.json: llama (LlamaForCausalLM)" in capsys.readouterr().out


def test_a_sharded_model_folder_shows_its_config_too(sharded_model_folder):
    folder, sd, _ = sharded_model_folder
    doc = load_document(str(folder))
    assert doc.format == "safetensors-sharded" and set(doc.tensors) == set(sd)
    assert doc.entries["config.json"] == "llama (LlamaForCausalLM)"


def test_a_pytorch_model_bin_folder_opens(tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    sd = _weights()
    torch.save(sd, folder / "pytorch_model.bin")
    _config(folder, {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})
    doc = load_document(str(folder))
    assert doc.format == "torch" and list(doc.tensors) == list(sd)
    assert doc.entries["config.json"] == "gpt2 (GPT2LMHeadModel)"


def test_save_in_place_rewrites_the_weights_and_never_the_config(model_folder):
    folder, sd, cfg = model_folder
    stat_before = os.stat(folder / "config.json")
    doc = load_document(str(folder))
    assert can_save_in_place(doc)
    doc.tensor("lm_head.weight")[0, 0] = 123.0
    save_document(doc, doc.path)
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert (folder / "config.json").read_bytes() == cfg
    assert os.stat(folder / "config.json").st_ino == stat_before.st_ino
    back = load_document(str(folder))
    assert back.tensor("lm_head.weight")[0, 0] == 123.0 and back.hf.kind == "model"


def test_save_as_a_folder_writes_the_same_layout(model_folder, tmp_path):
    folder, sd, cfg = model_folder
    doc = load_document(str(folder))
    out = tmp_path / "copy"
    save_document(doc, str(out))
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert (out / "config.json").read_bytes() == cfg
    back = load_document(str(out))
    assert all(torch.equal(back.tensor(n), t) for n, t in sd.items())
    assert back.entries["config.json"] == "llama (LlamaForCausalLM)"


def test_save_as_a_folder_keeps_a_sharded_layout(sharded_model_folder, tmp_path):
    folder, sd, cfg = sharded_model_folder
    out = tmp_path / "copy"
    save_document(load_document(str(folder)), str(out))
    names = sorted(os.listdir(out))
    assert "config.json" in names and "model.safetensors.index.json" in names
    assert len([n for n in names if n.endswith(".safetensors")]) >= 2
    assert (out / "config.json").read_bytes() == cfg
    back = load_document(str(out))
    assert all(torch.equal(back.tensor(n), t) for n, t in sd.items())


def test_an_adapter_folder_is_recognised_as_lora(adapter_folder, capsys):
    folder, ad = adapter_folder
    doc = load_document(str(folder))
    assert set(doc.tensors) == set(ad) and doc.hf.kind == "adapter"
    assert doc.entries["adapter_config.json"] == \
        "LoRA r=2, alpha=8, targets up_proj, base tiny-llama"
    assert main(["inspect", str(folder), "--json"]) == 0
    hf = json.loads(capsys.readouterr().out)["hf_config"]
    assert hf["kind"] == "adapter" and hf["r"] == 2 and hf["target_modules"] == ["up_proj"]


def test_an_adapter_folder_merges_into_a_model_folder(model_folder, adapter_folder, tmp_path):
    folder, sd, _ = model_folder
    lora, ad = adapter_folder
    recipe = tmp_path / "merge.json"
    recipe.write_text(json.dumps({"version": 1, "inputs": {"lora": str(lora)},
                                  "steps": [{"op": "lora_merge", "adapter": "lora"}]}))
    out = tmp_path / "merged.safetensors"
    assert main(["apply", str(recipe), str(folder), "-o", str(out)]) == 0
    a = ad["base_model.model.model.layers.0.mlp.up_proj.lora_A.weight"]
    b = ad["base_model.model.model.layers.0.mlp.up_proj.lora_B.weight"]
    merged = load_document(str(out)).tensor("model.layers.0.mlp.up_proj.weight")
    assert torch.allclose(merged, sd["model.layers.0.mlp.up_proj.weight"] + 4.0 * (b @ a))


@pytest.mark.parametrize("text", [b"{not json", b"[1, 2]", b"[" * 100_000])
def test_a_broken_config_is_one_error(model_folder, text):
    folder, _, _ = model_folder
    (folder / "config.json").write_bytes(text)
    with pytest.raises(CheckpointError, match="config.json"):
        load_document(str(folder))

