"""Edits of flags and whole modules: ``requires_grad`` and ``reset_parameters()``."""
from __future__ import annotations

import torch

from ..errors import UserError
from ..model.document import Document
from ..model.tensor_entry import PARAMETER, dtype_name
from .base import Edit
from .undo_buffers import _nbytes, _Rng, _step_target, _units


class RequiresGradEdit(Edit):
    """Set ``requires_grad`` of the named Parameters (other tensors are skipped)."""

    def __init__(self, names, flag: bool, glob: str | None = None):
        self.targets = [names] if isinstance(names, str) else list(names)
        self.flag = bool(flag)
        self.glob = glob
        self._old: list[tuple[torch.nn.Parameter, bool]] = []
        self._touched: list[str] = []

    @property
    def label(self) -> str:
        what = self.targets[0] if len(self.targets) == 1 else f"{len(self.targets)} tensors"
        return f"{'Unfreeze' if self.flag else 'Freeze'} {what}"

    def apply(self, doc: Document) -> None:
        units, _ = _units(doc, self.targets)
        # TorchScript modules hand out their parameters as plain tensors: the entry knows.
        params = [(n, t) for n, t in units
                  if isinstance(t, torch.nn.Parameter) or doc.entry(n).kind == PARAMETER]
        if not params:
            raise UserError("requires_grad applies to parameters only, and none of the chosen "
                            "tensors is one")
        if self.flag:
            for n, t in params:
                if not (t.is_floating_point() or t.is_complex()):
                    raise UserError(f"{n} is {dtype_name(t.dtype)}; only floating point tensors "
                                    "can require gradients")
        self._old = [(t, t.requires_grad) for _n, t in params]
        self._touched = [a for n, _t in params for a in doc.aliases(n)]
        for t, _ in self._old:
            t.requires_grad_(self.flag)

    def revert(self, doc: Document) -> None:
        for t, flag in reversed(self._old):
            t.requires_grad_(flag)
        self._old = []

    def recipe_step(self) -> dict:
        return _step_target({"op": "requires_grad"}, self.targets, self.glob) | {"value": self.flag}

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> "RequiresGradEdit":
        from .steps import glob_of, resolve_targets
        return cls(resolve_targets(doc, step), step["value"], glob=glob_of(step))

    def touched(self) -> list[str]:
        return list(self._touched)


class ResetParametersEdit(Edit):
    """``reset_parameters()`` of every module in the given subtrees of a live model."""

    def __init__(self, module_names, glob: str | None = None):
        self.modules = [module_names] if isinstance(module_names, str) else list(module_names)
        self.glob = glob
        self._saved: list[tuple[torch.nn.Module, str, torch.Tensor, torch.Tensor]] = []
        self._touched: list[str] = []
        self._rng = _Rng()

    @property
    def label(self) -> str:
        if len(self.modules) > 1:
            return f"Reset parameters of {len(self.modules)} modules"
        return f"Reset parameters of {self.modules[0] or 'the model'}"

    def _resettable(self, doc: Document) -> list[torch.nn.Module]:
        if doc.module is None:
            raise UserError("reset_parameters needs a live model; this document is a checkpoint "
                            "(use an init step instead)")
        found: dict[int, torch.nn.Module] = {}
        for name in self.modules:
            try:
                sub = doc.module.get_submodule(name)
            except AttributeError:
                raise UserError(f"the model has no module named {name!r}") from None
            hits = [m for m in sub.modules() if callable(getattr(m, "reset_parameters", None))]
            if not hits:
                raise UserError(f"{name or 'the model'} ({type(sub).__name__}) has no module "
                                "with a reset_parameters() method")
            found.update((id(m), m) for m in hits)
        return list(found.values())

    def apply(self, doc: Document) -> None:
        mods = self._resettable(doc)
        saved, seen = [], set()
        with torch.no_grad():
            for m in mods:
                for owner in m.modules():
                    tensors = [*owner._parameters.items(), *owner._buffers.items()]
                    for attr, t in tensors:
                        if t is not None and id(t) not in seen:
                            seen.add(id(t))
                            saved.append((owner, attr, t, t.detach().clone()))
            try:
                with self._rng([t.device for _o, _a, t, _c in saved]):
                    for m in mods:
                        m.reset_parameters()
            except Exception as exc:
                self._saved = saved
                self.revert(doc)
                raise UserError(f"reset_parameters failed: {str(exc).splitlines()[0]}") from None
        self._saved = saved
        ids = {id(t) for _o, _a, t, _c in saved}
        self._touched = [n for n, e in doc.tensors.items() if e.is_loaded and id(e.tensor()) in ids]

    def revert(self, doc: Document) -> None:
        with torch.no_grad():
            for owner, attr, t, old in reversed(self._saved):
                if getattr(owner, attr, None) is not t:  # a reset_parameters that rebinds
                    setattr(owner, attr, t)
                t.copy_(old)
        self._saved = []

    def recipe_step(self) -> dict:
        return _step_target({"op": "reset_parameters"}, self.modules, self.glob)

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> "ResetParametersEdit":
        """A seeded step is an ``initializers.SeededResetEdit``."""
        from .steps import glob_of, resolve_modules
        seed = step.get("seed")
        if seed is not None:
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 63:
                raise UserError(f"reset_parameters: 'seed' must be a whole number >= 0, not {seed!r}")
            from .init_edit import SeededResetEdit
            return SeededResetEdit(resolve_modules(doc, step), seed, glob=glob_of(step))
        return ResetParametersEdit(resolve_modules(doc, step), glob=glob_of(step))

    def touched(self) -> list[str]:
        return list(self._touched)

    def memory_cost(self) -> int:
        return sum(_nbytes(old) for *_x, old in self._saved)
