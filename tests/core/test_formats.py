"""Reading every supported format lazily, detecting formats by content, refusing bad input."""
import os
import shutil
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from app.core.errors import CheckpointError, UnsafePickleError
from app.core.formats import load_document
from tests.checkpoints import (odd_dtypes, save_malicious, save_sharded_safetensors,
                               save_sharded_torch, tied_lm, training_checkpoint)
from tests.helpers.tensors import assert_same


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_state_dict_every_dtype(tmp_path, legacy):
    sd = odd_dtypes()
    path = tmp_path / "sd.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
    doc = load_document(str(path))
    assert doc.format == "torch"
    assert_same(doc, sd)
    assert doc.entries == {}


def test_torch_zip_is_memory_mapped_and_copy_on_write(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save({"w": torch.ones(1000)}, path)
    before = path.read_bytes()
    doc = load_document(str(path))
    t = doc.tensor("w")
    assert _mapped_from(t.data_ptr(), str(path)), "the tensor should be mapped, not read"
    t.mul_(3)  # edits go to private pages: the file never changes
    assert path.read_bytes() == before
    assert torch.equal(load_document(str(path)).tensor("w"), torch.ones(1000))


def _mapped_from(address: int, path: str) -> bool:
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs /proc/self/maps")
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == path:
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                if lo <= address < hi:
                    return True
    return False


def test_safetensors_lazy_and_ordered(tmp_path):
    sd = {k: v.contiguous() for k, v in odd_dtypes().items()}
    path = tmp_path / "m.safetensors"
    save_file(sd, str(path), metadata={"format": "pt"})
    doc = load_document(str(path))
    assert doc.format == "safetensors" and doc.metadata == {"format": "pt"}
    assert not any(e.is_loaded for e in doc.tensors.values()), "nothing is read until asked for"
    assert set(doc.names()) == set(sd)
    assert doc.entry("z.bf16").shape == (3, 5) and doc.entry("z.bf16").dtype == torch.bfloat16
    assert torch.equal(doc.tensor("m.f64"), sd["m.f64"])
    assert doc.entry("m.f64").is_loaded and not doc.entry("ints.i64").is_loaded
    for name, t in sd.items():
        assert torch.equal(doc.tensor(name), t)


@pytest.mark.parametrize("given", ["folder", "index"])
def test_sharded_safetensors(tmp_path, given):
    sd = {k: v.contiguous() for k, v in odd_dtypes().items()}
    index = save_sharded_safetensors(sd, str(tmp_path / "shards"), per_shard=3)
    doc = load_document(str(tmp_path / "shards") if given == "folder" else index)
    assert doc.format == "safetensors-sharded"
    assert_same(doc, sd)  # weight_map order, every shard as one document


def test_sharded_torch_bins(tmp_path):
    sd = odd_dtypes()
    save_sharded_torch(sd, str(tmp_path / "bins"), per_shard=4)
    doc = load_document(str(tmp_path / "bins"))
    assert doc.format == "torch-sharded"
    assert_same(doc, sd)


def test_sharded_missing_shard_is_an_error(tmp_path):
    index = save_sharded_safetensors({"a": torch.ones(2), "b": torch.ones(3)}, str(tmp_path / "s"), 1)
    os.remove(os.path.join(os.path.dirname(index), "model-00002-of-00002.safetensors"))
    with pytest.raises(CheckpointError, match="missing"):
        load_document(index)


def test_training_checkpoint_names_and_entries(tmp_path):
    ck = training_checkpoint(tied_lm())
    path = tmp_path / "ck.pt"
    torch.save(ck, path)
    doc = load_document(str(path))
    names = doc.names()
    assert names[0] == "model.embed.weight"
    assert "optimizer.state.0.exp_avg" in names and "optimizer.state.0.step" in names
    assert "history.0" in names
    assert doc.entries["epoch"] == "int: 12"
    assert doc.entries["config"] == "dict (2 keys)"
    assert doc.entries["optimizer"] == "dict (2 keys)"  # param_groups are not tensors
    assert "model" not in doc.entries  # only tensors inside
    assert torch.equal(doc.tensor("model.body.0.weight"), ck["model"]["body.0.weight"])
    assert doc.entry("optimizer.state.0.exp_avg").path == ("optimizer", "state", 0, "exp_avg")
    assert doc.container["config"] == {"lr": 1e-3, "name": "tiny"}, "non-tensor content is kept"


def test_tied_weights_detected_and_counted_once(tmp_path):
    model = tied_lm()
    path = tmp_path / "tied.pt"
    torch.save(model.state_dict(), path)
    doc = load_document(str(path))
    assert doc.entry("embed.weight").shared_with == ["lm_head.weight"]
    assert doc.entry("lm_head.weight").shared_with == ["embed.weight"]
    assert doc.entry("body.0.weight").shared_with == []
    every = sum(p.numel() for p in model.state_dict().values())
    assert doc.total_numel() == every - model.embed.weight.numel()
    doc.tensor("embed.weight")[0, 0] = 42.0
    assert doc.tensor("lm_head.weight")[0, 0] == 42.0, "the aliases are one tensor"


def test_torchscript_tree_from_named_children(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU())
    path = tmp_path / "ts.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    doc = load_document(str(path))
    assert doc.format == "torchscript"
    assert [c.name for c in doc.root.children] == ["0", "1", "2"]
    assert [c.type_name for c in doc.root.children] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert doc.entry("1.running_mean").kind == "buffer"
    assert doc.entry("0.weight").kind == "parameter"
    assert torch.equal(doc.tensor("0.weight"), net[0].weight)


def test_format_detected_from_content_not_suffix(tmp_path):
    save_file({"x": torch.ones(2)}, str(tmp_path / "a.safetensors"))
    shutil.copy(tmp_path / "a.safetensors", tmp_path / "weights.bin")
    torch.save({"x": torch.ones(2)}, tmp_path / "b.pt")
    shutil.copy(tmp_path / "b.pt", tmp_path / "looks.safetensors")
    assert load_document(str(tmp_path / "weights.bin")).format == "safetensors"
    assert load_document(str(tmp_path / "looks.safetensors")).format == "torch"


def test_lone_tensor_file(tmp_path):
    torch.save(torch.arange(4), tmp_path / "t.pt")
    doc = load_document(str(tmp_path / "t.pt"))
    assert doc.names() == ["tensor"]


def _truncate(path, keep):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:keep])


