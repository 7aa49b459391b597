"""The expression interpreter: an ``ast`` tree -> a closure of ``w``, refusing anything outside
the allowlist of ``expr_names`` (see ``expr.py`` for the rules)."""
from __future__ import annotations

import ast
import operator
from numbers import Number
from typing import Any, Callable

import torch

from . import names
from .env import CURRENT, SOURCES
from ..errors import UserError

NAMES = ("w", "torch")  # plus t["NAME"] and ref["NAME"] (env.SOURCES), only subscripted
MAX_INT_BITS = 4096      # a Python integer an expression computes stays below 2**4096

Fn = Callable[[torch.Tensor], Any]


def _fail(text: str, why: str) -> UserError:
    return UserError(f"expression `{text}`: {why}")


def _source(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # pragma: no cover
        return "?"


def _is_number(v) -> bool:
    return isinstance(v, Number) and not isinstance(v, torch.Tensor)


def _check_int(text: str, v):
    if isinstance(v, int) and v.bit_length() > MAX_INT_BITS:
        raise _fail(text, f"a number over 2**{MAX_INT_BITS} is not allowed")
    return v


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow, ast.MatMult: operator.matmul, ast.BitAnd: operator.and_,
           ast.BitOr: operator.or_, ast.BitXor: operator.xor, ast.LShift: operator.lshift,
           ast.RShift: operator.rshift}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}
#: writes into a given tensor, or puts results on another device (a meta tensor has no values)
_BLOCKED_KEYWORDS = frozenset({"out", "inplace", "device", "pin_memory", "layout"})
_SAFE_ATTRIBUTES = frozenset({"real", "imag", "dtype", "device"})  # the same for every chunk


