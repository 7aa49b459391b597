"""What ``t["NAME"]`` and ``ref["NAME"]`` read in an expression: tensors of the document and of
the reference, handed in as plain lookups (this package never imports the model)."""
from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import UserError

#: the names that take a tensor name, and what they read
SOURCES = {"t": "the document", "ref": "the reference"}
NO_REFERENCE = "no reference is open: File > Compare With…"

Lookup = Callable[[str], torch.Tensor]

#: the tensors the running evaluation reads, by (source, name); set by ``evaluate``
CURRENT: ContextVar[dict] = ContextVar("expression_tensors", default={})


@dataclass(frozen=True)
class Env:
    """``tensors(name)`` for ``t[...]`` and ``ref(name)`` for ``ref[...]``; each raises KeyError
    for a name it does not hold. A missing lookup means that source is not available."""
    tensors: Lookup | None = None
    ref: Lookup | None = None

    def read(self, source: str, name: str) -> torch.Tensor:
        lookup = self.tensors if source == "t" else self.ref
        if lookup is None:
            if source == "ref":
                raise UserError(f'ref["{name}"]: {NO_REFERENCE} (in a recipe: an input named ref)')
            raise UserError(f't["{name}"]: no document to read tensors from here')
        try:
            value = lookup(name)
        except KeyError:
            raise UserError(f"{SOURCES[source]} has no tensor named {name!r}") from None
        if not isinstance(value, torch.Tensor):  # pragma: no cover - a lookup's own mistake
            raise UserError(f"{SOURCES[source]}: {name!r} is not a tensor")
        return value


def label(source: str, name: str) -> str:
    return f'{source}["{name}"]'
