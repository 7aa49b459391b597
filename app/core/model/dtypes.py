"""Every dtype and layout torch has, mapped to values numpy and Qt can take.

The one place that decides how a tensor's elements are *shown and measured*: the grid, the
statistics and the edits all go through here, so no code path hands numpy or Qt a dtype it
cannot hold (fp8, quantized, shell types such as ``int4``) or a sparse layout.

- ``value_dtype(dtype)``: the dtype values are computed in (bf16 / fp8 -> float32, complex32 ->
  complex64, quantized -> float32 dequantized, raw bit types -> unsigned integers of their size).
- ``values(t)``: a dense CPU tensor of ``value_dtype`` holding what ``t``'s elements stand for.
- ``to_numpy(t)``: the same as a numpy array.
- ``layout_name(t)``, ``describe(t)``: names for the tree / title (quantization, nnz).
- ``edit_refusal(t)``: the one line that says why torch cannot edit ``t`` in place, or None.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

FLOAT8 = tuple(sorted((v for k, v in vars(torch).items()
                       if isinstance(v, torch.dtype) and k.startswith("float8")), key=str))
QUANTIZED = tuple(d for d in (getattr(torch, n, None) for n in
                              ("qint8", "quint8", "qint32", "quint4x2", "quint2x4")) if d is not None)
_NUMPY_NATIVE = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                 torch.float16, torch.float32, torch.float64, torch.complex64, torch.complex128}
for _n in ("uint16", "uint32", "uint64"):
    if hasattr(torch, _n):
        _NUMPY_NATIVE.add(getattr(torch, _n))
_UNSIGNED_OF_SIZE = {1: torch.uint8, 2: getattr(torch, "uint16", torch.int16),
                     4: getattr(torch, "uint32", torch.int32), 8: getattr(torch, "uint64", torch.int64)}
SPARSE_LAYOUTS = {torch.sparse_coo, torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr,
                  torch.sparse_bsc}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


def all_dtypes() -> list[torch.dtype]:
    """Every dtype this torch defines, in name order."""
    return sorted({v for v in vars(torch).values() if isinstance(v, torch.dtype)}, key=str)


def is_quantized(dtype: torch.dtype) -> bool:
    return dtype in QUANTIZED


@functools.lru_cache(maxsize=None)
def _element_size(dtype: torch.dtype) -> int:
    """Bytes per element (cached: asked once per tensor when a 100k-tensor tree is totalled)."""
    try:
        return torch.empty((), dtype=dtype).element_size()
    except Exception:  # quantized dtypes cannot be made by torch.empty
        return {torch.qint32: 4}.get(dtype, 1)


def is_raw(dtype: torch.dtype) -> bool:
    """Dtypes torch cannot convert to any number type (bits*, int1..7, uint1..7, float4 pairs):
    shown as the unsigned integers of their bytes."""
    if dtype in _NUMPY_NATIVE or dtype in QUANTIZED or dtype == torch.bool:
        return False
    if dtype in FLOAT8 or dtype in (torch.bfloat16, torch.complex32):
        return False
    return True


def value_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype in which ``dtype``'s values are shown and measured (numpy has it)."""
    if dtype in _NUMPY_NATIVE:
        return dtype
    if dtype == torch.complex32:
        return torch.complex64
    if dtype in QUANTIZED or dtype in FLOAT8 or dtype == torch.bfloat16:
        return torch.float32
    return _UNSIGNED_OF_SIZE.get(_element_size(dtype), torch.uint8)


def kind(dtype: torch.dtype) -> str:
    """"bool", "int", "float", "complex" (of the values shown) or "raw"."""
    if is_raw(dtype):
        return "raw"
    v = value_dtype(dtype)
    if v == torch.bool:
        return "bool"
    if v.is_complex:
        return "complex"
    return "float" if v.is_floating_point else "int"


def raw_view(t: torch.Tensor) -> torch.Tensor:
    """A raw-bit tensor viewed as unsigned integers of its element size (no copy)."""
    return t.view(value_dtype(t.dtype))


