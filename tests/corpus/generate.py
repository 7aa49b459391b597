"""A corpus of broken and hostile checkpoint files, generated (no binary blobs in the repo).

Every case is a function ``(folder, marker) -> path`` registered in ``CASES``; it writes one file
(or folder) under ``folder`` and returns the path to open. ``marker`` is a file that a malicious
payload would create: it must never exist after opening. Write them all with
``python -m tests.corpus.generate OUTDIR``.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys
import zipfile
from pathlib import Path
from typing import Callable

import torch

CASES: dict[str, Callable[[Path, Path], Path]] = {}
#: cases that must open (exit 0); every other case may be refused (exit 2) with one line
OPENS: set[str] = set()
#: a phrase the one error line must contain
SAYS: dict[str, str] = {}


def case(name: str = None, opens: bool = False, says: str | None = None):
    def register(fn):
        key = name or fn.__name__
        CASES[key] = fn
        if opens:
            OPENS.add(key)
        if says:
            SAYS[key] = says
        return fn
    return register


# -- helpers -----------------------------------------------------------------------------------
def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def torch_zip(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def zip_with_data_pkl(payload: bytes) -> bytes:
    """A torch zip archive (records as torch writes them) whose data.pkl is ``payload``."""
    src, out = io.BytesIO(torch_zip({})), io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = payload if info.filename.endswith("/data.pkl") else zin.read(info)
            zout.writestr(info.filename, data)
    return out.getvalue()


def script_archive_with_data_pkl(src: Path, dst: Path, edit: Callable[[bytes], bytes]) -> Path:
    """The TorchScript archive ``src`` rewritten to ``dst`` (same members, stored) with its
    data.pkl replaced by ``edit(data.pkl)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info.filename, edit(data) if info.filename.endswith("/data.pkl") else data)
    return dst


