"""Every dtype torch has goes through the grid's block reader, statistics and a .pt round trip
without a crash, and what is shown is the values the elements stand for."""
import warnings

import numpy as np
import pytest
import torch

from app.core.model import dtypes
from app.core.model.document import Document
from app.core.formats import load_document
from app.core.formats.save import save_document
from app.core.model.slice2d import Slice2D
from app.core.stats import compute_stats, preview_stats
from app.core.model.tensor_entry import TensorEntry

warnings.filterwarnings("ignore", category=UserWarning)


def make(dtype):
    """A small 3x4 tensor of ``dtype`` (None when this torch cannot make one)."""
    if dtypes.is_quantized(dtype):
        try:
            return torch.quantize_per_tensor(torch.linspace(-1, 1, 12).reshape(3, 4), 0.1, 2, dtype)
        except Exception:
            return None
    try:
        t = torch.zeros(3, 4, dtype=dtype)
    except Exception:
        return None
    if not dtypes.is_raw(dtype):
        t.copy_(torch.arange(12).reshape(3, 4).to(dtype) if dtype != torch.bool
                else torch.arange(12).reshape(3, 4) % 2 == 1)
    return t


ALL = [d for d in dtypes.all_dtypes() if make(d) is not None]


def test_every_float8_kind_is_known():
    names = {dtypes.dtype_name(d) for d in dtypes.FLOAT8}
    assert {"float8_e4m3fn", "float8_e5m2"} <= names
    assert all(dtypes.kind(d) == "float" for d in dtypes.FLOAT8)


@pytest.mark.parametrize("dtype", ALL, ids=dtypes.dtype_name)
def test_grid_block_and_stats_of_every_dtype(dtype):
    t = make(dtype)
    block = Slice2D(t, 0, 1).block(0, 3, 0, 4)
    assert isinstance(block, np.ndarray) and block.shape == (3, 4)
    assert block.dtype != object
    if not dtypes.is_raw(dtype):
        ref = t.dequantize() if t.is_quantized else t.to(dtypes.value_dtype(dtype))
        assert np.array_equal(block, ref.numpy())
    s = compute_stats(t)
    assert s.numel == 12 and s.dtype == dtypes.dtype_name(dtype)
    assert s.counts.sum() == s.finite
    preview_stats(t)


@pytest.mark.parametrize("dtype", ALL, ids=dtypes.dtype_name)
def test_save_reload_every_dtype_bit_exact(tmp_path, dtype):
    t = make(dtype)
    doc = Document([TensorEntry.of("w", t)])
    try:
        save_document(doc, str(tmp_path / "m.pt"))
    except Exception as exc:  # only where torch itself cannot pickle the dtype
        with pytest.raises(Exception):
            torch.save({"w": t}, str(tmp_path / "ref.pt"))
        assert "Traceback" not in str(exc)
        return
    back = load_document(str(tmp_path / "m.pt")).tensor("w")
    assert back.dtype == dtype and back.shape == t.shape
    if t.is_quantized:
        assert torch.equal(back.int_repr(), t.int_repr())
        assert back.q_scale() == t.q_scale() and back.q_zero_point() == t.q_zero_point()
    else:
        assert torch.equal(back.view(torch.uint8), t.view(torch.uint8))


def test_fp8_values_are_the_floats_they_stand_for():
    t = torch.tensor([0.3, -1.75, 448.0]).to(torch.float8_e4m3fn)
    block = Slice2D(t).block(0, 3, 0, 1).reshape(-1)
    assert block.tolist() == t.float().tolist() == [0.3125, -1.75, 448.0]
    s = compute_stats(t)
    assert (s.min, s.max) == (-1.75, 448.0)


def test_raw_bit_dtypes_show_their_bytes():
    t = torch.zeros(5, dtype=torch.int4)
    assert Slice2D(t).block(0, 5, 0, 1).dtype == np.uint8
    assert dtypes.edit_refusal(t)
