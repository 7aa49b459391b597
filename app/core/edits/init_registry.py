"""The registry over ``torch.nn.init``: each function's typed arguments, rank rule, help line and
whether it takes a generator, read from its signature."""
from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import Any

from torch.nn import init as nn_init

from ..errors import UserError

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