def rezipped(src: Path, dst: Path, deflate: Callable[[str], bool],
             edit: Callable[[bytes], bytes] = bytes) -> Path:
    """The zip ``src`` rewritten to ``dst`` with the members ``deflate(name)`` picks compressed
    (DEFLATE, level 9, as ``zip -9``) and its data.pkl replaced by ``edit(data.pkl)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/data.pkl"):
                data = edit(data)
            packed = deflate(info.filename)
            zout.writestr(info.filename, data, compresslevel=9 if packed else None,
                          compress_type=zipfile.ZIP_DEFLATED if packed else zipfile.ZIP_STORED)
    return dst


def pickles_deflated(name: str) -> bool:
    return name.endswith(".pkl")


#: MARKs in a deflated data.pkl: 24 MiB of pickle in 25 KB of file, ~1.2 GB to unpickle
BOMB_MARKS = 12 << 20


def behind_marks(data_pkl: bytes, n: int = BOMB_MARKS) -> bytes:
    """``data_pkl`` (protocol 2) behind ``n`` MARKs and as many POP_MARKs: the same objects, but
    the pure-Python unpicklers hold ``n`` lists at once (~73 bytes a MARK)."""
    assert data_pkl[:2] == b"\x80\x02", data_pkl[:2]
    return data_pkl[:2] + pickle.MARK * n + pickle.POP_MARK * n + data_pkl[2:]


def with_memo_index(data_pkl: bytes, index: int) -> bytes:
    """``data_pkl`` (protocol 2) first storing a None at memo ``index`` (LONG_BINPUT), then popping
    it: the same objects, but the C unpickler grows its memo array to ``2 * index`` entries."""
    assert data_pkl[:2] == b"\x80\x02", data_pkl[:2]
    put = pickle.NONE + pickle.LONG_BINPUT + struct.pack("<I", index) + pickle.POP
    return data_pkl[:2] + put + data_pkl[2:]


def legacy_file(obj_pickle: bytes, storage_keys: list | None = None) -> bytes:
    """A legacy (non-zip) torch.save file around the pickle ``obj_pickle``."""
    sys_info = {"protocol_version": 1001, "little_endian": sys.byteorder == "little",
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
            + pickle.dumps(sys_info, protocol=2) + obj_pickle
            + pickle.dumps(storage_keys or [], protocol=2))


def safetensors_bytes(header, data: bytes = b"", raw_header: bytes | None = None) -> bytes:
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def deep_list_pickle(depth: int) -> bytes:
    """``[[[...]]]`` ``depth`` levels deep, built without recursion (pickle would recurse)."""
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def bytearray8_of(length: int) -> bytes:
    """A pickle stating a BYTEARRAY8 of ``length`` bytes and holding two."""
    return b"\x80\x05" + pickle.BYTEARRAY8 + struct.pack("<Q", length) + b"ab" + pickle.STOP


def sharded(folder: Path, weight_map, shards: dict[str, bytes]) -> Path:
    folder.mkdir()
    for name, data in shards.items():
        (folder / name).write_bytes(data)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return folder


def valid_safetensors() -> bytes:
    from safetensors.torch import save
    return save({"w": torch.ones(2, 2)})


class _Opens:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# -- tiny and foreign files ------------------------------------------------------------------
@case(says="empty")
def empty_file(d, m): return _write(d / "empty.pt", b"")
@case()
def one_byte(d, m): return _write(d / "one.pt", b"\x80")
@case()
def two_bytes_pk(d, m): return _write(d / "pk.pt", b"PK")
@case(says="not a checkpoint")
def text_file(d, m): return _write(d / "text.pt", b"hello, not a checkpoint\n")
@case()
def random_bytes(d, m): return _write(d / "random.bin", bytes(range(256)) * 16)
@case(says="not a regular file")
def fifo(d, m):
    p = d / "pipe.pt"
    os.mkfifo(p)
    return p
@case(says="not a regular file")
def device(d, m): return Path("/dev/zero")


# -- torch zip and pickles ---------------------------------------------------------------------
@case(says="truncated or corrupt")
def truncated_zip(d, m):
    data = torch_zip({"w": torch.randn(500)})
    return _write(d / "trunc.pt", data[: len(data) // 2])
@case()
def truncated_zip_head(d, m): return _write(d / "trunc900.pt", torch_zip({"w": torch.randn(500)})[:900])
@case()
def zip_pickle_operand_57(d, m): return _write(d / "op57.pt", zip_with_data_pkl(b"\x80\x029."))
@case(opens=True)
def zip_pickle_binbytes_66(d, m): return _write(d / "op66.pt", zip_with_data_pkl(b"\x80\x03C\x03abcq\x00."))
@case(opens=True)
def zip_pickle_short_binunicode_140(d, m):
    return _write(d / "op140.pt", zip_with_data_pkl(b"\x80\x04\x8c\x01a\x94."))
@case()
def zip_pickle_garbage(d, m): return _write(d / "garbage.pt", zip_with_data_pkl(b"\x80\x02" + bytes(range(256))))
@case()
def zip_pickle_no_stop(d, m): return _write(d / "nostop.pt", zip_with_data_pkl(b"\x80\x02}q\x00"))
@case()
def zip_without_data_pkl(d, m):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("archive/version", "3\n")
    return _write(d / "nodata.pt", out.getvalue())
@case(says="bytearray8")
def zip_pickle_bytearray8_2_30(d, m):  # torch's unpickler stops at it; ours read it: 1 GiB
    return _write(d / "ba8.pt", zip_with_data_pkl(bytearray8_of(1 << 30)))
@case(says="bytearray8")
def legacy_bytearray8_2_30(d, m):
    return _write(d / "ba8_legacy.pt", legacy_file(bytearray8_of(1 << 30)))
@case()
def legacy_garbage(d, m): return _write(d / "legacy.pt", b"\x80\x02" + bytes(range(255, 0, -1)) * 4)
@case(says="--trust")
def malicious_zip(d, m):
    p = d / "evil.pt"
    torch.save({"w": torch.ones(2), "x": _Opens(m)}, p)
    return p
@case(says="--trust")
def malicious_legacy(d, m):
    p = d / "evil_legacy.pt"
    torch.save({"w": torch.ones(2), "x": _Opens(m)}, p, _use_new_zipfile_serialization=False)
    return p
@case(says="builtins.open")
def malicious_protocol1_inst(d, m):
    """A Python-2 style INST opcode calling ``open``: read only by our own unpickler."""
    payload = b"(" + pickle.dumps(str(m), protocol=0)[:-1] + b"S'w'\nibuiltins\nopen\n."
    return _write(d / "evil_inst.pt", legacy_file(payload))
@case(says="builtins.open")
def malicious_stack_global_hidden(d, m):
    """STACK_GLOBAL whose names come from the memo: the static scan cannot resolve them."""
    payload = (b"\x80\x04\x8c\x08builtins\x94\x8c\x04open\x94h\x00h\x01\x93"
               + pickle.dumps((str(m), "w"), protocol=4)[2:-1] + b"R.")
    return _write(d / "evil_stack.pt", zip_with_data_pkl(payload))
@case(says="--trust")
def global_name_with_newlines(d, m):
    """A global whose name would break the one-line error into several."""
    payload = b"\x80\x04\x8c\x02os\x94\x8c\x1dsystem\nerror: fake second line\x94\x93."
    return _write(d / "newline.pt", zip_with_data_pkl(payload))
@case(opens=True)
def self_referencing_list(d, m):
    loop = [torch.ones(1)]
    loop.append(loop)
    p = d / "loop.pt"
    torch.save({"loop": loop}, p)
    return p
@case(opens=True)
def self_referencing_dict(d, m):
    loop = {"w": torch.ones(1)}
    loop["me"] = loop
    p = d / "loopd.pt"
    torch.save(loop, p)
    return p
@case()
def nesting_5000_deep(d, m): return _write(d / "deep.pt", zip_with_data_pkl(deep_list_pickle(5000)))
@case()
def nesting_5000_deep_legacy(d, m): return _write(d / "deep_legacy.pt", legacy_file(deep_list_pickle(5000)))
@case(opens=True)
def nesting_100_deep(d, m): return _write(d / "deep100.pt", zip_with_data_pkl(deep_list_pickle(100)))
@case(says="paths")
def one_tensor_2_to_18_paths(d, m):
    x = [torch.ones(1)]
    for _ in range(18):
        x = [x, x]
    p = d / "paths.pt"
    torch.save(x, p)
    return p
@case()
def no_tensor_2_to_40_paths(d, m):
    x = {"a": 1}
    for _ in range(40):
        x = [x, x]
    p = d / "paths40.pt"
    torch.save({"x": x}, p)
    return p
@case(opens=True)
def key_of_5000_dotted_levels(d, m):
    p = d / "dots.pt"
    torch.save({"a." * 5000 + "w": torch.ones(1), "x": {"b." * 3000: 5}}, p)
    return p
@case(opens=True)
def colliding_names(d, m):
    p = d / "collide.pt"
    torch.save({"a.b": torch.ones(1), "a": {"b": torch.zeros(2)}, 1: torch.ones(3),
                "1": torch.ones(4), "": torch.ones(5), "tensor": torch.ones(6)}, p)
    return p
@case(opens=True)
def protocol1_zip(d, m):
    p = d / "p1.pt"
    torch.save({"w": torch.ones(2), "flag": True, "n": 3}, p, pickle_protocol=1)
    return p
@case(opens=True)
def protocol1_legacy(d, m):
    p = d / "p1_legacy.pt"
    torch.save({"w": torch.ones(2), "flag": True}, p, pickle_protocol=1,
               _use_new_zipfile_serialization=False)
    return p
@case(opens=True)
def numpy_values(d, m):
    import numpy as np
    p = d / "numpy.pt"
    torch.save({"w": torch.ones(2), "cfg": {"a": np.arange(3.0), "s": np.float32(1.5)}}, p)
    return p
@case(says="torch.package")
def torch_package(d, m):
    from torch.package import PackageExporter
    p = d / "package.pt"
    with PackageExporter(str(p)) as exp:
        exp.save_pickle("model", "model.pkl", {"w": torch.ones(2)})
    return p
@case(says="compressed and expands")
def zip_deflated_mark_bomb(d, m):  # 25 KB; torch.load unpickled 24 MiB of MARKs: 1.2 GB
    torch.save({"w": torch.ones(3)}, d / "plain.pt")
    return rezipped(d / "plain.pt", d / "bomb.pt", pickles_deflated, behind_marks)
@case(opens=True)
def zip_deflated_whole(d, m):  # zip -9 by hand: tensors too (torch cannot map those)
    torch.save({"w": torch.arange(1000.0), "b": torch.zeros(3)}, d / "plain.pt")
    return rezipped(d / "plain.pt", d / "zip9.pt", lambda _: True)
@case(opens=True)
def zip_crc_mismatch(d, m):
    data = bytearray(torch_zip({"w": torch.arange(64, dtype=torch.float32)}))
    i = bytes(data).find(struct.pack("<f", 33.0))
    data[i] ^= 0xFF
    return _write(d / "crc.pt", bytes(data))


# -- TorchScript ------------------------------------------------------------------------------
class _PrintsOnLoad(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))
        self.k = 3

    def forward(self, x):
        return x * self.w

    @torch.jit.export
    def __getstate__(self):
        return (self.w, self.k, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, int, bool]) -> None:
        print("PWNED-BY-SETSTATE")
        self.w = state[0]
        self.k = state[1]
        self.training = state[2]


@case(says="--trust")
def torchscript_setstate_prints(d, m):
    p = d / "script_state.pt"
    torch.jit.save(torch.jit.script(_PrintsOnLoad()), str(p))
    return p


def _linear_script(d: Path) -> Path:
    src = d / "script_src.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(src))
    return src


@case(says="--trust")
def torchscript_evil_data_pkl(d, m):
    evil = pickle.dumps(_Opens(m), protocol=2)
    return script_archive_with_data_pkl(_linear_script(d), d / "script_evil.pt", lambda _: evil)
@case(opens=True)
def torchscript_memo_index_2_26(d, m):  # the C unpickler's memo: 1 GiB
    return script_archive_with_data_pkl(_linear_script(d), d / "script_memo.pt",
                                        lambda data: with_memo_index(data, 1 << 26))
@case(says="--trust")
def torchscript_bytearray8_2_30(d, m):  # the pure-Python unpickler's bytearray(n): 1 GiB
    return script_archive_with_data_pkl(_linear_script(d), d / "script_ba8.pt",
                                        lambda _: bytearray8_of(1 << 30))

@case(says="compressed and expands")
def torchscript_deflated_mark_bomb(d, m):  # 27 KB; the lazy reader unpickled it: 1.2 GB
    return rezipped(_linear_script(d), d / "script_bomb.pt", pickles_deflated, behind_marks)
@case(opens=True)
def torchscript_deflated_pickles(d, m):
    return rezipped(_linear_script(d), d / "script_deflated.pt", pickles_deflated)


# -- safetensors --------------------------------------------------------------------------------
@case()
def st_header_is_list(d, m): return _write(d / "list.safetensors", safetensors_bytes([1, 2]))
@case()
def st_entry_not_dict(d, m): return _write(d / "nd.safetensors", safetensors_bytes({"w": 5}))
@case()
def st_offsets_string(d, m):
    return _write(d / "os.safetensors", safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [1], "data_offsets": "0,4"}}, b"\0" * 4))
@case()
def st_offsets_short(d, m):
    return _write(d / "short.safetensors", safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}, b"\0" * 4))
@case()
def st_offsets_reversed(d, m):
    return _write(d / "rev.safetensors", safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4))
@case()
def st_offsets_past_end(d, m):
    return _write(d / "past.safetensors", safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}, b"\0" * 4))
@case()
def st_shape_mismatch(d, m):
    return _write(d / "shape.safetensors", safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}}, b"\0" * 4))
@case()
def st_shape_negative(d, m):
    return _write(d / "neg.safetensors", safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4))
@case()
def st_unknown_dtype(d, m):
    return _write(d / "dt.safetensors", safetensors_bytes(
        {"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, b"\0" * 16))
@case()
def st_metadata_list(d, m):
    return _write(d / "meta.safetensors", safetensors_bytes(
        {"__metadata__": ["x"], "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4))
@case()
def st_100k_deep_json(d, m):
    return _write(d / "deep.safetensors", safetensors_bytes(None, raw_header=b"{\"a\":" + b"[" * 100_000 + b"]" * 100_000 + b"}"))
@case()
def st_header_not_utf8(d, m): return _write(d / "utf.safetensors", safetensors_bytes(None, raw_header=b"{\xff\xfe}"))
@case(opens=True)
def st_aliases_invented(d, m):
    from safetensors.torch import save
    aliases = {f"ghost{i}": "w" for i in range(10_000)}
    aliases.update({"x": "missing", "": "w", "a..b": "w", "w2": 5})
    data = save({"w": torch.ones(2)}, metadata={"paramedit.aliases": json.dumps(aliases),
                                                  "paramedit.order": json.dumps(["nope", 3])})
    return _write(d / "aliases.safetensors", data)


# -- sharded -------------------------------------------------------------------------------------
@case()
def shard_empty(d, m): return sharded(d / "empty_shard", {"w": "a.safetensors"}, {"a.safetensors": b""})
@case()
def shard_not_checkpoint(d, m):
    return sharded(d / "text_shard", {"w": "a.safetensors"}, {"a.safetensors": b"hello world, no shard"})
@case()
def shard_weight_map_int(d, m): return sharded(d / "int_map", {"w": 3}, {})
@case()
def shard_weight_map_list(d, m):
    (d / "lst").mkdir()
    (d / "lst" / "model.safetensors.index.json").write_text(json.dumps({"weight_map": ["a"]}))
    return d / "lst"
@case()
def shard_path_traversal(d, m):
    (d / "outside.safetensors").write_bytes(valid_safetensors())
    return sharded(d / "trav", {"w": "../outside.safetensors"}, {})
@case()
def shard_missing(d, m): return sharded(d / "missing", {"w": "nope.safetensors"}, {})
@case()
def shard_missing_tensor(d, m):
    return sharded(d / "mt", {"w": "a.safetensors", "ghost": "a.safetensors"}, {"a.safetensors": valid_safetensors()})
@case()
def shard_is_fifo(d, m):
    folder = sharded(d / "fifo_shard", {"w": "a.safetensors"}, {})
    os.mkfifo(folder / "a.safetensors")
    return folder
@case()
def shard_index_deep_json(d, m):
    (d / "dj").mkdir()
    (d / "dj" / "x.index.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    return d / "dj"
@case()
def folder_without_index(d, m):
    (d / "plain").mkdir()
    return d / "plain"
@case()
def unreadable_folder(d, m):
    folder = d / "locked"
    folder.mkdir()
    (folder / "x.index.json").write_text("{}")
    folder.chmod(0)
    return folder


# -- torch.distributed.checkpoint folders: .metadata is a pickle ------------------------------
def _dcp(d, hook=None, values=None):
    from tests.dcp_make import write_chunked
    return Path(write_chunked(d / "dcp", {"w": torch.ones(4, 2)}, values=values, metadata_hook=hook))
@case(says="never needs")
def dcp_metadata_runs_code(d, m):
    folder = _dcp(d)
    (folder / ".metadata").write_bytes(pickle.dumps(_Opens(m)))
    return folder
@case(says="weights-only")
def dcp_value_runs_code(d, m):
    return _dcp(d, values={"step": _Opens(m)})
@case(says="not a file of the folder")
def dcp_chunk_outside_folder(d, m):
    def escape(meta):
        for info in meta.storage_data.values():
            info.relative_path = "../../../etc/passwd"
    return _dcp(d, escape)
@case(says="truncated")
def dcp_truncated_distcp(d, m):
    folder = _dcp(d)
    data = (folder / "__1_0.distcp").read_bytes()
    (folder / "__1_0.distcp").write_bytes(data[:len(data) // 2])
    return folder
@case(says="chunk")
def dcp_chunk_outside_shape(d, m):
    def shift(meta):
        chunk = meta.state_dict_metadata["w"].chunks[-1]
        chunk.offsets = torch.Size([3, 0])
    return _dcp(d, shift)
@case(says="BYTEARRAY8")
def dcp_metadata_bytearray8_2_30(d, m):
    folder = _dcp(d)
    (folder / ".metadata").write_bytes(bytearray8_of(1 << 30))
    return folder
@case(says="not a readable DCP metadata")
def dcp_metadata_truncated(d, m):
    folder = _dcp(d)
    data = (folder / ".metadata").read_bytes()
    (folder / ".metadata").write_bytes(data[:len(data) // 2])
    return folder
@case(opens=True)
def dcp_valid(d, m):
    return _dcp(d, values={"step": 3})
@case(says="config.json")
def hf_folder_config_not_json(d, m):
    folder = d / "hf"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(valid_safetensors())
    (folder / "config.json").write_bytes(b"[" * 100_000)
    return folder

def generate(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    marker = out / "MARKER-must-not-exist"
    paths = {}
    for name, make in CASES.items():
        sub = out / name
        sub.mkdir(exist_ok=True)
        paths[name] = make(sub, marker)
    return paths


if __name__ == "__main__":
    for name, path in generate(Path(sys.argv[1] if len(sys.argv) > 1 else "corpus")).items():
        print(f"{name}\t{path}")
