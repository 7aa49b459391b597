"""``InitEdit`` (``torch.nn.init`` in place, seeded, undoable) and ``SeededResetEdit``."""
from __future__ import annotations

import contextlib

import torch
from torch.nn import init as nn_init

from ..errors import UserError
from ..model.document import Document
from .base import Edit
from .init_args import resolve_args, split_applicable
from .init_registry import GLOBAL_RNG_FUNCTIONS, function
from .init_selection import dedupe_ties
from .module_edits import ResetParametersEdit


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
        self._saved = {}  # undone: the old values are back in the tensors, the copy can go

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
