"""Checking an initializer's arguments (gain presets resolved) and whether it can take a tensor."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import init as nn_init

from ..errors import UserError
from ..model.document import Document
from .init_registry import CHOICE, FLOAT, GAIN, INT, function, nonlinearities


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise UserError(f"{what} must be a number, not {value!r}")
    return float(value)


def resolve_gain(value: Any) -> float:
    """A number, or ``{"nonlinearity": "relu", "param": None}`` via ``calculate_gain``."""
    if isinstance(value, dict):
        unknown = set(value) - {"nonlinearity", "param"}
        if unknown or "nonlinearity" not in value:
            raise UserError('gain must be a number or {"nonlinearity": ..., "param": ...}')
        nl = value["nonlinearity"]
        if nl not in nonlinearities():
            raise UserError(f"gain: unknown nonlinearity {nl!r}; choose one of "
                            f"{', '.join(nonlinearities())}")
        param = value.get("param")
        if param is not None:
            param = _number(param, "the nonlinearity's parameter")
        try:
            return float(nn_init.calculate_gain(nl, param))
        except ValueError as exc:
            raise UserError(f"gain: {exc}") from None
    gain = _number(value, "gain")
    if not math.isfinite(gain):
        raise UserError("gain must be a finite number")
    return gain


def resolve_args(fn: str, args: dict | None) -> dict:
    """Checked keyword arguments for ``torch.nn.init.<fn>`` (gain presets resolved)."""
    spec = function(fn)
    args = dict(args or {})
    unknown = [k for k in args if spec.arg(k) is None]
    if unknown:
        names = ", ".join(a.name for a in spec.args) or "none"
        raise UserError(f"{fn} takes no argument {', '.join(map(repr, unknown))} "
                        f"(its arguments: {names})")
    out: dict[str, Any] = {}
    for a in spec.args:
        if a.name not in args or args[a.name] is None:
            if a.required:
                raise UserError(f"{fn} needs a value for {a.name}")
            continue
        v = args[a.name]
        if a.type == GAIN:
            out[a.name] = resolve_gain(v)
        elif a.type == FLOAT:
            out[a.name] = _number(v, a.name)
            if fn != "constant_" and not math.isfinite(out[a.name]):
                raise UserError(f"{a.name} must be a finite number")
        elif a.type == INT:
            if isinstance(v, bool) or not (isinstance(v, int) or
                                           (isinstance(v, float) and v.is_integer())):
                raise UserError(f"{a.name} must be a whole number, not {v!r}")
            out[a.name] = int(v)
        elif a.type == CHOICE:
            if v not in a.choices:
                raise UserError(f"{a.name} must be one of {', '.join(a.choices)}, not {v!r}")
            out[a.name] = v
    _check_ranges(fn, out)
    return out


def _check_ranges(fn: str, a: dict) -> None:
    if a.get("std", 0.0) < 0:
        raise UserError(f"std must not be negative (got {a['std']})")
    if fn == "uniform_" and a.get("a", 0.0) > a.get("b", 1.0):
        raise UserError(f"uniform_ needs a <= b (got a={a.get('a', 0.0)}, b={a.get('b', 1.0)})")
    if fn == "trunc_normal_" and a.get("a", -2.0) >= a.get("b", 2.0):
        raise UserError(f"trunc_normal_ needs a < b (got a={a.get('a', -2.0)}, "
                        f"b={a.get('b', 2.0)})")
    if fn == "sparse_" and not 0.0 <= a.get("sparsity", 0.0) <= 1.0:
        raise UserError(f"sparsity must be between 0 and 1 (got {a['sparsity']})")
    if fn == "dirac_" and a.get("groups", 1) < 1:
        raise UserError(f"groups must be at least 1 (got {a['groups']})")


# -- applicability -----------------------------------------------------------------------------

def check_applicable(fn: str, tensor, args: dict | None = None, name: str = "") -> str | None:
    """Why ``fn`` cannot initialise ``tensor`` (a tensor or a TensorEntry), or None when it can.

    Reads only shape and dtype, so a lazily loaded entry stays unloaded.
    """
    spec = function(fn)
    shape, dtype = tuple(tensor.shape), tensor.dtype
    name = name or getattr(tensor, "name", None) or "the tensor"
    ndim = len(shape)
    if (spec.min_dim is not None and ndim < spec.min_dim) or \
            (spec.max_dim is not None and ndim > spec.max_dim):
        return f"{fn} needs a {spec.rank_rule()} tensor; {name} is {ndim}-d"
    floating = dtype.is_floating_point or dtype.is_complex
    if spec.random and not floating:
        return f"{fn} draws random numbers and needs a floating-point tensor; {name} is " \
               f"{str(dtype).removeprefix('torch.')}"
    if fn == "orthogonal_" and dtype in (torch.float16, torch.bfloat16):
        return f"orthogonal_ needs float32 or float64 (QR is not implemented for " \
               f"{str(dtype).removeprefix('torch.')}); {name} is " \
               f"{str(dtype).removeprefix('torch.')}"
    if fn == "dirac_":
        groups = int((args or {}).get("groups") or 1)
        if groups >= 1 and shape[0] % groups:
            return f"dirac_ needs out channels divisible by groups={groups}; {name} has {shape[0]}"
    return None


def split_applicable(doc: Document, names: list[str], fn: str,
                     args: dict | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """(names ``fn`` can take, [(name, reason)] for the others), order kept."""
    ok, skipped = [], []
    for n in names:
        reason = check_applicable(fn, doc.entry(n), args, name=n)
        if reason is None:
            ok.append(n)
        else:
            skipped.append((n, reason))
    return ok, skipped
