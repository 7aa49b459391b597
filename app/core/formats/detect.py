"""Tell a checkpoint's format from its content, not only its name."""
from __future__ import annotations

import json
import os
import struct
import zipfile

TORCH_ZIP, TORCH_LEGACY, SAFETENSORS, TORCHSCRIPT, SHARDED = (
    "torch", "torch-legacy", "safetensors", "torchscript", "sharded")

_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


def detect(path: str) -> str:
    """One of the format constants above; raises ValueError with a reason when none fits."""
    if os.path.isdir(path) or path.endswith(".index.json"):
        return SHARDED
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise ValueError("the file is empty")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return TORCHSCRIPT if _is_torchscript(path) else TORCH_ZIP
    if _looks_like_safetensors(path, head):
        return SAFETENSORS
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:
        return TORCH_LEGACY
    if head[:1] == b"{" and path.endswith(".json"):
        return SHARDED
    raise ValueError("it is not a checkpoint (no torch zip, pickle, safetensors or TorchScript content)")


def _looks_like_safetensors(path: str, head: bytes) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 2 <= n <= min(_MAX_SAFETENSORS_HEADER, os.path.getsize(path) - 8)


def _is_torchscript(path: str) -> bool:
    """TorchScript archives carry compiled code (``<archive>/code/...``) beside the data."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any("/code/" in n or n.endswith("constants.pkl") for n in names)


def read_index(path: str) -> tuple[str, dict]:
    """(folder, parsed index.json) for a sharded checkpoint given as folder or index file."""
    if os.path.isdir(path):
        candidates = sorted(f for f in os.listdir(path) if f.endswith(".index.json"))
        if not candidates:
            raise ValueError("the folder holds no *.index.json of a sharded checkpoint")
        if len(candidates) > 1:
            preferred = [c for c in candidates if "safetensors" in c]
            candidates = preferred or candidates
        index_path = os.path.join(path, candidates[0])
    else:
        index_path = path
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{os.path.basename(index_path)} is not a readable index: {exc}") from None
    if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
        raise ValueError(f"{os.path.basename(index_path)} has no weight_map")
    return os.path.dirname(os.path.abspath(index_path)), index
