"""Tell a checkpoint's format from its content, not only its name."""
from __future__ import annotations

import json
import os
import stat
import struct
import zipfile

from ..errors import CheckpointError
from .zip_inflation import refuse_inflating_zipfile, refuse_inflation
from .zip_names import central_listing

TORCH_ZIP, TORCH_LEGACY, SAFETENSORS, TORCHSCRIPT, SHARDED = (
    "torch", "torch-legacy", "safetensors", "torchscript", "sharded")

_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
_MAX_INDEX_BYTES = 64 * 1024 * 1024
#: torch's legacy magic number (0x1950a86a20f9469cfc6c) as written by pickle protocols 0 and 1
_LEGACY_MAGIC_PROTO0 = b"L119547037146038801333356L"[:16]


def require_regular(path: str) -> int:
    """``st_mode`` of ``path`` when it is a regular file or a folder; CheckpointError otherwise.

    Checked before anything is opened: opening a FIFO blocks until a writer comes, and a device
    can be read forever.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        what = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
        raise CheckpointError(f"{path} is {what}, not a regular file or folder; it was not opened")
    return mode


def detect(path: str) -> str:
    """One of the format constants above; raises ValueError with a reason when none fits."""
    if os.path.isdir(path) or path.endswith(".index.json"):
        return SHARDED
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise ValueError("the file is empty")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        names = _zip_names(path)  # refuses a zip bomb: every reader of a zip kind starts here
        if any(n == ".data/extern_modules" or n.endswith("/.data/extern_modules") for n in names):
            raise ValueError(
                "it is a torch.package archive: its model is pickled together with the Python "
                "code packaged inside it, which paramedit does not run; load it in code you trust "
                "with torch.package.PackageImporter and save its state_dict()")
        return TORCHSCRIPT if _is_torchscript(names) else TORCH_ZIP
    if _looks_like_safetensors(path, head):
        return SAFETENSORS
    if len(head) >= 2 and head[:1] == b"\x80" and 2 <= head[1] <= 5 or head.startswith(_LEGACY_MAGIC_PROTO0):
        return TORCH_LEGACY
    if head[:1] == b"{" and path.endswith(".json"):
        return SHARDED
    if len(head) < 16 and head[:1] in (b"\x80", b"P", b"{"):
        raise ValueError(f"it is truncated: only {len(head)} byte{'s' if len(head) > 1 else ''}")
    raise ValueError("it is not a checkpoint (no torch zip, pickle, safetensors or TorchScript content)")


def _zip_names(path: str) -> list[str]:
    """The member names; ValueError for a zip whose compressed members expand far beyond the
    file (``zip_inflation``), before any reader inflates one."""
    found = central_listing(path)  # 100k members: zipfile builds a ZipInfo each (1 s)
    if found is not None:
        names, compressed = found
        refuse_inflation([(m.name, m.size) for m in compressed], os.path.getsize(path))
        return names
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise ValueError(f"it is a truncated or corrupt zip archive (a partial download?): "
                         f"{exc}") from None
    with z:
        refuse_inflating_zipfile(z, path)
        return z.namelist()


def _looks_like_safetensors(path: str, head: bytes) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 2 <= n <= min(_MAX_SAFETENSORS_HEADER, os.path.getsize(path) - 8)


def _is_torchscript(names: list[str]) -> bool:
    """TorchScript archives carry compiled code (``<archive>/code/...``) beside the data."""
    return any("/code/" in n or n.endswith("constants.pkl") for n in names)


def read_index(path: str) -> tuple[str, dict]:
    """(folder, parsed index.json) for a sharded checkpoint given as folder or index file."""
    if os.path.isdir(path):
        try:
            listing = os.listdir(path)
        except OSError as exc:
            raise ValueError(f"the folder cannot be listed: {exc.strerror or exc}") from None
        candidates = sorted(f for f in listing if f.endswith(".index.json"))
        if not candidates:
            raise ValueError("the folder holds no *.index.json of a sharded checkpoint")
        if len(candidates) > 1:
            preferred = [c for c in candidates if "safetensors" in c]
            candidates = preferred or candidates
        index_path = os.path.join(path, candidates[0])
    else:
        index_path = path
    require_regular(index_path)
    try:
        if os.path.getsize(index_path) > _MAX_INDEX_BYTES:
            raise ValueError(f"{os.path.basename(index_path)} is larger than any index "
                             f"({_MAX_INDEX_BYTES // 2**20} MiB)")
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        detail = "it nests too deeply" if isinstance(exc, RecursionError) else exc
        raise ValueError(f"{os.path.basename(index_path)} is not a readable index: {detail}") from None
    if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
        raise ValueError(f"{os.path.basename(index_path)} has no weight_map")
    return os.path.dirname(os.path.abspath(index_path)), index
