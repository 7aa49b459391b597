"""Checkpoints of many tensors: the happy path of a weights-only load pays no static pickle scan,
a refusal still names every global, and the safetensors header checks (vectorised) refuse what
the per-tensor checks refused."""
import pytest
import torch

from app.core.errors import UnsafePickleError
from app.core.formats import load_document
from app.core.formats import pickle_trust


def test_state_dict_load_skips_the_static_scan(tmp_path, monkeypatch):
    path = tmp_path / "sd.pt"
    torch.save({"a": torch.arange(3.0), "b": {"c": torch.ones(2)}}, path)

    def scan(*_a, **_k):
        raise AssertionError("the static scan ran on the happy path")

    monkeypatch.setattr(pickle_trust, "pickle_globals", scan)
    doc = load_document(str(path))
    assert torch.equal(doc.entry("a").tensor(), torch.arange(3.0))


@pytest.mark.parametrize("zip_", [True, False])
def test_refusal_names_every_global(tmp_path, zip_):
    import argparse
    path = tmp_path / "bad.pt"
    torch.save({"a": torch.ones(1), "ns": argparse.Namespace(x=1), "p": pytest.approx(1.0)}, path,
               _use_new_zipfile_serialization=zip_)
    with pytest.raises(UnsafePickleError) as err:
        load_document(str(path))
    named = set(err.value.globals)
    assert "argparse.Namespace" in named and len(named) >= 2
    assert named == set(pickle_trust.unsafe_globals(str(path)))


def _slow_ok(header, data_len):
    from app.core.errors import CheckpointError
    from app.core.formats.safetensors_file import _check_layout, _check_tensor
    try:
        for name, info in header.items():
            if name != "__metadata__":
                _check_tensor("f", name, info, data_len)
        _check_layout("f", header, data_len)
    except CheckpointError:
        return False
    return True


def _t(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


HEADERS = {
    "good": ({"a": _t(), "b": _t(offsets=(8, 16))}, 16),
    "zero sized at one offset": ({"e": _t(shape=(0,), offsets=(8, 8)), "a": _t(),
                                  "b": _t(offsets=(8, 16))}, 16),
    "empty": ({}, 0),
    "empty with data": ({}, 4),
    "gap": ({"a": _t(), "b": _t(offsets=(9, 17))}, 17),
    "overlap": ({"a": _t(), "b": _t(offsets=(4, 12))}, 12),
    "short data": ({"a": _t()}, 4),
    "trailing data": ({"a": _t()}, 12),
    "bool dim": ({"a": _t(shape=(True, 2), offsets=(0, 8))}, 8),
    "negative dim": ({"a": _t(shape=(-2, -1), offsets=(0, 8))}, 8),
    "float offset": ({"a": _t(offsets=(0.0, 8))}, 8),
    "reversed offsets": ({"a": _t(offsets=(8, 0))}, 8),
    "negative offsets": ({"a": _t(offsets=(-8, 0)), "b": _t(offsets=(0, 8))}, 8),
    "size mismatch": ({"a": _t(shape=(3,))}, 8),
    "unknown dtype": ({"a": _t(dtype="F33")}, 8),
    "unhashable dtype": ({"a": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}, 8),
    "not an object": ({"a": [1, 2]}, 8),
    "missing key": ({"a": {"dtype": "F32", "shape": [2]}}, 8),
    "three offsets": ({"a": _t(offsets=(0, 8, 8))}, 8),
    "shape not a list": ({"a": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}}, 8),
    "huge dims": ({"a": _t(dtype="U8", shape=(2 ** 40, 2 ** 40, 0), offsets=(0, 0))}, 0),
    "huge product": ({"a": _t(dtype="U8", shape=(2 ** 32, 2 ** 32), offsets=(0, 8))}, 8),
}


@pytest.mark.parametrize("case", HEADERS)
def test_vectorised_header_checks_agree_with_the_per_tensor_ones(case):
    from app.core.formats.safetensors_file import _tensors_valid
    header, data_len = HEADERS[case]
    assert _tensors_valid(header, data_len) == _slow_ok(header, data_len)
    assert _slow_ok(header, data_len) == (case in ("good", "zero sized at one offset", "empty",
                                                   "huge dims"))


def test_safetensors_entries_hold_one_slotted_loader(tmp_path):
    from safetensors.torch import save_file
    from app.core.formats.mapped_file import RangeLoader
    path = tmp_path / "m.safetensors"
    save_file({"a": torch.ones(2), "b": torch.zeros(3)}, str(path))
    doc = load_document(str(path))
    loaders = [e._loader for e in doc.tensors.values()]
    assert all(type(x) is RangeLoader and not hasattr(x, "__dict__") for x in loaders)
    assert loaders[0].guard is loaders[1].guard is not None  # one check per document
    assert loaders[0].shape is doc.entry("a").shape  # not a second tuple per tensor


def test_zip_names_read_from_the_central_directory_match_zipfile(tmp_path):
    import zipfile
    from app.core.formats.zip_names import central_names as _central_names
    pt, plain, commented = tmp_path / "a.pt", tmp_path / "p.zip", tmp_path / "c.zip"
    torch.save({f"t{i}": torch.ones(1) for i in range(3)}, pt)
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("x/a", "1")
        z.writestr("y/\u00e9", "2")
    with zipfile.ZipFile(commented, "w") as z:
        z.writestr("x/a", "1")
        z.comment = b"hello"
    for path in (pt, plain):
        assert _central_names(str(path)) == zipfile.ZipFile(path).namelist()
    assert _central_names(str(commented)) is None  # unusual: zipfile reads it
    data = pt.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:-30])
    assert _central_names(str(tmp_path / "cut.pt")) is None
