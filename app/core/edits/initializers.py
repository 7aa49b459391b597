"""A registry over ``torch.nn.init``: each function's typed arguments, rank rule and generator use;
tensor selection like ``net.apply(fn)`` (one tensor, one module, a subtree filtered by module
type, weights / biases); and ``InitEdit``, which re-initialises tensors in place.

Qt-free. Arguments are plain JSON data (numbers, strings, and for ``gain`` either a number or
``{"nonlinearity": "relu", "param": null}`` resolved with ``torch.nn.init.calculate_gain``).
"""
from __future__ import annotations

import contextlib
import inspect
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import init as nn_init

from ..model.document import Document
from .base import Edit
from .values import ResetParametersEdit
from ..errors import UserError
from ..model.tree import GROUP, MODULE, ROOT, Node

FLOAT, INT, CHOICE, GAIN = "float", "int", "choice", "gain"

#: The nonlinearities ``calculate_gain`` knows (read from its signature where torch annotates it).
_FALLBACK_NONLINEARITIES = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                            "conv_transpose2d", "conv_transpose3d", "sigmoid", "tanh", "relu",
                            "leaky_relu", "selu")

#: Explicit types of every argument name used by torch.nn.init (the signature gives defaults and
#: choices; the type is never guessed from a default value).
_ARG_TYPES = {"a": FLOAT, "b": FLOAT, "mean": FLOAT, "std": FLOAT, "val": FLOAT, "gain": GAIN,
              "sparsity": FLOAT, "groups": INT, "mode": CHOICE, "nonlinearity": CHOICE}
_FALLBACK_CHOICES = {"mode": ("fan_in", "fan_out"), "nonlinearity": _FALLBACK_NONLINEARITIES}
#: Values the dialog proposes for arguments torch requires (no default).
_SUGGESTED = {("constant_", "val"): 0.0, ("sparse_", "sparsity"): 0.1}
_HELP = {
    "uniform_": "U(a, b)", "normal_": "N(mean, std²)", "constant_": "fill with val",
    "ones_": "fill with 1", "zeros_": "fill with 0", "eye_": "identity matrix (2-d)",
    "dirac_": "Dirac delta: conv layers pass their input through (3-d to 5-d)",
    "xavier_uniform_": "Glorot uniform, bound gain·√(6/(fan_in+fan_out))",
    "xavier_normal_": "Glorot normal, std gain·√(2/(fan_in+fan_out))",
    "kaiming_uniform_": "He uniform; a = negative slope of leaky_relu",
    "kaiming_normal_": "He normal; a = negative slope of leaky_relu",
    "trunc_normal_": "N(mean, std²) truncated to [a, b]",
    "orthogonal_": "(semi-)orthogonal matrix times gain",
    "sparse_": "2-d, a fraction sparsity of each column zero, the rest N(0, std²)",
}
#: (minimum, maximum) number of dimensions; None = no bound.
_RANKS = {"eye_": (2, 2), "dirac_": (3, 5), "xavier_uniform_": (2, None),
          "xavier_normal_": (2, None), "kaiming_uniform_": (2, None),
          "kaiming_normal_": (2, None), "orthogonal_": (2, None), "sparse_": (2, 2)}
#: Functions that also draw from torch's global CPU generator whatever ``generator=`` says
#: (torch's ``sparse_`` picks the zeroed rows with ``torch.randperm(rows)``).
GLOBAL_RNG_FUNCTIONS = ("sparse_",)
FUNCTION_NAMES = ("uniform_", "normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                  "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
                  "trunc_normal_", "orthogonal_", "sparse_")


@dataclass(frozen=True)
class ArgSpec:
    name: str
    type: str                              # FLOAT, INT, CHOICE or GAIN
    default: Any = None                    # None with required=True: torch needs a value
    required: bool = False
    choices: tuple[str, ...] = ()
    suggested: Any = None                  # what a form shows first (the default, or a proposal)


@dataclass(frozen=True)
class InitFunction:
    name: str
    args: tuple[ArgSpec, ...]
    takes_generator: bool
    min_dim: int | None = None
    max_dim: int | None = None
    help: str = ""
    fn: Any = field(default=None, repr=False, compare=False)

    @property
    def random(self) -> bool:
        return self.takes_generator

    def arg(self, name: str) -> ArgSpec | None:
        return next((a for a in self.args if a.name == name), None)

    def rank_rule(self) -> str:
        lo, hi = self.min_dim, self.max_dim
        if lo is None and hi is None:
            return "any"
        if lo == hi:
            return f"{lo}-d"
        if hi is None:
            return f"{lo}-d or more"
        return f"{lo}-d to {hi}-d"


