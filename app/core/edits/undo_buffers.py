"""What value edits share: the distinct tensors behind a list of names, the saved old values
of a region (the undo buffer), writing new values with roll-back, and RNG replay for redo."""
from __future__ import annotations

from contextlib import contextmanager

import torch

from ..errors import UserError
from ..model.document import Document


def _storage_key(t: torch.Tensor) -> tuple:
    return (t.device.type, t.untyped_storage().data_ptr())


def _units(doc: Document, names: list[str]) -> tuple[list[tuple[str, torch.Tensor]], list[str]]:
    """One ``(name, tensor)`` per distinct tensor, and every alias name, in order."""
    units, touched, seen = [], [], set()
    for n in names:
        if n not in doc.tensors:
            raise UserError(f"there is no tensor named {n!r}")
        if n in touched:
            continue
        touched.extend(a for a in doc.aliases(n) if a not in touched)
        t = doc.tensor(n)
        if id(t) not in seen:
            seen.add(id(t))
            units.append((n, t))
    return units, touched


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _write(saved: list[tuple[torch.Tensor, tuple, torch.Tensor]], news: list) -> None:
    """``t[idx] = new`` for each; on a failure, restores what was written and raises UserError."""
    done = 0
    try:
        with torch.no_grad():
            for (t, idx, _old), new in zip(saved, news):
                t[idx] = new
                done += 1
    except Exception as exc:
        with torch.no_grad():
            for t, idx, old in saved[:done]:
                t[idx] = old
        raise UserError(f"the edit could not be written: {str(exc).splitlines()[0]}") from None


def _restore(saved) -> None:
    with torch.no_grad():
        for t, idx, old in reversed(saved):
            t[idx] = old


def _save_old(t: torch.Tensor, idx: tuple) -> torch.Tensor:
    region = t[idx]
    if region.untyped_storage().data_ptr() == t.untyped_storage().data_ptr():
        region = region.clone()  # a view: copy just the region (advanced indexing already copied)
    return region


class _Rng:
    """Remembers the RNG state of the first run; later runs replay it without touching the global one."""

    def __init__(self) -> None:
        self.state = None

    @contextmanager
    def __call__(self, devices):
        cuda = sorted({d.index if d.index is not None else torch.cuda.current_device()
                       for d in devices if d.type == "cuda"})
        if self.state is None:
            self.state = (torch.get_rng_state(), [torch.cuda.get_rng_state(i) for i in cuda])
            yield
            return
        with torch.random.fork_rng(devices=cuda):
            torch.set_rng_state(self.state[0])
            for i, s in zip(cuda, self.state[1]):
                torch.cuda.set_rng_state(s, i)
            yield


def _step_target(step: dict, targets: list[str], glob: str | None) -> dict:
    """``target`` is the glob, the one name, or the first name plus a ``targets`` list."""
    if glob is not None:
        step["target"] = glob
    else:
        step["target"] = targets[0]
        if len(targets) > 1:
            step["targets"] = list(targets)
    return step
