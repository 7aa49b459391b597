"""One named tensor of a document, read lazily."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

PARAMETER = "parameter"
BUFFER = "buffer"
TENSOR = "tensor"


from .dtypes import _element_size, dtype_name, layout_name  # noqa: F401  (dtype_name: re-exported)


@dataclass(eq=False, slots=True, weakref_slot=True)
class TensorEntry:
    """A tensor known by name, shape and dtype; its data is read on the first ``tensor()`` call.

    Build one with ``TensorEntry.of(name, tensor)`` (already in memory) or
    ``TensorEntry.lazy(name, shape, dtype, loader)`` (read when first shown or edited).

    Parameters
    ----------
    name : str
        The full dotted name, as in ``state_dict()`` or the file.
    kind : str
        ``"parameter"``, ``"buffer"`` or ``"tensor"`` (when the file cannot tell).
    shape : tuple of int
        Known without reading the data.
    dtype : torch.dtype
        Known without reading the data.
    shared_with, owner, attr, path, persistent : optional
        As under Attributes; the constructors above fill them in.

    Attributes
    ----------
    shared_with : list of str
        The other names aliasing the same storage (tied tensors).
    owner, attr : nn.Module, str
        Set for tensors that live in a module (live models, TorchScript): ``owner.attr``.
    path : tuple
        The keys locating the tensor inside a nested checkpoint container; the key path, not
        the name, is what saving writes back.
    persistent : bool
        False for a module's non-persistent buffer: shown, never saved (as ``state_dict()``).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    _tensor: torch.Tensor | None = None
    _loader: Callable[[], torch.Tensor] | None = None
    shared_with: list[str] = field(default_factory=list)
    owner: Any = None
    attr: str | None = None
    path: tuple = ()
    persistent: bool = True

    @classmethod
    def of(cls, name: str, tensor: torch.Tensor, kind: str = TENSOR, **kw) -> "TensorEntry":
        return cls(name, kind, tuple(tensor.shape), tensor.dtype, _tensor=tensor, **kw)

    @classmethod
    def lazy(cls, name: str, shape, dtype: torch.dtype, loader: Callable[[], torch.Tensor],
             kind: str = TENSOR, **kw) -> "TensorEntry":
        return cls(name, kind, tuple(shape), dtype, _loader=loader, **kw)

    @property
    def is_loaded(self) -> bool:
        return self._tensor is not None

    def tensor(self) -> torch.Tensor:
        """The live tensor (loaded on first use). Edits change it in place."""
        if self._tensor is None:
            assert self._loader is not None, f"{self.name} has neither a tensor nor a loader"
            self._tensor = self._loader()
            self._loader = None
        return self._tensor

    def set_tensor(self, tensor: torch.Tensor) -> None:
        """Rebind the entry (structural edits such as casts only; value edits stay in place)."""
        self._tensor, self._loader = tensor, None
        self.shape, self.dtype = tuple(tensor.shape), tensor.dtype

    def refresh_meta(self) -> None:
        if self._tensor is not None:
            self.shape, self.dtype = tuple(self._tensor.shape), self._tensor.dtype

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def element_size(self) -> int:
        return _element_size(self.dtype)

    @property
    def nbytes(self) -> int:
        return self.numel * self.element_size

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)

    @property
    def layout(self) -> str:
        """"strided", "sparse_coo", "sparse_csr", ... (known once the tensor is read)."""
        t = self._tensor
        return "strided" if t is None else layout_name(t)

    @property
    def dtype_label(self) -> str:
        """The dtype with the layout when it is not plain (``float32, sparse_csr``)."""
        layout = self.layout
        return self.dtype_name if layout == "strided" else f"{self.dtype_name}, {layout}"

    @property
    def requires_grad(self) -> bool | None:
        """For parameters of a module: whether it is trainable; None when unknowable."""
        if self.kind != PARAMETER or self._tensor is None:
            return None
        return bool(self._tensor.requires_grad)
