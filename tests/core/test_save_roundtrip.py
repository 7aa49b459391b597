"""Save then reopen, per format: tensors bit for bit, dtypes, order, ties, non-tensor entries."""
from collections import OrderedDict

import pytest
import torch

from app.core.formats import load_document
from app.core.formats.save import WouldDropEntries, save_document
from app.core.model.document import Document
from tests.checkpoints import odd_dtypes, tied_lm, training_checkpoint
from tests.helpers.tensors import assert_same, bits


def tied_state() -> OrderedDict:
    sd = tied_lm().state_dict()
    sd.update(odd_dtypes())
    return sd


@pytest.mark.parametrize("out", ["m.pt", "m.safetensors", "shards", "x/model.safetensors.index.json"])
def test_roundtrip_formats(tmp_path, out):
    src = tmp_path / "src.pt"
    torch.save(tied_state(), src)
    doc = load_document(str(src))
    assert doc.entry("lm_head.weight").shared_with == ["embed.weight"]
    target = tmp_path / out
    if out == "shards":
        target.mkdir()
    kw = {"shard_size": 200} if "safetensors" not in out or "index" in out else {}
    written = save_document(doc, str(target), **kw)
    again = load_document(written)
    assert_same(doc, again)
    assert doc.path == written
    if out != "m.pt":
        assert again.entry("lm_head.weight").shared_with == ["embed.weight"]


def test_sharded_splits_into_several_files(tmp_path):
    doc = Document.from_object(tied_state())
    save_document(doc, str(tmp_path / "out"), shard_size=100)
    shards = [p for p in (tmp_path / "out").iterdir() if p.suffix == ".safetensors"]
    assert len(shards) > 2
    assert_same(doc, load_document(str(tmp_path / "out")))


def test_torch_keeps_training_checkpoint_entries(tmp_path):
    ckpt = training_checkpoint(tied_lm())
    torch.save(ckpt, tmp_path / "ck.pt")
    doc = load_document(str(tmp_path / "ck.pt"))
    save_document(doc, str(tmp_path / "out.pt"))
    back = torch.load(tmp_path / "out.pt", weights_only=True)
    assert list(back) == list(ckpt)
    assert back["epoch"] == 12 and back["config"] == ckpt["config"]
    assert back["history"][1] == 0.5
    assert back["optimizer"]["param_groups"] == ckpt["optimizer"]["param_groups"]
    assert_same(doc, load_document(str(tmp_path / "out.pt")))
    assert back["model"]["lm_head.weight"].untyped_storage().data_ptr() == \
        back["model"]["embed.weight"].untyped_storage().data_ptr()


def test_state_dict_metadata_attribute_kept(tmp_path):
    sd = tied_lm().state_dict()
    assert hasattr(sd, "_metadata")
    torch.save(sd, tmp_path / "a.pt")
    doc = load_document(str(tmp_path / "a.pt"))
    save_document(doc, str(tmp_path / "b.pt"))
    back = torch.load(tmp_path / "b.pt", weights_only=True)
    assert back._metadata == sd._metadata


def test_safetensors_refuses_to_drop_entries_unless_told(tmp_path):
    torch.save(training_checkpoint(tied_lm()), tmp_path / "ck.pt")
    doc = load_document(str(tmp_path / "ck.pt"))
    with pytest.raises(WouldDropEntries) as info:
        save_document(doc, str(tmp_path / "out.safetensors"))
    # only what is really lost: the optimizer's state tensors and the model are saved
    assert info.value.keys == ["optimizer.param_groups", "epoch", "config", "history.1"]
    assert not (tmp_path / "out.safetensors").exists()
    save_document(doc, str(tmp_path / "out.safetensors"), drop_non_tensor=True)
    again = load_document(str(tmp_path / "out.safetensors"))
    assert bits(again.tensor("model.embed.weight")) == bits(doc.tensor("model.embed.weight"))


def test_safetensors_keeps_existing_metadata(tmp_path):
    from safetensors.torch import save_file
    save_file({"a": torch.ones(2), "b": torch.zeros(3)}, str(tmp_path / "a.safetensors"),
              metadata={"format": "pt", "note": "hi"})
    doc = load_document(str(tmp_path / "a.safetensors"))
    save_document(doc, str(tmp_path / "b.safetensors"))
    again = load_document(str(tmp_path / "b.safetensors"))
    assert again.metadata["note"] == "hi" and again.metadata["format"] == "pt"


@pytest.mark.parametrize("out", ["m.pt", "m.safetensors"])
def test_live_module_saves_state_dict_with_ties(tmp_path, out):
    model = tied_lm()
    doc = Document.from_module(model)
    save_document(doc, str(tmp_path / out))
    again = load_document(str(tmp_path / out))
    assert list(again.tensors) == list(model.state_dict())
    assert "lm_head.weight" in again.entry("embed.weight").shared_with
    for n, t in model.state_dict().items():
        assert bits(t) == bits(again.tensor(n))


def test_resave_sharded_over_itself_removes_stale_shards(tmp_path):
    doc = Document.from_object(tied_state())
    save_document(doc, str(tmp_path / "out"), shard_size=100)
    opened = load_document(str(tmp_path / "out"))
    save_document(opened, str(tmp_path / "out"), shard_size=10 ** 6)
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["model-00001-of-00001.safetensors", "model.safetensors.index.json"]
    assert_same(doc, load_document(str(tmp_path / "out")))
    assert_same(doc, opened)  # the open document still reads its (now unlinked) shards


def test_lazy_safetensors_to_torch_reads_without_caching(tmp_path):
    from safetensors.torch import save_file
    save_file({"a": torch.ones(4), "b": torch.arange(3)}, str(tmp_path / "s.safetensors"))
    doc = load_document(str(tmp_path / "s.safetensors"))
    save_document(doc, str(tmp_path / "s.pt"))
    assert not any(e.is_loaded for e in doc.tensors.values())
    assert_same(doc, load_document(str(tmp_path / "s.pt")))


def test_can_save_in_place(tmp_path):
    from app.core.formats.save import can_save_in_place
    torch.save(tied_state(), tmp_path / "a.pt")
    assert can_save_in_place(load_document(str(tmp_path / "a.pt")))
    assert not can_save_in_place(Document.from_module(tied_lm()))
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "ts.pt"))
    assert can_save_in_place(load_document(str(tmp_path / "ts.pt")))  # back into the archive
