"""Saves that load where users load them: a live model's file is what ``state_dict()`` holds
(non-persistent buffers shown, marked, never saved); tied tensors in safetensors either once
(``safetensors.torch.load_model``) or under every name (plain ``load_file`` + strict
``load_state_dict``); the safetensors refusal lists only what would really be lost."""
import json

import pytest
import torch
from safetensors.torch import load_file, load_model
from torch import nn

from app.core.model.document import Document
from app.core.formats import load_document
from app.core.formats.save import TIED_EVERY, TIED_ONCE, save_document
from tests.checkpoints import tied_lm, training_checkpoint


class WithRope(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.register_buffer("inv_freq", torch.arange(4.0), persistent=False)
        self.register_buffer("running", torch.ones(3))


def test_non_persistent_buffers_are_marked_and_not_saved(tmp_path):
    model = WithRope()
    doc = Document.from_module(model)
    assert not doc.entry("inv_freq").persistent and doc.entry("running").persistent
    assert "non-persistent" in doc.node("inv_freq").type_name
    assert "non-persistent" not in doc.node("running").type_name
    for name in ("m.pt", "m.safetensors"):
        save_document(doc, str(tmp_path / name))
        sd = (torch.load(tmp_path / name, weights_only=True) if name.endswith(".pt")
              else load_file(str(tmp_path / name)))
        assert list(sd) == list(model.state_dict())
        WithRope().load_state_dict(sd, strict=True)
    save_document(doc, str(tmp_path / "sh"), shard_size=16)
    assert sorted(load_document(str(tmp_path / "sh")).tensors) == sorted(model.state_dict())


def test_tied_every_name_loads_with_plain_load_file(tmp_path):
    model = tied_lm()
    doc = Document.from_module(model)
    out = str(tmp_path / "every.safetensors")
    save_document(doc, out, tied=TIED_EVERY)
    sd = load_file(out)
    assert list(sd) == list(model.state_dict())
    fresh = type(model)()
    fresh.load_state_dict(sd, strict=True)
    assert torch.equal(fresh.lm_head.weight, model.embed.weight)


def test_tied_once_loads_with_load_model_and_paramedit(tmp_path):
    model = tied_lm()
    doc = Document.from_module(model)
    out = str(tmp_path / "once.safetensors")
    save_document(doc, out, tied=TIED_ONCE)
    sd = load_file(out)
    assert "lm_head.weight" not in sd  # stored once
    with pytest.raises(RuntimeError, match="Missing key"):
        type(model)().load_state_dict(sd, strict=True)
    fresh = type(model)()
    load_model(fresh, out)  # strict: what safetensors' own save_model files need
    assert torch.equal(fresh.lm_head.weight, model.embed.weight)
    again = load_document(out)
    assert "lm_head.weight" in again.entry("embed.weight").shared_with


def test_sharded_every_name(tmp_path):
    model = tied_lm()
    save_document(Document.from_module(model), str(tmp_path / "sh"), shard_size=64,
                  tied=TIED_EVERY)
    index = json.loads((tmp_path / "sh" / "model.safetensors.index.json").read_text())
    assert sorted(index["weight_map"]) == sorted(model.state_dict())


def test_apply_to_safetensors_names_drop_entries_and_only_what_is_lost(tmp_path, capsys):
    from app.__main__ import main
    torch.save(training_checkpoint(tied_lm()), tmp_path / "ck.pt")
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"version": 1, "steps": [
        {"op": "fill", "target": "model.body.0.bias", "value": 0}]}))
    out = tmp_path / "o.safetensors"
    assert main(["apply", str(recipe), str(tmp_path / "ck.pt"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--drop-entries" in err[0]
    assert "optimizer.param_groups, epoch, config, history.1" in err[0]
    assert "model" not in err[0].split("lose", 1)[1].split(".", 1)[0]
    assert not out.exists()
    assert main(["apply", str(recipe), str(tmp_path / "ck.pt"), "-o", str(out), "--drop-entries"]) == 0
    assert "optimizer.state.0.exp_avg" in load_file(str(out))


def test_lost_entries_of_deep_and_self_referencing_containers(tmp_path):
    from app.core.formats.save import entries_lost_in_safetensors
    deep = {"t": torch.ones(1)}
    for _ in range(5000):
        deep = {"d": deep, "n": 1}
    loop = [torch.ones(2), 3]
    loop.append(loop)
    doc = Document.from_object({"x": 1})
    doc.container = {"deep": deep, "loop": loop, "plain": {"lr": 0.1}, "empty": {}}
    lost = entries_lost_in_safetensors(doc)
    deep_lost = [p for p in lost if p.startswith("deep.")]
    assert len(deep_lost) == 5000 and all(p.endswith(".n") for p in deep_lost)
    assert "plain" in lost and "loop.1" in lost and "empty" not in lost
    assert len(lost) == 5000 + 2
