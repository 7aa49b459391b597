"""Save As of a Hugging Face folder to another folder: the same layout.

The folder's other files (``config.json``, ``generation_config.json``, tokenizer files, ...) are
copied byte for byte, each atomically; the weights are written under the same name in the same
form (one ``model.safetensors``, ``pytorch_model.bin``, or shards and index no larger than the
largest original shard).
"""
from __future__ import annotations

import json
import os
import shutil

from ..errors import UserError
from ..model.document import Document
from .hf_folder import HfFolder

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".index.json")
#: side files larger than this are not copied (they are not configs or tokenizers)
_MAX_SIDE_FILE = 512 * 1024 * 1024


def side_files(hf: HfFolder) -> list[str]:
    """The folder's regular, visible files that are not weights, by name."""
    out = []
    for name in sorted(os.listdir(hf.folder)):
        full = os.path.join(hf.folder, name)
        if (name.startswith(".") or name.endswith(_WEIGHT_SUFFIXES) or os.path.islink(full)
                or not os.path.isfile(full) or os.path.getsize(full) > _MAX_SIDE_FILE):
            continue
        out.append(name)
    return out


def _largest_shard(doc: Document, hf: HfFolder) -> int | None:
    """The bytes of tensors the largest original shard held (what a shard may hold again)."""
    try:
        with open(hf.weights, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        sizes: dict[str, int] = {}
        for name, shard in weight_map.items():
            if name in doc.tensors:
                sizes[shard] = sizes.get(shard, 0) + doc.tensors[name].nbytes
        return max(sizes.values()) if sizes else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def save_hf_folder(doc: Document, out: str, **kw) -> str:
    """Write ``doc`` (opened from a Hugging Face folder) as the folder ``out``; returns the
    weights path written. ``kw`` goes to ``save_document`` (progress, cancelled, ...)."""
    from .save import SHARDED, atomic_write, save_document
    from .sharded_writer import _make_folders
    hf: HfFolder = doc.hf
    if os.path.abspath(out) == os.path.abspath(hf.folder):
        raise UserError(f"{out} is the folder the model was opened from; use Save")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"cannot save {out} as a model folder: a file has that name")
    _make_folders(out)
    for name in side_files(hf):  # configs first: a folder with weights always has its config
        src = os.path.join(hf.folder, name)
        atomic_write(os.path.join(out, name), lambda f, s=src: _copy(s, f))
    if hf.weights.endswith(".index.json"):
        written = save_document(doc, out, SHARDED, shard_size=_largest_shard(doc, hf), **kw)
    else:
        written = save_document(doc, os.path.join(out, os.path.basename(hf.weights)), **kw)
    hf.folder = os.path.abspath(out)
    hf.weights = written if os.path.isfile(written) else hf.weights
    return written


def _copy(src: str, f) -> None:
    with open(src, "rb") as s:
        shutil.copyfileobj(s, f)