def values(t: torch.Tensor) -> torch.Tensor:
    """A dense CPU tensor of ``value_dtype(t.dtype)`` with the values ``t``'s elements stand for.

    Copies only when the dtype or device needs it; sparse tensors are densified, so callers pass
    the block they mean to show, never a whole large sparse tensor."""
    t = t.detach()
    if t.layout in SPARSE_LAYOUTS:
        t = t.to_dense()
    if t.is_quantized:
        return t.dequantize().cpu()
    if is_raw(t.dtype):
        return raw_view(t).cpu()
    target = value_dtype(t.dtype)
    if t.dtype != target:
        t = t.to(target)
    return t.cpu()


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """``values(t)`` as a numpy array."""
    return values(t).numpy()


def raw_integers(t: torch.Tensor) -> torch.Tensor:
    """The stored integers of a quantized tensor (``int_repr``); other tensors unchanged."""
    return t.int_repr() if t.is_quantized else t


def layout_name(t: torch.Tensor) -> str:
    return str(t.layout).removeprefix("torch.")


def is_sparse(t: torch.Tensor) -> bool:
    return t.layout in SPARSE_LAYOUTS


def stored_count(t: torch.Tensor) -> int:
    """Elements a sparse tensor stores (values, blocks included); numel for dense tensors."""
    if t.layout == torch.sparse_coo:
        return t._values().numel()
    if t.layout in SPARSE_LAYOUTS:
        return t.values().numel()
    return t.numel()


def quant_summary(t: torch.Tensor) -> str:
    """``scale 0.1, zero point 3`` or the per-channel scales' range and axis."""
    scheme = t.qscheme()
    if scheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        return f"scale {t.q_scale():.6g}, zero point {t.q_zero_point()}"
    scales, zps = t.q_per_channel_scales(), t.q_per_channel_zero_points()
    return (f"per channel (axis {t.q_per_channel_axis()}): scales {float(scales.min()):.6g}"
            f"…{float(scales.max()):.6g}, zero points {int(zps.min())}…{int(zps.max())}")


def quant_at(t: torch.Tensor, index: tuple[int, ...]) -> tuple[int, float, int]:
    """The stored integer, scale and zero point of one element of a quantized tensor."""
    one = t[tuple(slice(i, i + 1) for i in index)] if index else t
    raw = int(one.int_repr().reshape(-1)[0])
    if t.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        return raw, float(t.q_scale()), int(t.q_zero_point())
    ch = index[t.q_per_channel_axis()] if index else 0
    return (raw, float(t.q_per_channel_scales()[ch]), int(t.q_per_channel_zero_points()[ch]))


def describe(t: torch.Tensor) -> str:
    """Extra words for a title: layout and nnz, quantization, raw storage."""
    parts = []
    if is_sparse(t):
        nnz = t._nnz()
        parts.append(f"{layout_name(t)}, nnz {nnz:,}")
    if t.is_quantized:
        parts.append(quant_summary(t))
    elif is_raw(t.dtype):
        parts.append(f"raw bits shown as {dtype_name(value_dtype(t.dtype))}")
    elif t.dtype != value_dtype(t.dtype):
        parts.append(f"shown as {dtype_name(value_dtype(t.dtype))}")
    return "; ".join(parts)


def edit_refusal(t: torch.Tensor) -> str | None:
    """Why the values of ``t`` cannot be edited in place, or None when they can."""
    name = dtype_name(t.dtype)
    if getattr(t, "_paramedit_snapshot", False):
        return ("a copy of a packed parameter (torch.ao quantized module): edit the float "
                "model and quantize it again")
    if is_sparse(t):
        return (f"{layout_name(t)} tensors cannot be edited in place (torch has no element "
                f"assignment for sparse layouts)")
    if t.is_quantized:
        return f"{name} (quantized) tensors cannot be edited: torch defines no in-place writes of values"
    if is_raw(t.dtype):
        return f"{name} tensors cannot be edited: torch defines no arithmetic or conversion for them"
    return None
