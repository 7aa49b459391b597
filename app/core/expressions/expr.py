"""Safe expressions in ``w`` and ``torch``: ``w * 0.5 + 1``, ``torch.where(w.abs() < 5, 0, w)``.

The text is parsed with ``ast`` and interpreted node by node (``expr_interp``) — never handed to
``eval`` — against an allowlist (``expr_names``): the names ``w`` and ``torch``, listed torch functions,
Tensor methods and attributes, numbers, arithmetic, comparisons, conditional expressions, tuples,
lists and subscripts; other tensors as ``t["NAME"]`` (the document) and ``ref["NAME"]`` (the
reference), read through an ``env.Env`` given to ``evaluate``. Text is allowed only as a direct
argument of a call (``approximate="tanh"``), never as a value of its own, so
``"{0.os.environ}".format(torch)`` cannot even be written.
Nothing an expression reaches can import, read files or change global state; the interpreter
never builds a ``__builtins__`` of its own (PySide6's import hook aborts the process on one).

While it runs, every torch operation passes ``expr_guard.Guard``: writes into ``w`` (or into the
tensors ``t``/``ref`` name) are refused before they happen, no tensor may exceed a size bound
related to ``w`` and those tensors, and a cancel callback is polled; the version counters are
compared afterwards as a backstop. Python integer arithmetic is bounded too
(``(10**4096)**4096``). Errors become one-line UserErrors naming the expression.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from numbers import Number
from typing import Callable

import torch

from ..errors import Cancelled, UserError
from .env import CURRENT, Env, label
from .guard import Guard, Refused, _broadcast
from .interp import NAMES, Fn, _Compiler, _fail  # noqa: F401 - NAMES is public here
from .into import Top, top_of

MAX_TEXT = 4000          # characters of one expression
MIN_LIMIT_BYTES = 64 * 2**20


class InPlaceChange(UserError):
    """The expression changed ``w`` itself (found by its version counter): restore and refuse."""


@dataclass(frozen=True)
class Compiled:
    text: str
    fn: Fn
    elementwise: bool  # every element of the result depends only on the same element of w
    tensors: frozenset = frozenset()  # (source, name) of the t["NAME"] / ref["NAME"] it reads
    top: Top | None = None  # its last operation, when evaluate(out=) can write it into place

    def sources(self) -> set[str]:
        """``{"t", "ref"}`` or part of it: what the expression reads besides ``w``."""
        return {s for s, _n in self.tensors}


@lru_cache(maxsize=256)
def compile_expr(text: str) -> Compiled:
    """Check and compile ``text``; UserError when it is not valid or not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("type an expression in w, e.g. w * 0.5")
    source = text.strip()
    if len(source) > MAX_TEXT:
        raise UserError(f"an expression may be at most {MAX_TEXT} characters long")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        detail = "" if exc.msg == "invalid syntax" else f": {exc.msg}"
        raise _fail(source, f"invalid syntax{detail}; write e.g. w * 0.5 + 1") from None
    except (RecursionError, MemoryError, ValueError):
        raise _fail(source, "too deeply nested") from None
    compiler = _Compiler(source)
    try:
        fn = compiler.compile(tree)
        top = top_of(compiler, tree.body)
    except RecursionError:
        raise _fail(source, "too deeply nested") from None
    return Compiled(source, fn, compiler.elementwise, frozenset(compiler.tensors), top)


def limit_bytes_for(w: torch.Tensor) -> int:
    """The largest tensor an expression on ``w`` may make: 4 float64 copies of w, at least 64 MiB."""
    return max(32 * w.numel(), MIN_LIMIT_BYTES)


def _seen(t: torch.Tensor) -> torch.Tensor:
    """What the expression sees of a tensor: narrow integers widened (`w + 1000` on int8 must
    not wrap before fit_result sees it); fp8, which has no arithmetic, as float32."""
    if _narrow_int(t.dtype):
        return t.to(torch.int64)
    if str(t.dtype).startswith("torch.float8"):
        return t.to(torch.float32)
    return t


def _read_tensors(compiled: Compiled, env: Env | None, w: torch.Tensor) -> dict:
    """The tensors ``t[...]`` / ``ref[...]`` name, read now (only those), as (original, seen)."""
    env = env or Env()
    out = {}
    for key in sorted(compiled.tensors):
        try:
            original = env.read(*key)
        except UserError as exc:
            raise _fail(compiled.text, str(exc)) from None
        seen = _seen(original.detach())
        if seen.device != w.device and w.device.type != "meta":
            seen = seen.to(w.device)
        out[key] = (original, seen)
    return out


