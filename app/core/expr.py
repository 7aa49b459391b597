"""Safe expressions in ``w`` and ``torch``: ``w * 0.5 + 1``, ``torch.where(w.abs() < 5, 0, w)``.

The text is parsed with ``ast`` and only a small grammar is allowed: the names ``w`` and
``torch``, constants, arithmetic, comparisons, boolean and unary operators, conditional
expressions, tuples / lists, subscripts, calls with keyword arguments and attribute access. No
attribute starting with ``_`` (no dunders), no in-place method (``add_``), no ``out=`` /
``inplace=`` arguments, and nothing that reads or writes files or changes global state
(``torch.load``, ``torch.save``, ``torch.hub``, ``torch.manual_seed``, ...). The compiled code runs
with no usable ``__builtins__``. Errors become one-line UserErrors naming the expression.
"""
from __future__ import annotations

import ast
import builtins
import types
from functools import lru_cache
from numbers import Number
from types import CodeType

import torch

from .errors import UserError

NAMES = ("w", "torch")

_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call,
    ast.keyword, ast.Attribute, ast.Name, ast.Load, ast.Constant, ast.Tuple, ast.List,
    ast.Subscript, ast.Slice,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult,
    ast.BitAnd, ast.BitOr, ast.BitXor, ast.LShift, ast.RShift,
    ast.UAdd, ast.USub, ast.Not, ast.Invert, ast.And, ast.Or,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn,
)

#: attribute names refused anywhere: I/O, code loading, global state, raw memory, autograd hooks
BLOCKED_ATTRS = frozenset("""
    load save hub ops utils library classes jit compile distributed multiprocessing backends
    package onnx export fx from_file fromfile frombuffer tofile storage untyped_storage
    serialization manual_seed seed set_rng_state get_rng_state random cuda mps xpu
    set_default_dtype set_default_device set_default_tensor_type set_printoptions set_num_threads
    set_num_interop_threads set_grad_enabled set_flush_denormal use_deterministic_algorithms
    autograd overrides testing profiler register_hook backward apply_ map_ map2_ share_memory_
    pin_memory numpy data_ptr grad eval exec open system environ builtins import_module
    getattr setattr delattr globals locals breakpoint input pickle dump dumps loads func compiler
    default_generator graphsafe_set_state graphsafe_get_state clone_state
""".split())

#: the only modules an expression may reach (``torch.os``, ``torch.nn.init``, ... are refused)
ALLOWED_MODULES = frozenset({"torch", "torch.nn", "torch.nn.functional", "torch.linalg",
                             "torch.fft", "torch.special"})

BLOCKED_KEYWORDS = frozenset({"out", "inplace"})


def _fail(text: str, why: str) -> UserError:
    return UserError(f"expression `{text}`: {why}")


class _Checker(ast.NodeVisitor):
    def __init__(self, text: str):
        self.text = text

    def generic_visit(self, node: ast.AST) -> None:
        if not isinstance(node, _NODES):
            raise _fail(self.text, f"{type(node).__name__.lower()} ({_source(node)}) is not allowed")
        super().generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id not in NAMES:
            raise _fail(self.text, f"unknown name {node.id!r}; only w and torch can be used")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = node.attr
        if name.startswith(("_", "set_")) or name.endswith("_") or name in BLOCKED_ATTRS:
            raise _fail(self.text, f"'.{name}' is not allowed"
                        + (" (in-place methods change the tensor behind the undo stack's back)"
                           if name.endswith("_") and not name.startswith("_") else ""))
        self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg is None or node.arg in BLOCKED_KEYWORDS:
            raise _fail(self.text, f"the argument {node.arg or '**'}= is not allowed")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if not isinstance(node.value, (int, float, complex, bool, str, type(None), type(Ellipsis))):
            raise _fail(self.text, f"the constant {node.value!r} is not allowed")

    def visit_BinOp(self, node: ast.BinOp) -> None:
        # Plain Python numbers could be made huge (2 ** 10 ** 10): bound constant powers / shifts.
        if isinstance(node.op, (ast.Pow, ast.LShift)) and not _names(node.left) and not _names(node.right):
            right = node.right.operand if isinstance(node.right, ast.UnaryOp) else node.right
            if not (isinstance(right, ast.Constant) and isinstance(right.value, (int, float))
                    and abs(right.value) <= 4096):
                raise _fail(self.text, f"the exponent {_source(node.right)} is too large")
        if any(isinstance(s, ast.Constant) and isinstance(s.value, str) for s in (node.left, node.right)):
            raise _fail(self.text, "text cannot be used in arithmetic")
        self.generic_visit(node)


