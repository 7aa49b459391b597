"""The last operation of an expression, written straight into the edited region.

``w * 2`` evaluated plainly makes a new tensor that the edit then copies into ``w``: one more
pass over the values, and for a whole tensor a full-size temporary. When the expression's top node
is one of a few pointwise operations (``+ - * / **``, ``torch.clamp``/``clip``, ``torch.where``),
``Top`` splits it into its operands (evaluated like any expression, under the guard) and the
operation itself, which the caller runs with ``out=`` the region once the guard and the version
checks have passed. ``fits`` allows that only when the result would be exactly what the plain
evaluation gives: the region's shape (no broadcasting into it, no resizing), its dtype (no cast),
its device, and no operand overlapping it other than as the very same view.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .guard import _broadcast, storage_key
from .interp import Fn, _Compiler, _fail, _is_number, binop_value

_BINOP_OUT = {ast.Add: torch.add, ast.Sub: torch.sub, ast.Mult: torch.mul, ast.Div: torch.div,
              ast.Pow: torch.pow}
_COMMUTATIVE = (ast.Add, ast.Mult)  # 2 * w is w * 2, bit for bit (Tensor.__rmul__)
_CALL_OUT = {"clamp": torch.clamp, "clip": torch.clamp, "where": torch.where}
_CALL_KEYWORDS = {"clamp": {"min", "max"}, "clip": {"min", "max"}, "where": set()}


@dataclass(frozen=True)
class Top:
    """The top node of an expression: its operands, its value from them, and how to write it."""
    operands: tuple[Fn, ...]
    keywords: tuple[tuple[str, Fn], ...]
    value: Callable[..., Any]   # (operands, keywords) -> what the expression gives
    kind: str                   # "binop", "commutative", "where" or "clamp": how fits checks it
    write: Callable[..., Any]   # (operands, keywords, out) -> the same values, into out
    #: its operands are ``w`` and real numbers only: on a floating-point ``w`` it always fits, and
    #: it makes no temporary at all (so a whole tensor needs no chunks to bound its memory)
    on_w_only: bool = False

    def read(self, w) -> tuple[list, dict]:
        return [f(w) for f in self.operands], {k: f(w) for k, f in self.keywords}

    def fits(self, args: list, kwargs: dict, out: torch.Tensor) -> bool:
        """Whether ``write`` into ``out`` gives exactly the plain value (else compute it plainly)."""
        values = [*args, *kwargs.values()]
        if not (out.dtype.is_floating_point or out.dtype.is_complex):
            return False  # integer results are range-checked before they are written
        if not all(isinstance(v, torch.Tensor) or v is None or _is_number(v) for v in values):
            return False
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        if not tensors or any(t.device != out.device or t.is_sparse for t in tensors):
            return False
        if _broadcast([tuple(t.shape) for t in tensors]) != list(out.shape):
            return False
        if any(_overlaps(t, out) for t in tensors):
            return False
        return self._dtype(args, kwargs) == out.dtype

    def _dtype(self, args: list, kwargs: dict):
        if self.kind in ("binop", "commutative"):
            if self.kind == "binop" and not isinstance(args[0], torch.Tensor):
                return None  # 2 - w has no out= form with the number first
            return torch.result_type(*args)
        if self.kind == "where":
            cond, a, b = args
            if not (isinstance(cond, torch.Tensor) and cond.dtype == torch.bool):
                return None
            if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
                return None
            return torch.result_type(a, b)
        x, *bounds = [*args, *kwargs.values()]
        if not isinstance(x, torch.Tensor) or not bounds:
            return None
        kinds = {torch.result_type(x, b) for b in bounds if b is not None}
        return kinds.pop() if len(kinds) == 1 else None


def _overlaps(t: torch.Tensor, out: torch.Tensor) -> bool:
    """Shares memory with ``out`` other than as the same view (which pointwise ops handle)."""
    if storage_key(t) != storage_key(out):
        return False
    same = (t.data_ptr() == out.data_ptr() and t.shape == out.shape and t.stride() == out.stride())
    return not same


def top_of(compiler: _Compiler, node: ast.AST) -> Top | None:
    """The writable top node of ``node`` (an ``ast.Expression``'s body), or None."""
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOP_OUT:
        return _binop_top(compiler, node)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _call_top(compiler, node)
    return None


def _is_leaf(node: ast.AST | None) -> bool:
    """``w``, a real number (``-1`` too) or None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
        if not isinstance(node, ast.Constant):
            return False
    if isinstance(node, ast.Name):
        return node.id == "w"
    return isinstance(node, ast.Constant) and (
        node.value is None or isinstance(node.value, (bool, int, float)))


def _binop_top(compiler: _Compiler, node: ast.BinOp) -> Top:
    value = binop_value(compiler.text, node.op)
    fn = _BINOP_OUT[type(node.op)]

    def write(args, _kwargs, out):
        a, b = args
        if not isinstance(a, torch.Tensor):
            a, b = b, a  # commutative (fits checked): 2 * w is w * 2
        return fn(a, b, out=out)

    kind = "commutative" if isinstance(node.op, _COMMUTATIVE) else "binop"
    leaves = _is_leaf(node.left) and _is_leaf(node.right) and (
        kind == "commutative" or isinstance(node.left, ast.Name))
    return Top((compiler.compile(node.left), compiler.compile(node.right)), (),
               lambda args, _kwargs: value(*args), kind, write, leaves)


def _call_top(compiler: _Compiler, node: ast.Call) -> Top | None:
    func, text = node.func, compiler.text
    path = compiler._torch_path(func)
    if path is not None:
        name = path[0] if len(path) == 1 else None
    else:
        name = func.attr if func.attr in ("clamp", "clip") else None
    if name not in _CALL_OUT or any(isinstance(a, ast.Starred) for a in node.args):
        return None
    if any(k.arg not in _CALL_KEYWORDS[name] for k in node.keywords):
        return None
    operands = [compiler.compile(a) for a in node.args]
    if path is None:
        operands.insert(0, compiler.compile(func.value))
    count = 3 if name == "where" else None
    if count is not None and len(operands) != count or count is None and len(operands) > 3:
        return None
    keywords = tuple((k.arg, compiler.compile(k.value)) for k in node.keywords)
    fn = _CALL_OUT[name]
    method = path is None

    def plain(args, kwargs):
        if method:
            obj, *rest = args
            if not isinstance(obj, torch.Tensor):
                raise _fail(text, f"'.{name}()' is not allowed on a {type(obj).__name__}")
            return getattr(obj, name)(*rest, **kwargs)
        return getattr(torch, name)(*args, **kwargs)

    def write(args, kwargs, out):
        if name == "where":  # torch.where(..., out=) takes tensors only; a number is cast alike
            args = [a if isinstance(a, torch.Tensor) else
                    torch.tensor(a, dtype=out.dtype, device=out.device) for a in args]
        return fn(*args, **kwargs, out=out)

    leaves = name != "where" and all(_is_leaf(n) for n in [
        *([] if path is not None else [func.value]), *node.args, *(k.value for k in node.keywords)])
    return Top(tuple(operands), keywords, plain, "where" if name == "where" else "clamp", write,
               leaves)