def evaluate(text: str, w: torch.Tensor, cancelled: Callable[[], bool] | None = None,
             limit_bytes: int | None = None, env: Env | None = None,
             out: torch.Tensor | None = None):
    """The value of ``text`` with ``w`` bound (under ``torch.no_grad``).

    ``out`` (a tensor the caller will overwrite with the value, typically ``w`` itself): when the
    expression's last operation can write exactly its value there (``into.Top``), it does so,
    after the guard and the version checks have passed, and ``out`` is returned; otherwise the
    value is returned as without ``out``, which is left untouched.

    ``env`` gives what ``t["NAME"]`` and ``ref["NAME"]`` read (only the tensors named are read);
    they are protected like ``w`` and count toward the size bound. InPlaceChange when the
    expression changed ``w`` (the caller restores it) or another tensor; Cancelled when
    ``cancelled()`` became true.
    """
    compiled = compile_expr(text)
    source = compiled.text
    original = w
    version = original._version
    others = _read_tensors(compiled, env, w) if compiled.tensors else {}
    versions = {key: o._version for key, (o, _s) in others.items()}
    w = _seen(w) if not str(w.dtype).startswith("torch.float8") else w
    if limit_bytes is None:
        limit_bytes = max(limit_bytes_for(original),
                          32 * (original.numel() + sum(o.numel() for o, _s in others.values())))
    protected = [original, *(o for o, _s in others.values())]
    labels = ["w", *(label(*key) for key in others)]
    guard = Guard(protected, limit_bytes, cancelled, labels=labels)
    token = CURRENT.set({key: s for key, (_o, s) in others.items()})
    top = compiled.top if out is not None else None
    into = False
    try:
        with torch.no_grad(), guard:
            if top is None:
                result = compiled.fn(w)
            else:
                args, kwargs = top.read(w)
                into = top.fits(args, kwargs, out)
                result = out if into else top.value(args, kwargs)
    except Cancelled:
        raise
    except Refused as exc:
        raise _fail(source, str(exc)) from None
    except UserError:
        raise
    except RecursionError:
        raise _fail(source, "too deeply nested") from None
    except Exception as exc:  # runtime errors of torch or of the expression itself
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(source, f"{type(exc).__name__}: {msg}") from None
    finally:
        CURRENT.reset(token)
        if original._version != version:
            raise InPlaceChange(f"expression `{source}`: it changed w in place, which is not "
                                "allowed; the values were restored")
        for key, (o, _s) in others.items():
            if o._version != versions[key]:
                raise InPlaceChange(f"expression `{source}`: it changed {label(*key)} in place, "
                                    "which is not allowed")
    if into:
        if cancelled is not None and cancelled():
            raise Cancelled()  # the last operation runs outside the guard, which polls otherwise
        try:
            with torch.no_grad():
                top.write(args, kwargs, out)
        except Exception as exc:  # pragma: no cover - fits() admits only what torch accepts
            raise _fail(source, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}") from None
    return result


def fit_result(text: str, result, shape, dtype: torch.dtype, device, what: str = "result") -> torch.Tensor:
    """``result`` (tensor or number) as a tensor of ``shape``, ``dtype`` and ``device``."""
    shape = torch.Size(shape)
    if isinstance(result, Number) and not isinstance(result, torch.Tensor):
        result = torch.tensor(result)
    if not isinstance(result, torch.Tensor):
        raise _fail(text, f"the {what} is a {type(result).__name__}, not a tensor or a number")
    if result.is_complex() and not dtype.is_complex:
        raise _fail(text, f"the {what} is complex, but the tensor is {_name(dtype)}")
    fits = _broadcast([tuple(result.shape), tuple(shape)]) == list(shape)
    if not fits:
        raise _fail(text, f"the {what} has shape {list(result.shape)}, which does not fit "
                          f"the region of shape {list(shape)}")
    result = result.detach()
    if result.dtype != dtype and not dtype.is_floating_point and not dtype.is_complex:
        _check_integral(text, result, dtype, what)
    try:
        return result.to(device=device, dtype=dtype).expand(shape)
    except (RuntimeError, NotImplementedError, TypeError) as exc:
        raise _fail(text, f"the {what} cannot be written as {_name(dtype)}: "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None


def _narrow_int(dtype: torch.dtype) -> bool:
    return (not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool
            and dtype.itemsize < 8)


def _check_integral(text: str, result: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    """Refuse a result an integer or bool tensor cannot hold, instead of wrapping or truncating."""
    if result.numel() == 0 or result.dtype == torch.bool:
        return
    if result.is_floating_point():
        if not bool(torch.isfinite(result).all()):
            raise _fail(text, f"the {what} has NaN or Inf values, which a {_name(dtype)} tensor "
                              "cannot hold")
        if not bool((result == result.trunc()).all()):
            raise _fail(text, f"the {what} has fractions, which a {_name(dtype)} tensor cannot "
                              "hold; round it, e.g. torch.round(...)")
    lo, hi = (0, 1) if dtype == torch.bool else (torch.iinfo(dtype).min, torch.iinfo(dtype).max)
    low, high = result.min().item(), result.max().item()  # two scalars for the whole region
    if low < lo or high > hi:
        raise _fail(text, f"the {what} ranges over [{low:g}, {high:g}], outside what "
                          f"{_name(dtype)} holds ([{lo}, {hi}])")


def evaluate_mask(text: str, region: torch.Tensor, cancelled: Callable[[], bool] | None = None,
                  env: Env | None = None) -> torch.Tensor:
    """A boolean mask of ``region``'s shape (and device) from ``text``."""
    m = evaluate(text, region, cancelled, env=env)
    if isinstance(m, bool):
        m = torch.tensor(m)
    if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
        kind = _name(m.dtype) if isinstance(m, torch.Tensor) else type(m).__name__
        raise UserError(f"mask `{text.strip()}` must give booleans (e.g. w.abs() > 1), not {kind}")
    return fit_result(text.strip(), m, region.shape, torch.bool, region.device, what="mask")


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