class _Compiler:
    """AST -> a closure of ``w``; refuses anything outside the allowlist."""

    def __init__(self, text: str):
        self.text = text
        self.elementwise = True
        self.tensors: set[tuple[str, str]] = set()  # (source, name) of t[...] / ref[...]

    def refuse(self, why: str) -> UserError:
        return _fail(self.text, why)

    def compile(self, node: ast.AST, text_ok: bool = False) -> Fn:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.refuse(f"{type(node).__name__.lower()} ({_source(node)}) is not allowed")
        if isinstance(node, ast.Constant):
            return method(node, text_ok)
        return method(node)

    # -- leaves ---------------------------------------------------------------------------------
    def _Expression(self, node):
        return self.compile(node.body)

    def _Constant(self, node, text_ok):
        v = node.value
        if isinstance(v, str) and text_ok:
            return lambda w: v
        if isinstance(v, str):
            raise self.refuse(f"text ({v!r}) is allowed only as an argument of a function")
        if not (v is None or v is Ellipsis or isinstance(v, (bool, int, float, complex))):
            raise self.refuse(f"the constant {v!r} is not allowed")
        _check_int(self.text, v)
        return lambda w: v

    def _Name(self, node):
        if node.id == "w":
            return lambda w: w
        if node.id == "torch":
            raise self.refuse("torch on its own is not a value; use e.g. torch.abs(w)")
        if node.id in SOURCES:
            raise self.refuse(f'{node.id} on its own is not a value; name a tensor of '
                              f'{SOURCES[node.id]}, e.g. {node.id}["head.weight"]')
        raise self.refuse(f"unknown name {node.id!r}; only w, torch, t[\"NAME\"] and "
                          "ref[\"NAME\"] can be used")

    # -- attributes and calls -------------------------------------------------------------------
    def _torch_path(self, node) -> list[str] | None:
        """``torch.a.b`` -> ``["a", "b"]``; None when the chain does not start at ``torch``."""
        path = []
        while isinstance(node, ast.Attribute):
            path.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id == "torch":
            return path[::-1]
        return None

    def _torch_function(self, path: list[str]):
        *module, name = path
        allowed = names.MODULES.get(tuple(module))
        if allowed is None or name not in allowed:
            raise self.refuse(f"torch.{'.'.join(path)} is not allowed in expressions")
        obj = torch
        for part in path:
            obj = getattr(obj, part, None)
        if not callable(obj):
            raise self.refuse(f"torch.{'.'.join(path)} is not available in this torch")
        if name not in names.ELEMENTWISE:
            self.elementwise = False
        return obj

    def _Attribute(self, node):
        path = self._torch_path(node)
        if path is not None:
            if len(path) == 1 and path[0] in names.TORCH_VALUES:
                value = names.TORCH_VALUES[path[0]]
                return lambda w: value
            self._torch_function(path)  # refuses what is not allowed at all
            raise self.refuse(f"torch.{'.'.join(path)} must be called, e.g. "
                              f"torch.{'.'.join(path)}(w)")
        attr = node.attr
        if attr not in names.ATTRIBUTES and attr not in names.RESULT_FIELDS:
            raise self.refuse(f"'.{attr}' is not allowed" + (
                " (in-place methods change the tensor behind the undo stack's back)"
                if attr.endswith("_") and not attr.startswith("_") else ""))
        if attr not in _SAFE_ATTRIBUTES:
            self.elementwise = False
        value = self.compile(node.value)
        text = self.text

        def get(w):
            obj = value(w)
            if attr in names.ATTRIBUTES and isinstance(obj, torch.Tensor):
                return getattr(obj, attr)
            if attr in names.RESULT_FIELDS and type(obj).__module__ == "torch.return_types":
                return getattr(obj, attr)
            raise _fail(text, f"'.{attr}' is not allowed on a {type(obj).__name__}")
        return get

    def _Call(self, node):
        args = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.refuse("*arguments are not allowed")
            args.append(self.compile(a, text_ok=True))
        kwargs = {}
        for k in node.keywords:
            if k.arg is None or k.arg in _BLOCKED_KEYWORDS:
                raise self.refuse(f"the argument {k.arg or '**'}= is not allowed")
            kwargs[k.arg] = self.compile(k.value, text_ok=True)
        func = node.func
        if isinstance(func, ast.Name) and func.id not in NAMES:
            self._Name(func)  # "unknown name ..."
        if not isinstance(func, ast.Attribute):
            raise self.refuse(f"{_source(func)}(...) cannot be called; call torch functions or "
                              "tensor methods such as w.abs()")
        path = self._torch_path(func)
        if path is not None:
            fn = self._torch_function(path)
            return lambda w: fn(*[a(w) for a in args], **{k: v(w) for k, v in kwargs.items()})
        name = func.attr
        if name not in names.METHODS:
            raise self.refuse(f"'.{name}' is not allowed" + (
                " (in-place methods change the tensor behind the undo stack's back)"
                if name.endswith("_") and not name.startswith("_") else ""))
        if name not in names.ELEMENTWISE:
            self.elementwise = False
        target, text = self.compile(func.value), self.text

        def call(w):
            obj = target(w)
            if not isinstance(obj, torch.Tensor):
                raise _fail(text, f"'.{name}()' is not allowed on a {type(obj).__name__}")
            if name == "to" and len(args) == 1:
                if not isinstance(args[0](w), (torch.dtype, torch.Tensor)):
                    raise _fail(text, ".to() may change the dtype only, e.g. w.to(torch.float64)")
            elif name == "to":
                raise _fail(text, ".to() may change the dtype only, e.g. w.to(torch.float64)")
            return getattr(obj, name)(*[a(w) for a in args], **{k: v(w) for k, v in kwargs.items()})
        return call

    # -- operators ------------------------------------------------------------------------------
    def _BinOp(self, node):
        op = _BINOPS.get(type(node.op))
        if op is None:  # pragma: no cover - every ast operator is listed
            raise self.refuse(f"the operator in {_source(node)} is not allowed")
        if isinstance(node.op, ast.MatMult):
            self.elementwise = False
        left, right = self.compile(node.left), self.compile(node.right)
        apply = binop_value(self.text, node.op)
        return lambda w: apply(left(w), right(w))

    def _UnaryOp(self, node):
        operand, text = self.compile(node.operand), self.text
        if isinstance(node.op, ast.Not):
            return lambda w: _not(operand(w))
        op = _UNARY[type(node.op)]

        def unary(w):
            v = operand(w)
            if not (isinstance(v, torch.Tensor) or _is_number(v)):
                raise _fail(text, f"{type(v).__name__} values cannot be negated or inverted")
            return op(v)
        return unary

    def _BoolOp(self, node):
        values = [self.compile(v) for v in node.values]
        both = isinstance(node.op, ast.And)

        def boolop(w):
            got = [v(w) for v in values]
            if any(isinstance(g, torch.Tensor) for g in got):
                combine = torch.logical_and if both else torch.logical_or
                out = torch.as_tensor(got[0])
                for g in got[1:]:
                    out = combine(out, torch.as_tensor(g))
                return out
            for g in got[:-1]:
                if bool(g) != both:
                    return g
            return got[-1]
        return boolop

    def _Compare(self, node):
        ops = []
        for o in node.ops:
            if type(o) not in _COMPARE:
                raise self.refuse(f"the comparison {type(o).__name__} is not allowed")
            ops.append(_COMPARE[type(o)])
        parts = [self.compile(node.left)] + [self.compile(c) for c in node.comparators]

        def compare(w):
            values = [p(w) for p in parts]
            results = [op(a, b) for op, a, b in zip(ops, values, values[1:])]
            if len(results) == 1:
                return results[0]
            if any(isinstance(r, torch.Tensor) for r in results):  # 0 < w < 1, elementwise
                out = torch.as_tensor(results[0])
                for r in results[1:]:
                    out = torch.logical_and(out, torch.as_tensor(r))
                return out
            return all(bool(r) for r in results)
        return compare

    def _IfExp(self, node):
        test, body, orelse = self.compile(node.test), self.compile(node.body), self.compile(node.orelse)
        return lambda w: body(w) if bool(test(w)) else orelse(w)

    # -- containers and subscripts --------------------------------------------------------------
    def _Tuple(self, node):
        self.elementwise = False
        items = [self.compile(e) for e in node.elts]
        return lambda w: tuple(i(w) for i in items)

    def _List(self, node):
        self.elementwise = False
        items = [self.compile(e) for e in node.elts]
        return lambda w: [i(w) for i in items]

    def _Slice(self, node):
        parts = [None if p is None else self.compile(p) for p in (node.lower, node.upper, node.step)]
        return lambda w: slice(*[None if p is None else p(w) for p in parts])

    def _tensor_of(self, source: str, node):
        """``t["NAME"]`` / ``ref["NAME"]``: a tensor read by ``evaluate`` before the expression runs."""
        key = node.slice
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            raise self.refuse(f'{source}[...] takes a tensor name in quotes, e.g. '
                              f'{source}["head.weight"], not {source}[{_source(key)}]')
        ref = (source, key.value)
        self.tensors.add(ref)
        return lambda w: CURRENT.get()[ref]

    def _Subscript(self, node):
        self.elementwise = False
        if isinstance(node.value, ast.Name) and node.value.id in SOURCES:
            return self._tensor_of(node.value.id, node)
        value, index, text = self.compile(node.value), self.compile(node.slice), self.text

        def subscript(w):
            obj = value(w)
            if not isinstance(obj, (torch.Tensor, tuple, list)):
                raise _fail(text, f"a {type(obj).__name__} cannot be indexed")
            return obj[index(w)]
        return subscript