def _hints(fn) -> dict:
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return {}


def _choices_from(annotation) -> tuple[str, ...]:
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(str(a) for a in typing.get_args(annotation))
    return ()


def _describe(name: str) -> InitFunction:
    fn = getattr(nn_init, name)
    sig = inspect.signature(fn)
    hints = _hints(fn)
    args, takes_generator = [], False
    for i, (pname, p) in enumerate(sig.parameters.items()):
        if i == 0 or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue  # the tensor itself
        if pname == "generator":
            takes_generator = True
            continue
        kind = _ARG_TYPES.get(pname)
        if kind is None:  # a newer torch grew an argument: take it only when plainly a number
            hint = hints.get(pname)
            kind = FLOAT if hint is float else INT if hint is int else None
            if kind is None:
                continue
        choices = ()
        if kind == CHOICE:
            choices = _choices_from(hints.get(pname)) or _FALLBACK_CHOICES[pname]
        required = p.default is inspect.Parameter.empty
        default = None if required else p.default
        if kind in (FLOAT, GAIN) and default is not None:
            default = float(default)
        suggested = _SUGGESTED.get((name, pname), default)
        args.append(ArgSpec(pname, kind, default, required, choices, suggested))
    lo, hi = _RANKS.get(name, (None, None))
    return InitFunction(name, tuple(args), takes_generator, lo, hi, _HELP.get(name, ""), fn)


def nonlinearities() -> tuple[str, ...]:
    return _choices_from(_hints(nn_init.calculate_gain).get("nonlinearity")) \
        or _FALLBACK_NONLINEARITIES


REGISTRY: dict[str, InitFunction] = {n: _describe(n) for n in FUNCTION_NAMES if hasattr(nn_init, n)}


def function(name: str) -> InitFunction:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown initializer {name!r}; choose one of "
                        f"{', '.join(REGISTRY)}") from None


# -- arguments ---------------------------------------------------------------------------------

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


# -- selection (like net.apply(fn)) ------------------------------------------------------------

WHICH = ("weights", "biases", "parameters", "all")


def _wanted(entry, which: str) -> bool:
    last = entry.name.rsplit(".", 1)[-1]
    if which == "weights":
        return last.startswith("weight")
    if which == "biases":
        return last.startswith("bias")
    if which == "parameters":
        return entry.kind == "parameter"
    if which == "all":
        return True
    raise UserError(f"which must be one of {', '.join(WHICH)}, not {which!r}")


def module_filter_available(doc: Document) -> bool:
    """True when the tree knows module classes (live models, TorchScript)."""
    return any(n.kind == MODULE for n in doc.root.walk()) or bool(doc.root.type_name)


def _is_module(node: Node) -> bool:
    return node.entry is None and node.kind in (ROOT, MODULE, GROUP)


def find_module_node(doc: Document, root: str) -> Node:
    node = doc.root if root == "" else doc.node(root)
    if node is None or not _is_module(node):
        raise UserError(f"no module or group named {root!r}")
    return node


def module_types_under(doc: Document, root: str = "", *, recursive: bool = True) -> list[str]:
    """Class names of the modules under ``root`` (itself included) that own tensors directly."""
    node = find_module_node(doc, root)
    nodes = node.walk() if recursive else iter([node])
    found: list[str] = []
    for n in nodes:
        if _is_module(n) and n.type_name and any(c.entry is not None for c in n.children):
            if n.type_name not in found:
                found.append(n.type_name)
    return found


def is_norm_type(type_name: str) -> bool:
    """BatchNorm*, LayerNorm, GroupNorm, InstanceNorm*, RMSNorm, and user classes like them."""
    return "Norm" in type_name


_NESTED_QUANTIFIER = re.compile(r"\([^()]*(?:[*+?}]|\|)[^()]*\)\s*[*+?{]")
MAX_PATTERN = 100


