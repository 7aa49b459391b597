"""TorchScript archives: a module tree with parameters and buffers.

Read lazily by ``torchscript_lazy`` (restricted unpickling of ``data.pkl``, nothing executed,
tensors memory-mapped copy-on-write). An archive it does not understand is refused with
``UntrustedCodeError``: ``torch.jit.load`` would run the archive's code (``__setstate__`` can
print, loop forever, ...), so it is used only when the user trusts the file (``--trust``, the
window's trust dialog).
"""
from __future__ import annotations

import logging

import torch

from ..model.document import Document
from ..errors import CheckpointError, UntrustedCodeError
from .torchscript_lazy import NotUnderstood, read_torchscript

log = logging.getLogger(__name__)


def load_torchscript(path: str, trust: bool = False) -> Document:
    try:
        return read_torchscript(path)
    except NotUnderstood as exc:
        reason = str(exc)
    except (CheckpointError, RecursionError, MemoryError):
        raise
    except Exception as exc:  # a reader bug: still never a silent fall back to running code
        log.warning("%s: lazy TorchScript reader failed", path, exc_info=True)
        reason = f"{type(exc).__name__}: {exc}"
    if not trust:
        raise UntrustedCodeError(
            path, f"TorchScript code ({_short(reason)})",
            f"{path} is a TorchScript archive that paramedit cannot read without running its "
            f"code ({_short(reason)}); it was not loaded. Open it only if you trust its source "
            "(--trust on the command line).")
    return _run_torchscript_trusted(path)


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 100 else text[:97] + "..."


def _run_torchscript_trusted(path: str) -> Document:
    """The whole archive through ``torch.jit.load``: ONLY for trusted files (it runs their code)."""
    try:
        module = torch.jit.load(path, map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path} is not a loadable TorchScript archive: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from None
    return Document.from_module(module, path=path, fmt="torchscript")