def binop_value(text: str, kind: ast.operator) -> Callable[[Any, Any], Any]:
    """``(a, b) -> a OP b`` with the checks of the interpreter (numbers or tensors, bounded ints)."""
    op = _BINOPS[type(kind)]

    def apply(a, b):
        for v in (a, b):
            if not (isinstance(v, torch.Tensor) or _is_number(v)):
                raise _fail(text, f"arithmetic on a {type(v).__name__} is not allowed")
        if isinstance(a, int) and isinstance(b, int):
            _bound_int_op(text, kind, a, b)
        return _check_int(text, op(a, b))
    return apply


def _not(v):
    if isinstance(v, torch.Tensor):
        return torch.logical_not(v)
    return not v


def _bound_int_op(text: str, kind: ast.operator, a: int, b: int) -> None:
    """Refuse Python integer powers and shifts whose result would be huge, before computing it."""
    if isinstance(kind, ast.Pow) and b > 0 and abs(a) > 1:
        if (abs(a).bit_length() - 1) * b > MAX_INT_BITS:
            raise _fail(text, f"the power {a if a < 10**12 else '(a large number)'} ** "
                              f"{b if b < 10**12 else '(a large number)'} is too large")
    if isinstance(kind, ast.LShift) and a and b > 0 and a.bit_length() + b > MAX_INT_BITS:
        raise _fail(text, "the shift is too large")