def match_module_types(patterns: list[str], found: list[str], where: str = "the model") -> list[str]:
    """Class names among ``found`` that a pattern names: the exact class name, a substring
    (``classname.find('Conv') != -1``) or a regular expression searched in the class name.

    Raises UserError for a pattern that matches nothing, or a regular expression that could
    backtrack for ever (a quantified group holding a quantifier or an alternation)."""
    chosen: list[str] = []
    for pattern in patterns:
        pattern = pattern.removeprefix("torch.").removeprefix("nn.")
        if len(pattern) > MAX_PATTERN:
            raise UserError(f"a module type pattern has at most {MAX_PATTERN} characters")
        if _NESTED_QUANTIFIER.search(pattern):
            raise UserError(f"{pattern!r}: nested repetition is not allowed in a module type "
                            "pattern (it could take for ever)")
        try:
            compiled = re.compile(pattern)
        except re.error:
            compiled = None
        hits = [t for t in found if t == pattern or pattern in t
                or (compiled is not None and compiled.search(t))]
        if not hits:
            raise UserError(f"no {pattern} module under {where} (found: {', '.join(found) or 'none'})")
        chosen += [t for t in hits if t not in chosen]
    return chosen


def norm_weights_left_out(doc: Document, root: str, *, recursive: bool = True) -> list[str]:
    """The normalisation-layer weights that "weights" without a module-type filter leaves out."""
    if root in doc.tensors or not module_filter_available(doc):
        return []
    node = find_module_node(doc, root)
    owners = node.walk() if recursive else iter([node])
    names = {c.entry.name for o in owners if _is_module(o) and is_norm_type(o.type_name)
             for c in o.children if c.entry is not None and _wanted(c.entry, "weights")}
    return [n for n in doc.tensors if n in names]


def select_tensors(doc: Document, root: str, *, module_types: list[str] | None = None,
                   which: str = "all", recursive: bool = True,
                   include_norm: bool | None = None) -> list[str]:
    """Tensors under the module / group ``root`` ("" = everything), walked like ``net.apply``.

    ``module_types``: only tensors owned directly by modules of those class names (ignored when
    the document has no module classes, e.g. a plain state_dict). ``which``: "weights" (last name
    part starts with ``weight``: ``weight``, ``weight_ih_l0``), "biases" (starts with ``bias``),
    "parameters" (no buffers) or "all". ``recursive=False``: only the module's own tensors.
    Document order; tied tensors once (the first alias in the selection). When ``root`` names a
    tensor, that tensor alone is returned.
    ``include_norm``: whether "weights" takes normalisation layers' weights (their 1.0 scales);
    by default only when ``module_types`` names those layers, as tutorials' init functions do.
    """
    if root in doc.tensors:
        return [root]
    node = find_module_node(doc, root)
    types = set(module_types) if module_types and module_filter_available(doc) else None
    picked: set[str] = set()
    owners = node.walk() if recursive else iter([node])
    if include_norm is None:
        include_norm = types is not None
    for owner in owners:
        if not _is_module(owner):
            continue
        if types is not None and owner.type_name not in types:
            continue
        if which == "weights" and not include_norm and is_norm_type(owner.type_name):
            continue
        for c in owner.children:
            if c.entry is not None and _wanted(c.entry, which):
                picked.add(c.entry.name)
    return dedupe_ties(doc, [n for n in doc.tensors if n in picked])


