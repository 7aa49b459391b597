"""TorchScript archives: a module tree with parameters and buffers, via ``torch.jit.load``."""
from __future__ import annotations

import torch

from ..document import Document
from ..errors import CheckpointError


def load_torchscript(path: str) -> Document:
    try:
        module = torch.jit.load(path, map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path} is not a loadable TorchScript archive: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from None
    return Document.from_module(module, path=path, fmt="torchscript")