@pytest.mark.parametrize("case", ["missing", "text", "random", "empty_file", "truncated_zip",
                                  "truncated_legacy", "truncated_safetensors", "empty_folder",
                                  "zip_not_torch"])
def test_bad_input_is_refused_with_a_message(tmp_path, case):
    p = tmp_path / "bad.pt"
    if case == "text":
        p.write_text("hello, I am not a checkpoint\n")
    elif case == "random":
        p.write_bytes(os.urandom(4096))
    elif case == "empty_file":
        p.write_bytes(b"")
    elif case == "truncated_zip":
        torch.save({"w": torch.randn(1000)}, p)
        _truncate(p, 1500)
    elif case == "truncated_legacy":
        torch.save({"w": torch.randn(1000)}, p, _use_new_zipfile_serialization=False)
        _truncate(p, 1500)
    elif case == "truncated_safetensors":
        p = tmp_path / "bad.safetensors"
        save_file({"w": torch.randn(1000)}, str(p))
        _truncate(p, 2000)
    elif case == "empty_folder":
        p = tmp_path / "folder"
        p.mkdir()
    elif case == "zip_not_torch":
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("readme.txt", "hi")
    with pytest.raises(CheckpointError) as info:
        load_document(str(p))
    assert str(p) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_is_never_executed(tmp_path, legacy):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    save_malicious(str(path), str(marker), legacy=legacy)
    assert not marker.exists()
    with pytest.raises(UnsafePickleError) as info:
        load_document(str(path))
    assert not marker.exists(), "the pickle's code ran"
    assert any("open" in g for g in info.value.globals), info.value.globals
    assert "trust" in str(info.value)