def dedupe_ties(doc: Document, names: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for n in names:
        if n in seen:
            continue
        seen.update(doc.aliases(n))
        out.append(n)
    return out


# -- the edit ----------------------------------------------------------------------------------

class InitEdit(Edit):
    """``torch.nn.init.<fn>(tensor, **args, generator=g)`` in place on each target.

    Targets run in document order; a tied group is initialised once (through its first name) and
    every alias is reported by ``touched()``. With ``seed``, one
    ``torch.Generator(device).manual_seed(seed)`` serves the whole step, so the result equals
    calling the functions yourself in that order. Tensors on several devices get one generator
    per device, each made (and seeded with ``seed``) when the first tensor on that device comes.

    ``sparse_`` also draws from torch's global CPU generator (``torch.randperm``): with a seed,
    that one is seeded with ``seed`` too for the step, inside ``torch.random.fork_rng`` so the
    caller's global random state is left as it was. The result then equals
    ``torch.random.default_generator.manual_seed(seed)`` followed by the calls with ``g``.
    """

    def __init__(self, targets: list[str], fn: str, args: dict | None = None,
                 seed: int | None = None, glob: str | None = None):
        if not targets:
            raise UserError("no tensor to initialize")
        self.targets = list(dict.fromkeys(targets))
        self.fn = fn
        self.args = dict(args or {})
        self.seed = None if seed is None else int(seed)
        self.glob = glob
        self._resolved = resolve_args(fn, self.args)  # bad arguments fail at once
        self._saved: dict[str, torch.Tensor] = {}
        self._touched: list[str] = []

    @property
    def label(self) -> str:
        n = len(self.targets)
        what = self.targets[0] if n == 1 else f"{n} tensors"
        return f"Initialize {what} with {self.fn}"

    def plan(self, doc: Document) -> list[str]:
        """The names to run, in document order, one per tied group; raises UserError."""
        missing = [t for t in self.targets if t not in doc.tensors]
        if missing:
            raise UserError(f"{self.fn}: no tensor named {', '.join(missing[:5])}"
                            + (" …" if len(missing) > 5 else ""))
        order = {n: i for i, n in enumerate(doc.tensors)}
        names = dedupe_ties(doc, sorted(self.targets, key=order.__getitem__))
        _, skipped = split_applicable(doc, names, self.fn, self._resolved)
        if skipped:
            listed = "; ".join(r for _, r in skipped[:5])
            more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
            raise UserError(f"{self.fn} cannot take {len(skipped)} of the tensors: {listed}{more}")
        return names

    def apply(self, doc: Document) -> None:
        names = self.plan(doc)
        fn = getattr(nn_init, self.fn)
        spec = function(self.fn)
        saved = {n: doc.tensor(n).detach().clone() for n in names}
        generators: dict[torch.device, torch.Generator] = {}
        done: list[str] = []
        try:
            with torch.no_grad(), _seeded_global_rng(self.seed, self.fn in GLOBAL_RNG_FUNCTIONS):
                for n in names:
                    t = doc.tensor(n)
                    kw = dict(self._resolved)
                    if spec.takes_generator and self.seed is not None:
                        g = generators.get(t.device)
                        if g is None:
                            g = generators[t.device] = \
                                torch.Generator(device=t.device).manual_seed(self.seed)
                        kw["generator"] = g
                    done.append(n)
                    if t.numel():
                        fn(t, **kw)
        except Exception as exc:
            _restore(doc, {n: saved[n] for n in done})
            raise UserError(f"{self.fn} failed on {done[-1]}: {exc}") from None
        self._saved = saved
        self._touched = [a for n in names for a in doc.aliases(n)]
        for a in self._touched:
            doc.entry(a).refresh_meta()

    def revert(self, doc: Document) -> None:
        _restore(doc, self._saved)

    def recipe_step(self) -> dict:
        step = {"op": "init", "target": self.glob or self.targets[0], "fn": self.fn,
                "args": dict(self.args), "seed": self.seed}
        if self.glob is None and len(self.targets) > 1:
            step["targets"] = list(self.targets)
        return step

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> "InitEdit":
        from .steps import resolve_targets
        return init_edit_from_step(step, resolve_targets(doc, step))

    def touched(self) -> list[str]:
        return list(self._touched)

    def memory_cost(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._saved.values())

    def work_bytes(self, doc: Document) -> int:
        from .base import names_bytes
        return names_bytes(doc, self.targets)


@contextlib.contextmanager
def _seeded_global_rng(seed: int | None, needed: bool):
    if seed is None or not needed:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


def _restore(doc: Document, saved: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for n, old in saved.items():
            doc.tensor(n).copy_(old)


def init_edit_from_step(step: dict, names: list[str]) -> InitEdit:
    """An ``init`` recipe step (already matched to ``names``) as an InitEdit."""
    return InitEdit(names, step.get("fn", ""), step.get("args") or {}, step.get("seed"),
                    glob=step.get("target") if "targets" not in step else None)



class SeededResetEdit(ResetParametersEdit):
    """``reset_parameters()`` after ``torch.manual_seed(seed)``, without touching the global RNG:
    the same values as seeding and calling it yourself (CPU random numbers)."""

    def __init__(self, module_names, seed: int, glob: str | None = None):
        super().__init__(module_names, glob)
        self.seed = int(seed)
        self._rng.state = (torch.Generator().manual_seed(self.seed).get_state(), [])

    @property
    def label(self) -> str:
        return f"{super().label} (seed {self.seed})"

    def recipe_step(self) -> dict:
        step = super().recipe_step()
        step["seed"] = self.seed
        return step
