"""Sharded safetensors: ``model-0000k-of-0000n.safetensors`` files plus ``model.safetensors.index.json``.

The index is the single commit point. New shards never take the name of a file that exists:
where the plain names are taken (a re-save), they get a short random token
(``model-<token>-00001-of-00002.safetensors``). Shards are written, synced and renamed into
their new names first; then the index is replaced in one rename; only then are the shards that
no index names any more removed. A save killed anywhere leaves a folder that loads as entirely
old or entirely new, plus leftovers (temporaries, unnamed shards) the next save there removes.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import struct

from ..model.document import Document
from ..errors import UserError
from ..model.tensor_entry import TensorEntry
from .safetensors_file import ALIASES_KEY, ORDER_KEY
from .safetensors_writer import paramedit_metadata, plan, write_safetensors

try:
    import fcntl
except ImportError:
    fcntl = None  # type: ignore[assignment]

INDEX_NAME = "model.safetensors.index.json"
SHARD_RE = re.compile(r"^model-(?:[0-9a-f]{8}-)?\d{5}-of-\d{5}\.safetensors$")


def split(stored: list[TensorEntry], shard_size: int) -> list[list[TensorEntry]]:
    """Consecutive groups of at most ``shard_size`` bytes (a larger tensor gets its own shard)."""
    shards: list[list[TensorEntry]] = [[]]
    size = 0
    for e in stored:
        if shards[-1] and size + e.nbytes > shard_size:
            shards.append([])
            size = 0
        shards[-1].append(e)
        size += e.nbytes
    return shards


def shard_names(folder: str, n: int) -> list[str]:
    """Plain names when none of them exists in ``folder``, else names with a fresh token."""
    plain = [f"model-{k:05d}-of-{n:05d}.safetensors" for k in range(1, n + 1)]
    if not any(os.path.lexists(os.path.join(folder, p)) for p in plain):
        return plain
    while True:
        token = secrets.token_hex(4)
        names = [f"model-{token}-{k:05d}-of-{n:05d}.safetensors" for k in range(1, n + 1)]
        if not any(os.path.lexists(os.path.join(folder, p)) for p in names):
            return names


def write_sharded(doc: Document, out_path: str, shard_size: int, stager,
                  tied: str = "once") -> tuple[str, dict[str, str]]:
    """Write shards then the index; returns (index path, metadata the reader will see).
    ``tied="every"`` writes every name of a tie group as its own copy."""
    from .save import TIED_EVERY, remove_leftovers, saved_entries, step
    if out_path.endswith(".index.json"):
        folder, index_path = os.path.dirname(os.path.abspath(out_path)), out_path
    else:
        folder, index_path = out_path, os.path.join(out_path, INDEX_NAME)
    created = _make_folders(folder)
    try:
        with _FolderLock(folder):
            index_name = os.path.basename(index_path)
            remove_leftovers(folder, lambda b: b == index_name or SHARD_RE.match(b) is not None)
            _remove_orphan_shards(folder)
            old_shards = _shards_named(index_path)
            entries = saved_entries(doc)
            stored, aliases = (entries, {}) if tied == TIED_EVERY else plan(entries)
            names = [e.name for e in entries]
            shards = split(stored, max(int(shard_size), 1))
            base = {k: v for k, v in doc.metadata.items() if k not in (ALIASES_KEY, ORDER_KEY)}
            weight_map: dict[str, str] = {}
            for shard, group in zip(shard_names(folder, len(shards)), shards):
                group_names = [e.name for e in group]
                stager.stage(os.path.join(folder, shard),
                             lambda f, g=group, n=group_names: write_safetensors(f, g, base, n, {}))
                weight_map.update({n: shard for n in group_names})
            meta = paramedit_metadata(base, names, aliases)
            index = {"metadata": {"total_size": sum(e.nbytes for e in stored), **meta},
                     "weight_map": weight_map}
            text = json.dumps(index, indent=2).encode("utf-8")
            stager.stage(index_path, lambda f: f.write(text))
            stager.commit()  # new shards under new names, then the index: the commit point
            for stale in sorted(old_shards - set(weight_map.values())):
                try:
                    os.unlink(os.path.join(folder, stale))
                except OSError:
                    continue
                step(f"removed {stale}")
    except BaseException:
        _remove_empty(created)
        raise
    return index_path, meta


def _make_folders(folder: str) -> list[str]:
    """Create ``folder`` (and missing parents); returns those created, deepest first."""
    created = []
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        created.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder {folder}: {exc.strerror or exc}") from None
    return created


def _remove_empty(created: list[str]) -> None:
    """A failed Save As leaves no new folder behind (only folders it made, and only if empty)."""
    for path in created:
        try:
            os.rmdir(path)
        except OSError:
            return


class _FolderLock:
    """One save at a time per folder (a second process's save is refused, not interleaved)."""

    def __init__(self, folder: str):
        self.folder, self.fd = folder, None

    def __enter__(self):
        if fcntl is None:
            return self
        try:
            self.fd = os.open(self.folder, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise UserError(f"another save to {self.folder} is in progress") from None
        except OSError:
            if self.fd is not None:
                os.close(self.fd)
            self.fd = None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
        return False


def _shards_named(index_path: str) -> set[str]:
    try:
        with open(index_path, encoding="utf-8") as f:
            weight_map = json.load(f).get("weight_map") or {}
    except (OSError, ValueError, AttributeError):
        return set()
    if not isinstance(weight_map, dict):
        return set()
    return {s for s in weight_map.values() if isinstance(s, str) and os.path.basename(s) == s}


def _remove_orphan_shards(folder: str) -> None:
    """Shards this program wrote (its metadata in the header) that no index in ``folder`` names:
    a save killed between renaming its shards in and replacing the index left them."""
    try:
        listing = os.listdir(folder)
    except OSError:
        return
    named: set[str] = set()
    for name in listing:
        if name.endswith(".index.json"):
            named |= _shards_named(os.path.join(folder, name))
    for name in listing:
        if SHARD_RE.match(name) and name not in named and _written_here(os.path.join(folder, name)):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def _written_here(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                return False
            (n,) = struct.unpack("<Q", head)
            if n > 100 * 1024 * 1024:
                return False
            header = json.loads(f.read(n))
    except (OSError, ValueError):
        return False
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(meta, dict) and ORDER_KEY in meta
