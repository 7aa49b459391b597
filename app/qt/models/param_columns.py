"""The tree's live-model columns: gradient norm ("none" where ``.grad`` is None; modules pool
their distinct parameters as ``clip_grad_norm_`` does), grad / weight ratio, and device; plus the
module tooltip text (``extra_repr()``, training mode)."""
from __future__ import annotations

import torch

from ...core.model.grads import GradInfo, format_norm, pooled_for
from ...core.model.tensor_entry import PARAMETER
from ...core.model.tree import Node

HEADERS = ("Grad norm", "Grad/weight", "Device")
GRAD, RATIO, DEVICE = range(3)


class ParamColumns:
    """Holds the gradient figures the window computed last (off the GUI thread) and caches the
    pooled ones per node, so that painting never reduces a tensor."""

    def __init__(self):
        self.grads: dict[str, GradInfo] = {}
        self._pooled: dict[int, GradInfo | None] = {}
        self._devices: dict[int, str] = {}

    def set_grads(self, grads: dict[str, GradInfo]) -> None:
        self.grads = dict(grads)
        self._pooled.clear()

    def clear_cache(self) -> None:
        self._pooled.clear()
        self._devices.clear()

    def info(self, node: Node) -> GradInfo | None:
        if node.entry is not None:
            return self.grads.get(node.entry.name)
        key = id(node)
        if key not in self._pooled:
            self._pooled[key] = pooled_for(node.tensor_entries(), self.grads)
        return self._pooled[key]

    def _has_params(self, node: Node) -> bool:
        if node.entry is not None:
            return node.entry.name in self.grads
        return any(e.name in self.grads for e in node.tensor_entries())

    def text(self, node: Node, which: int) -> str:
        if which == DEVICE:
            return self.device(node)
        if not self.grads or not self._has_params(node):
            return ""
        info = self.info(node)
        if which == GRAD:
            return format_norm(info.norm if info is not None else None)
        ratio = info.ratio if info is not None else None
        return "" if ratio is None else f"{ratio:.2e}"

    def device(self, node: Node) -> str:
        if node.entry is not None:
            e = node.entry
            return str(e.tensor().device) if e.is_loaded else ""
        key = id(node)
        if key not in self._devices:
            devices = sorted({str(e.tensor().device) for e in node.tensor_entries() if e.is_loaded})
            self._devices[key] = ", ".join(devices)
        return self._devices[key]

    def nonfinite(self, node: Node) -> bool:
        info = self.info(node) if self.grads else None
        return info is not None and info.nonfinite > 0

    def tooltip(self, node: Node) -> str:
        """Extra tooltip lines: gradient figures; a module's ``extra_repr()`` and mode."""
        lines = []
        e = node.entry
        if e is not None and e.is_loaded:
            lines.append(f"Device: {e.tensor().device}")
        if e is not None and e.kind == PARAMETER and e.name in self.grads:
            info = self.grads[e.name]
            if info.norm is None:
                lines.append("Gradient: none (.grad is None)")
            else:
                line = f"Gradient norm {format_norm(info.norm)}"
                if info.ratio is not None:
                    line += f", grad/weight {info.ratio:.2e}"
                lines.append(line)
                if info.nonfinite:
                    lines.append(f"Gradient has {info.nonfinite} NaN/Inf values")
        module = node.module
        if isinstance(module, torch.nn.Module):  # not a TorchScript archive's stand-in
            try:
                extra = module.extra_repr()
            except Exception as exc:  # user code: say it failed, never break the tooltip
                extra = f"<extra_repr() failed: {type(exc).__name__}>"
            lines.append(f"{type(module).__name__}({extra})")
            lines.append("training" if module.training else "eval (training is False)")
            info = self.info(node) if self.grads else None
            if info is not None:
                lines.append(f"Pooled gradient norm {format_norm(info.norm)}")
        return "\n".join(lines)
