"""Gradients of a live model's parameters: norms, pooled norms, ratios, non-finite counts.

Only parameters have ``.grad``; a tied parameter (one ``Parameter`` under several names) has one
gradient and is counted once when norms are pooled, as ``clip_grad_norm_`` counts it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch

from .tensor_entry import PARAMETER, TensorEntry


@dataclass
class GradInfo:
    """``norm`` is None where ``.grad`` is None; ``ratio`` is grad norm / weight norm."""

    norm: float | None
    weight_norm: float
    nonfinite: int = 0

    @property
    def ratio(self) -> float | None:
        if self.norm is None or self.weight_norm == 0:
            return None
        return self.norm / self.weight_norm


def grad_of(entry: TensorEntry) -> torch.Tensor | None:
    """The ``.grad`` of a parameter entry (None for buffers, files, and parameters without one)."""
    if entry.kind != PARAMETER or not entry.is_loaded:
        return None
    return entry.tensor().grad


def _norm(t: torch.Tensor) -> float:
    with torch.no_grad():
        return float(torch.linalg.vector_norm(t.detach().double() if t.is_floating_point()
                                              else t.detach().to(torch.float64)))


def grad_info(entry: TensorEntry) -> GradInfo | None:
    """Norms of one parameter's gradient and value; None for what cannot have a gradient."""
    snap = _snapshot_one(entry)
    return None if snap is None else _info(*snap)


def _snapshot_one(entry: TensorEntry):
    if entry.kind != PARAMETER or not entry.is_loaded:
        return None
    p = entry.tensor()
    if p.device.type == "meta" or p.dtype.is_complex:
        return None
    return p, p.grad


def _info(p: torch.Tensor, g: torch.Tensor | None) -> GradInfo:
    weight = _norm(p)
    if g is None:
        return GradInfo(None, weight)
    bad = int((~torch.isfinite(g)).sum()) if g.is_floating_point() else 0
    return GradInfo(_norm(g), weight, bad)


def grad_snapshot(entries: Iterable[TensorEntry]) -> list[tuple[str, int, torch.Tensor, torch.Tensor | None]]:
    """``(name, parameter id, parameter, its .grad)`` for every parameter entry, read NOW.

    Call it on the thread that runs the user's training code (the GUI thread): ``.grad`` is
    rebound by ``backward()`` and ``zero_grad()`` without the GIL's protection (the autograd
    engine writes it from C++), so reading it from a worker can crash the process. The worker
    then computes norms of the tensors held here, which stay alive whatever happens to ``.grad``.
    """
    out = []
    for e in entries:
        snap = _snapshot_one(e)
        if snap is not None:
            out.append((e.name, id(snap[0]), *snap))
    return out


def grad_info_of(snapshot, cancelled=lambda: False) -> dict[str, GradInfo]:
    """``{name: GradInfo}`` from a ``grad_snapshot``; tied names share one computation. Safe
    off the GUI thread."""
    by_id: dict[int, GradInfo] = {}
    out: dict[str, GradInfo] = {}
    for name, key, p, g in snapshot:
        if cancelled():
            from ..errors import Cancelled
            raise Cancelled()
        if key not in by_id:
            by_id[key] = _info(p, g)
        out[name] = by_id[key]
    return out


def distinct_parameters(entries: Iterable[TensorEntry]) -> list[torch.nn.Parameter]:
    """Each ``Parameter`` object once (ties share one), in order."""
    seen: set[int] = set()
    out = []
    for e in entries:
        if e.kind != PARAMETER or not e.is_loaded:
            continue
        p = e.tensor()
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def pooled(infos: Iterable[GradInfo | None]) -> GradInfo | None:
    """The norm of all gradients as one vector (``clip_grad_norm_``'s total norm); None when
    no parameter there has a gradient."""
    infos = [i for i in infos if i is not None]
    with_grad = [i for i in infos if i.norm is not None]
    if not with_grad:
        return None
    norm = math.sqrt(sum(i.norm ** 2 for i in with_grad))
    weight = math.sqrt(sum(i.weight_norm ** 2 for i in with_grad))
    return GradInfo(norm, weight, sum(i.nonfinite for i in with_grad))


def all_grad_info(entries: Iterable[TensorEntry], cancelled=lambda: False) -> dict[str, GradInfo]:
    """``{name: GradInfo}`` for every parameter entry, on the calling thread."""
    return grad_info_of(grad_snapshot(entries), cancelled)


def pooled_for(entries: Iterable[TensorEntry], infos: dict[str, GradInfo]) -> GradInfo | None:
    """Pooled gradient norm of the distinct parameters among ``entries``."""
    seen: set[int] = set()
    chosen = []
    for e in entries:
        if e.name in infos and e.is_loaded and id(e.tensor()) not in seen:
            seen.add(id(e.tensor()))
            chosen.append(infos[e.name])
    return pooled(chosen)


def format_norm(value: float | None) -> str:
    if value is None:
        return "none"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.2e}"