def _names(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) for n in ast.walk(node))


class _Attributes(ast.NodeTransformer):
    """``a.b`` -> ``__attr__(a, "b")``, so that every attribute read is checked when it runs."""

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        call = ast.Call(func=ast.Name("__attr__", ast.Load()), args=[node.value, ast.Constant(node.attr)],
                        keywords=[])
        return ast.copy_location(call, node)


def _attr(obj, name: str):
    value = getattr(obj, name)
    if isinstance(value, types.ModuleType) and value.__name__ not in ALLOWED_MODULES:
        raise AttributeError(f"the module {value.__name__} cannot be used in expressions")
    return value


def _source(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # pragma: no cover
        return "?"


@lru_cache(maxsize=256)
def compile_expr(text: str) -> CodeType:
    """Check and compile ``text``; UserError when it is not valid or not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("type an expression in w, e.g. w * 0.5")
    source = text.strip()
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        detail = "" if exc.msg == "invalid syntax" else f": {exc.msg}"
        raise _fail(source, f"invalid syntax{detail}; write e.g. w * 0.5 + 1") from None
    _Checker(source).visit(tree)
    tree = ast.fix_missing_locations(_Attributes().visit(tree))
    return compile(tree, "<expression>", "eval")


def evaluate(text: str, w: torch.Tensor):
    """The value of ``text`` with ``w`` bound (under ``torch.no_grad``)."""
    code = compile_expr(text)
    # The checker lets only ``w`` and ``torch`` be named, so nothing in ``__builtins__`` can be
    # reached by the text; ``__import__`` is there because C code (torch's argument parser)
    # imports through the calling frame's builtins.
    if _narrow_int(w.dtype):  # `w + 1000` on int8 must not wrap before fit_result sees it
        w = w.to(torch.int64)
    scope = {"__builtins__": {"__import__": builtins.__import__}, "__attr__": _attr,
             "torch": torch, "w": w}
    try:
        with torch.no_grad():
            return eval(code, scope)  # noqa: S307 - checked by _Checker, no builtins
    except UserError:
        raise
    except Exception as exc:  # runtime errors of torch or of the expression itself
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(text.strip(), f"{type(exc).__name__}: {msg}") from None


def fit_result(text: str, result, shape, dtype: torch.dtype, device, what: str = "result") -> torch.Tensor:
    """``result`` (tensor or number) as a tensor of ``shape``, ``dtype`` and ``device``."""
    shape = torch.Size(shape)
    if isinstance(result, Number) and not isinstance(result, torch.Tensor):
        result = torch.tensor(result)
    if not isinstance(result, torch.Tensor):
        raise _fail(text, f"the {what} is a {type(result).__name__}, not a tensor or a number")
    if result.is_complex() and not dtype.is_complex:
        raise _fail(text, f"the {what} is complex, but the tensor is {_name(dtype)}")
    try:
        fits = torch.broadcast_shapes(result.shape, shape) == shape
    except RuntimeError:
        fits = False
    if not fits:
        raise _fail(text, f"the {what} has shape {list(result.shape)}, which does not fit "
                          f"the region of shape {list(shape)}")
    result = result.detach()
    if result.dtype != dtype and not dtype.is_floating_point and not dtype.is_complex:
        _check_integral(text, result, dtype, what)
    return result.to(device=device, dtype=dtype).expand(shape)


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


def evaluate_mask(text: str, region: torch.Tensor) -> torch.Tensor:
    """A boolean mask of ``region``'s shape (and device) from ``text``."""
    m = evaluate(text, region)
    if isinstance(m, bool):
        m = torch.tensor(m)
    if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
        kind = _name(m.dtype) if isinstance(m, torch.Tensor) else type(m).__name__
        raise UserError(f"mask `{text.strip()}` must give booleans (e.g. w.abs() > 1), not {kind}")
    return fit_result(text.strip(), m, region.shape, torch.bool, region.device, what="mask")


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
