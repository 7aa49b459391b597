"""Undoable edits of a live model's gradients: zero (in place, or ``p.grad = None``), scale, clip.

They change ``p.grad`` only — never the ``Parameter`` object nor its value — and have no recipe
step (a checkpoint file holds no gradients). Undo gives back the same gradient tensor objects with
their old values, so an optimizer step after an undo sees exactly the gradients it would have.
"""
from __future__ import annotations

import torch

from .base import Edit
from ..errors import UserError
from ..model.grads import distinct_parameters


class GradEdit(Edit):
    """Base: resolves ``names`` to distinct parameters and keeps what ``revert`` needs."""

    verb = "Edit gradients of"

    def __init__(self, names: list[str]):
        self.names = list(names)
        self._saved: list[tuple[torch.nn.Parameter, torch.Tensor | None, torch.Tensor | None]] = []

    @property
    def label(self) -> str:
        what = self.names[0] if len(self.names) == 1 else f"{len(self.names)} tensors"
        return f"{self.verb} {what}"

    def parameters(self, doc) -> list[torch.nn.Parameter]:
        params = distinct_parameters(doc.entry(n) for n in self.names)
        if not params:
            raise UserError("no parameter selected: only parameters have gradients")
        return params

    def apply(self, doc) -> None:
        params = self.parameters(doc)
        self._saved = []
        for p in params:
            g = p.grad
            self._saved.append((p, g, g.detach().clone() if g is not None and self.keeps_values
                                else None))
        if self.needs_grads and all(p.grad is None for p in params):
            raise UserError("no gradient to change: .grad is None (run backward() first)")
        with torch.no_grad():
            self.change([p for p in params if p.grad is not None] if self.needs_grads else params)

    keeps_values = True   # whether revert needs copies of the old values
    needs_grads = True    # change() receives only parameters that have a gradient

    def change(self, params: list[torch.nn.Parameter]) -> None:
        raise NotImplementedError

    def revert(self, doc) -> None:
        with torch.no_grad():
            for p, g, old in self._saved:
                if p.grad is not g:
                    p.grad = g
                if g is not None and old is not None:
                    g.copy_(old)
        self._saved = []

    def recipe_step(self) -> dict:
        raise NotImplementedError("gradient edits have no recipe step")

    def recipe_steps(self) -> list[dict]:
        return []

    def memory_cost(self) -> int:
        return sum(old.numel() * old.element_size() for _p, _g, old in self._saved
                   if old is not None)


class ZeroGradEdit(GradEdit):
    """``p.grad = None`` (``set_to_none``, as ``zero_grad()`` does by default) or ``grad.zero_()``."""

    def __init__(self, names: list[str], set_to_none: bool = True):
        super().__init__(names)
        self.set_to_none = bool(set_to_none)
        self.keeps_values = not self.set_to_none

    @property
    def verb(self) -> str:
        return "Set gradients to None:" if self.set_to_none else "Zero gradients of"

    def change(self, params) -> None:
        for p in params:
            if self.set_to_none:
                p.grad = None
            else:
                p.grad.zero_()


class ScaleGradEdit(GradEdit):
    def __init__(self, names: list[str], factor: float):
        super().__init__(names)
        self.factor = float(factor)

    @property
    def verb(self) -> str:
        return f"Scale gradients by {self.factor:g}:"

    def change(self, params) -> None:
        for p in params:
            p.grad.mul_(self.factor)


class ClipGradEdit(GradEdit):
    """``torch.nn.utils.clip_grad_norm_`` over all selected parameters (one total norm), or over
    each parameter on its own (``per_tensor``)."""

    def __init__(self, names: list[str], max_norm: float, norm_type: float = 2.0,
                 per_tensor: bool = False):
        super().__init__(names)
        if not max_norm > 0:
            raise UserError(f"the largest norm must be positive, not {max_norm}")
        self.max_norm, self.norm_type, self.per_tensor = float(max_norm), float(norm_type), per_tensor
        self.total_norms: list[float] = []

    @property
    def verb(self) -> str:
        how = "each tensor" if self.per_tensor else "total norm"
        return f"Clip gradients ({how} ≤ {self.max_norm:g}):"

    def change(self, params) -> None:
        groups = [[p] for p in params] if self.per_tensor else [params]
        self.total_norms = [float(torch.nn.utils.clip_grad_norm_(g, self.max_norm, self.norm_type))
                            for g in groups if g]
