"""torch.distributed.checkpoint folders: opened lazily without a process group, tensors assembled
from their chunks, saved back as DCP (atomically) or converted to one .pt / safetensors file."""
import json
import os
import pickle
import warnings

import pytest
import torch

from app.__main__ import main
from app.core.errors import CheckpointError, UserError
from app.core.formats import load_document
from app.core.formats.save import WouldDropEntries, can_save_in_place, save_document
from tests.dcp_make import save_whole, write_chunked


def _torch_reads(folder) -> dict:
    """What torch itself makes of a DCP folder (its own converter, then torch.load)."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
    out = os.path.join(os.path.dirname(str(folder)), "torch_reads.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp_to_torch_save(str(folder), out)
    try:
        return torch.load(out, weights_only=False)
    finally:
        os.remove(out)


@pytest.fixture
def whole(tmp_path):
    torch.manual_seed(0)
    sd = {"model": {"enc.weight": torch.randn(6, 4), "enc.bias": torch.arange(4, dtype=torch.bfloat16)},
          "optim": {"lr": 0.01, "betas": [0.9, 0.99]}, "step": 12}
    return save_whole(sd, tmp_path / "ck"), sd


@pytest.fixture
def chunked(tmp_path):
    torch.manual_seed(1)
    tensors = {"layer.weight": torch.randn(7, 5), "layer.bias": torch.randn(7),
               "embed": torch.arange(24, dtype=torch.int32).reshape(8, 3)}
    folder = write_chunked(tmp_path / "fsdp", tensors, ranks=3, values={"step": 5})
    return folder, tensors


def test_lists_every_tensor_with_global_shape_and_dtype_reading_no_data(chunked):
    folder, tensors = chunked
    doc = load_document(folder)
    assert doc.format == "dcp"
    assert [(e.name, e.shape, e.dtype) for e in doc.tensors.values()] == [
        (n, tuple(t.shape), t.dtype) for n, t in tensors.items()]
    assert not any(e.is_loaded for e in doc.tensors.values())
    assert doc.entries == {"step": "int: 5"}


def test_a_sharded_tensor_is_assembled_from_its_chunks(chunked):
    folder, tensors = chunked
    assert len(os.listdir(folder)) == 4  # .metadata and three ranks' files
    doc = load_document(folder)
    for name, t in tensors.items():
        assert torch.equal(doc.tensor(name), t)
    # and torch reads the very same folder the same way
    theirs = _torch_reads(folder)
    assert all(torch.equal(theirs[n], t) for n, t in tensors.items()) and theirs["step"] == 5


def test_reading_one_tensor_reads_only_its_chunks(chunked, monkeypatch):
    folder, tensors = chunked
    doc = load_document(folder)
    files = doc.dcp.files
    seen = []
    real = files.read
    monkeypatch.setattr(files, "read", lambda n, o, ln: seen.append((n, o, ln)) or real(n, o, ln))
    doc.tensor("layer.bias")
    from app.core.formats.dcp_metadata import read_metadata
    meta = read_metadata(folder)
    assert seen == [(c.file, c.offset, c.length) for c in meta.tensors["layer.bias"].chunks]


def test_nested_state_dict_keeps_names_and_values(whole):
    folder, sd = whole
    doc = load_document(folder)
    assert list(doc.tensors) == ["model.enc.weight", "model.enc.bias"]
    assert torch.equal(doc.tensor("model.enc.weight"), sd["model"]["enc.weight"])
    assert doc.entries["step"] == "int: 12"


def test_the_metadata_file_itself_opens_the_folder(whole):
    folder, _sd = whole
    doc = load_document(os.path.join(folder, ".metadata"))
    assert doc.format == "dcp" and doc.path == folder


def test_convert_to_pt_keeps_nesting_and_the_step_counter_like_torch(whole, tmp_path):
    folder, sd = whole
    doc = load_document(folder)
    out = str(tmp_path / "one.pt")
    ticks = []
    save_document(doc, out, progress=lambda d, t: ticks.append((d, t)))
    got = torch.load(out, weights_only=True)
    ref = _torch_reads(folder)
    assert got.keys() == ref.keys()
    assert torch.equal(got["model"]["enc.weight"], ref["model"]["enc.weight"])
    assert got["step"] == 12 and got["optim"] == {"lr": 0.01, "betas": [0.9, 0.99]}
    assert ticks and ticks[-1][0] == ticks[-1][1]
    # and the converted file opens with the same names
    assert list(load_document(out).tensors) == list(doc.tensors)


def test_save_back_as_dcp_round_trips_values_and_non_tensor_entries(chunked, tmp_path):
    folder, tensors = chunked
    doc = load_document(folder)
    doc.tensor("layer.bias")[0] = 42.0
    out = str(tmp_path / "copy")
    save_document(doc, out)  # a suffix-less path: a DCP document stays a DCP folder
    assert os.path.isfile(os.path.join(out, ".metadata"))
    back = load_document(out)
    assert back.format == "dcp" and back.entries == {"step": "int: 5"}
    assert back.tensor("layer.bias")[0] == 42.0
    assert torch.equal(back.tensor("layer.weight"), tensors["layer.weight"])
    assert _torch_reads(out)["step"] == 5


def test_save_in_place_swaps_the_folder_and_unread_tensors_stay_readable(chunked):
    folder, tensors = chunked
    doc = load_document(folder)
    assert can_save_in_place(doc)
    doc.tensor("embed")[0, 0] = -7
    before = set(os.listdir(os.path.dirname(folder)))
    save_document(doc, doc.path)
    assert set(os.listdir(os.path.dirname(folder))) == before  # no temporary, no old copy left
    fresh = load_document(folder)
    assert fresh.tensor("embed")[0, 0] == -7
    assert fresh.entries == {"step": "int: 5"}
    # never read before the save: still the right values (from the old files, kept open)
    assert torch.equal(doc.tensor("layer.weight"), tensors["layer.weight"])


def test_a_failed_dcp_save_leaves_the_folder_as_it_was(chunked, monkeypatch):
    folder, _tensors = chunked
    doc = load_document(folder)
    listing = {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)}
    import torch.distributed.checkpoint as dcp

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(dcp, "save", boom)
    with pytest.raises(UserError, match="No space left"):
        save_document(doc, folder)
    assert {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)} == listing
    assert sorted(os.listdir(os.path.dirname(folder))) == ["fsdp"]


def test_any_document_saves_as_dcp_over_an_existing_dcp_folder(chunked, tmp_path):
    folder, _tensors = chunked
    from safetensors.torch import save_file
    src = str(tmp_path / "m.safetensors")
    save_file({"a": torch.ones(3)}, src)
    save_document(load_document(src), folder)
    doc = load_document(folder)
    assert doc.format == "dcp" and list(doc.tensors) == ["a"] and doc.entries == {}


def test_saving_as_safetensors_asks_before_dropping_the_step(chunked, tmp_path):
    folder, _tensors = chunked
    doc = load_document(folder)
    with pytest.raises(WouldDropEntries, match="step"):
        save_document(doc, str(tmp_path / "x.safetensors"))
    save_document(doc, str(tmp_path / "x.safetensors"), drop_non_tensor=True)
    assert list(load_document(str(tmp_path / "x.safetensors")).tensors) == list(doc.tensors)


def test_cli_converts_with_apply_and_an_empty_recipe(chunked, tmp_path, capsys):
    folder, tensors = chunked
    recipe = tmp_path / "none.json"
    recipe.write_text(json.dumps({"version": 1, "steps": []}))
    out = tmp_path / "out.pt"
    assert main(["apply", str(recipe), folder, "-o", str(out)]) == 0
    got = torch.load(out, weights_only=True)
    assert torch.equal(got["layer.weight"], tensors["layer.weight"]) and got["step"] == 5


def test_cli_inspect_lists_shapes_and_the_step(chunked, capsys):
    folder, _tensors = chunked
    assert main(["inspect", folder, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "dcp"
    assert [(t["name"], t["shape"]) for t in out["tensors"]][:2] == [("layer.weight", [7, 5]),
                                                                   ("layer.bias", [7])]
    assert out["entries"] == {"step": "int: 5"}


class _Opens:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_hostile_metadata_never_runs_and_says_one_line(chunked, tmp_path):
    folder, _tensors = chunked
    marker = tmp_path / "MARKER"
    with open(os.path.join(folder, ".metadata"), "wb") as f:
        pickle.dump(_Opens(marker), f)
    with pytest.raises(CheckpointError, match="open.*never needs"):
        load_document(folder)
    assert not marker.exists()


def test_a_hostile_step_value_is_refused_not_run(tmp_path):
    marker = tmp_path / "MARKER"
    folder = write_chunked(tmp_path / "bad", {"w": torch.ones(2)}, values={"step": _Opens(marker)})
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="weights-only"):
        load_document(folder)
    assert not marker.exists()


def test_a_chunk_path_outside_the_folder_is_refused(tmp_path):
    def escape(meta):
        for info in meta.storage_data.values():
            info.relative_path = "../../etc/passwd"
    folder = write_chunked(tmp_path / "esc", {"w": torch.ones(4)}, metadata_hook=escape)
    with pytest.raises(CheckpointError, match="not a file of the folder"):
        load_document(folder)


def test_chunks_that_do_not_cover_the_tensor_are_refused(tmp_path):
    def grow(meta):
        meta.state_dict_metadata["w"].size = torch.Size([10 ** 12])
    folder = write_chunked(tmp_path / "big", {"w": torch.ones(4)}, metadata_hook=grow)
    with pytest.raises(CheckpointError, match="chunk"):
        load_document(folder)


def test_a_cancelled_dcp_save_leaves_nothing_behind(chunked):
    from app.core.errors import Cancelled
    folder, tensors = chunked
    doc = load_document(folder)
    before = {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)}
    calls = []
    with pytest.raises(Cancelled):
        save_document(doc, folder, cancelled=lambda: calls.append(1) or len(calls) > 1)
    assert {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)} == before
    assert sorted(os.listdir(os.path.dirname(folder))) == ["fsdp"]


def test_scalars_empty_tensors_and_odd_dtypes_round_trip(tmp_path):
    sd = {"scalar": torch.tensor(3.5), "empty": torch.zeros(0, 4), "mask": torch.tensor([True, False]),
          "fp8": torch.ones(3).to(torch.float8_e4m3fn), "ids": torch.arange(5)}
    folder = save_whole(sd, tmp_path / "odd")
    doc = load_document(folder)
    assert {n: (e.shape, e.dtype) for n, e in doc.tensors.items()} == {
        n: (tuple(t.shape), t.dtype) for n, t in sd.items()}
    for n, t in sd.items():
        assert torch.equal(doc.tensor(n).view(torch.uint8) if t.dtype == torch.float8_e4m3fn
                           else doc.tensor(n), t.view(torch.uint8) if t.dtype == torch.float8_e4m3fn else t)
    save_document(doc, str(tmp_path / "again"))
    back = load_document(str(tmp_path / "again"))
    assert back.tensor("scalar").item() == 3.5 and back.entry("empty").shape == (0, 4)


def test_a_folder_replaced_after_open_still_reads_as_it_was(chunked, tmp_path):
    import shutil
    folder, tensors = chunked
    doc = load_document(folder)
    shutil.rmtree(folder)  # a training job writing the next checkpoint under the same name
    write_chunked(folder, {n: t + 1 for n, t in tensors.items()}, ranks=3, values={"step": 6})
    assert torch.equal(doc.tensor("layer.weight"), tensors["layer.weight"])
