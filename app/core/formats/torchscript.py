"""TorchScript archives: a module tree with parameters and buffers.

Read lazily by ``torchscript_lazy`` (restricted unpickling of ``data.pkl``, nothing executed,
tensors memory-mapped copy-on-write); archives it does not understand fall back to
``torch.jit.load``, which reads every tensor.
"""
from __future__ import annotations

import logging

import torch

from ..document import Document
from ..errors import CheckpointError
from .torchscript_lazy import NotUnderstood, read_torchscript

log = logging.getLogger(__name__)


def load_torchscript(path: str) -> Document:
    try:
        return read_torchscript(path)
    except NotUnderstood as exc:
        log.info("%s: lazy TorchScript reader fell back to torch.jit.load (%s)", path, exc)
    except Exception:  # a reader bug must not stop an archive that jit.load opens from opening
        log.warning("%s: lazy TorchScript reader failed; using torch.jit.load", path, exc_info=True)
    return load_torchscript_jit(path)


def load_torchscript_jit(path: str) -> Document:
    """The whole archive through ``torch.jit.load``: a live ScriptModule, every tensor read."""
    try:
        module = torch.jit.load(path, map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path} is not a loadable TorchScript archive: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from None
    return Document.from_module(module, path=path, fmt="torchscript")
