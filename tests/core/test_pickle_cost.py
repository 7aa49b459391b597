"""Before torch's unpickler reads a checkpoint, a pass refuses what it would build at a cost out
of all proportion to the file (``formats/pickle_cost.py``): a constructor handed a tensor, a
``bytearray`` of a huge size, one container consumed again and again."""
from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
import torch

from app.core.errors import CheckpointError
from app.core.formats import load_document
from app.core.formats.pickle_cost import check_cost
from app.core.formats.state_pickle_calls import Refused
from tests.helpers.tensors import assert_bit_equal


class _SetOfStretched:
    """A set of every element of a 1e6-long view of one float (stride 0): 1e6 tensor objects."""

    def __reduce__(self):
        return set, (torch.ones(1).expand(1_000_000),)


class _HugeBytearray:
    def __reduce__(self):
        return bytearray, (10 ** 9,)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("evil", [_SetOfStretched, _HugeBytearray])
def test_a_costly_pickle_is_refused_before_torch_reads_it(tmp_path, legacy, evil):
    """A numpy scalar first: the plain reader leaves the file to torch.load, which would build it."""
    path = str(tmp_path / "evil.pt")
    torch.save({"best": np.float64(0.5), "evil": evil()}, path,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError, match="refused"):
        load_document(path)


def _legit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(torch.rand(4), 0.1, 2, torch.quint8)
    return {"best": np.float64(0.5), "array": np.arange(4.0), "raw": b"\x00\x01" * 50,
            "buffer": bytearray(b"abc" * 50), "tags": set(range(100)), "counts": Counter("aab"),
            "z": 1 + 2j, "q": q, "sparse": torch.eye(3).to_sparse(), "size": torch.Size([2, 3]),
            "p": torch.nn.Parameter(torch.ones(2)), "nested": [[1, 2]] * 3}


@pytest.mark.parametrize("legacy", [False, True])
def test_what_torch_save_writes_passes_the_cost_check(tmp_path, legacy):
    path = str(tmp_path / "c.pt")
    torch.save(_legit(), path, _use_new_zipfile_serialization=not legacy)
    doc = load_document(path)
    want = torch.load(path, weights_only=False)
    assert_bit_equal(doc.entry("p").tensor().detach(), want["p"].detach())
    assert torch.equal(doc.entry("q").tensor().dequantize(), want["q"].dequantize())
    assert torch.equal(doc.entry("sparse").tensor().to_dense(), torch.eye(3))


def test_a_small_container_may_be_handed_over_again():
    """An encoding's name or a shape, memoised and reused: costs little each time."""
    check_cost(b"\x80\x02]q\x00(K\x01K\x02ec__builtin__\nset\nq\x01h\x00\x85Rh\x01h\x00\x85R\x86.")
    big = b"\x80\x02]q\x00(" + b"K\x01" * 100 + b"ec__builtin__\nset\nq\x01h\x00\x85Rh\x01h\x00\x85R\x86."
    with pytest.raises(Refused):
        check_cost(big)
