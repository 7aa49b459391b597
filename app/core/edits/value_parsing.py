"""Numbers for value edits: text typed in a cell or a recipe value, checked against a dtype,
and the short forms labels and recipes write them in."""
from __future__ import annotations

import math

import torch

from ..errors import UserError
from ..model.dtypes import FLOAT8, is_quantized, is_raw
from ..model.tensor_entry import dtype_name


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _json_value(value):
    """Recipes are JSON: a complex value is written as the text that parses back to it."""
    return str(value).strip("()") if isinstance(value, complex) else value


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _not_a_number(text: str) -> UserError:
    return UserError(f"{text!r} is not a number; type e.g. 0.5 or 1e-3")


def coerce_value(value, dtype: torch.dtype):
    """A Python number checked against ``dtype``: whole and in range for integers, 0/1 for bool,
    finite values that fit for floats. Strings go through ``parse_cell_value``."""
    if isinstance(value, str):
        return parse_cell_value(value, dtype)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    name = dtype_name(dtype)
    if is_raw(dtype) or is_quantized(dtype):
        raise UserError(f"{name} tensors cannot be edited: torch defines no in-place writes "
                        f"of their values")
    if isinstance(value, complex):
        if dtype.is_complex:
            return value
        if value.imag:
            raise UserError(f"{value} is complex; {name} tensors hold real numbers")
        value = value.real
    if not isinstance(value, (bool, int, float)):
        raise UserError(f"{value!r} is not a number; give e.g. 0.5 or 1e-3")
    if dtype == torch.bool:
        if value in (0, 1):
            return bool(value)
        raise UserError(f"{_fmt(value)} is not true or false; {name} tensors take true, false, 1 or 0")
    if dtype.is_complex:
        return complex(value)
    if dtype.is_floating_point:
        v = float(value)
        # fp8 kinds have no isfinite: check the value they would store, read back as float32
        stored = torch.tensor(v, dtype=torch.float64).to(dtype).to(torch.float32)
        saturated = dtype in FLOAT8 and abs(v) > float(torch.finfo(dtype).max)
        if math.isfinite(v) and (saturated or not torch.isfinite(stored)):
            raise UserError(f"{v:g} is too large for {name} (largest is "
                            f"{float(torch.finfo(dtype).max):g}"
                            + (", no negative values" if float(torch.finfo(dtype).min) > 0 else "")
                            + ")")
        return v
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise UserError(f"{_fmt(value)} is not a whole number; {name} tensors hold integers")
    v = int(value)
    info = torch.iinfo(dtype)
    if not info.min <= v <= info.max:
        raise UserError(f"{v} is out of range for {name} ({info.min} to {info.max})")
    return v


def parse_cell_value(text: str, dtype: torch.dtype):
    """Text typed into a grid cell -> a Python scalar valid for ``dtype`` (UserError otherwise)."""
    raw = str(text).strip()
    if not raw:
        raise UserError("type a value, e.g. 0.5")
    if dtype == torch.bool:
        low = raw.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise UserError(f"{raw!r} is not true or false; type true, false, 1 or 0")
    if dtype.is_complex:
        try:
            return complex(raw.replace(" ", ""))
        except ValueError:
            raise UserError(f"{raw!r} is not a number; type e.g. 0.5 or 1+2j") from None
    if not dtype.is_floating_point:
        try:
            return coerce_value(int(raw, 10), dtype)
        except ValueError:
            pass
    try:
        v = float(raw)
    except ValueError:
        raise _not_a_number(raw) from None
    if math.isinf(v) and raw.lower().lstrip("+-") not in ("inf", "infinity"):
        raise UserError(f"{raw} is too large for {dtype_name(dtype)}")
    return coerce_value(v, dtype)
