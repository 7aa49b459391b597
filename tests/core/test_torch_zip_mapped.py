"""Plain torch zip checkpoints read without torch's zip reader (``torch_zip_mapped``): the same
objects ``torch.load(mmap=True, weights_only=True)`` returns, and everything else left to it."""
from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

from app.core.errors import CheckpointError, UnsafePickleError
from app.core.formats import load_document
from app.core.formats.torch_zip_mapped import NotPlain, Refused, load_zip_mapped
from app.core.formats.zip_names import central_members
from app.core.model.file_stamps import in_ranges, mapped_ranges
from tests.helpers.tensors import assert_bit_equal

FLOAT8 = [getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                                       "float8_e5m2fnuz", "float8_e8m0fnu") if hasattr(torch, n)]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64,
          torch.complex128, torch.bool, torch.int8, torch.int16, torch.int32, torch.int64,
          torch.uint8, torch.uint16, torch.uint32, torch.uint64, *FLOAT8]


def _every_dtype():
    g = torch.Generator().manual_seed(0)
    out = {}
    for d in DTYPES:
        base = torch.randn(3, 4, generator=g) * 4
        out[str(d)] = base.to(d) if d.is_floating_point or d.is_complex or d == torch.bool \
            else base.abs().to(torch.int64).to(d)
    out["scalar"], out["empty"] = torch.tensor(2.5), torch.zeros(0, 3)
    return out


def _ties_and_views():
    w = torch.arange(24.0).reshape(4, 6)
    return {"w": w, "tied": w, "rows": w[1:3], "t": w.t(), "col": w[:, 2], "other": w.clone()}


def _module_state():
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    return m.state_dict()  # an OrderedDict with _metadata, an int64 num_batches_tracked


def _training_checkpoint():
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    return {"epoch": 3, "step": 2 ** 70, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "config": {"dtype": torch.bfloat16, "shape": torch.Size([2, 3]), "tags": {"a", "b"},
                       "lr": 1e-3, "name": "run", "none": None,
                       "flags": (True, False), "layers": [1, 2, [3, {"x": 4.5}]]},
            "params": {"p": torch.nn.Parameter(torch.randn(3)),
                       "frozen": torch.nn.Parameter(torch.randn(2), requires_grad=False),
                       "leaf": torch.randn(2).requires_grad_()}}


PLAIN = {"every dtype": _every_dtype, "ties and views": _ties_and_views,
         "module state_dict": _module_state, "training checkpoint": _training_checkpoint}


def _same(a, b) -> None:
    assert_bit_equal(a, b, as_loaded=True)


def _tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
    return [t for v in items for t in _tensors(v)]


def _sharing(obj) -> list[int]:
    """Which tensors share a storage: the index of the first tensor with the same storage."""
    ts = _tensors(obj)
    ptrs = [t.untyped_storage().data_ptr() for t in ts]
    return [ptrs.index(p) for p in ptrs]


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("kind", list(PLAIN))
def test_plain_checkpoints_read_as_torch_load_reads_them(tmp_path, kind, protocol):
    path = str(tmp_path / "c.pt")
    torch.save(PLAIN[kind](), path, pickle_protocol=protocol)
    ours = load_zip_mapped(path)
    # torch's weights-only unpickler stops at protocol 4's frames; the file is the test's own
    theirs = torch.load(path, mmap=True, weights_only=protocol == 2)
    _same(ours, theirs)
    assert _sharing(ours) == _sharing(theirs)
    st = os.stat(path)  # each tensor views the file's mapping, none was read
    ranges = mapped_ranges({(st.st_dev, st.st_ino)})
    assert all(in_ranges(t.untyped_storage().data_ptr(), ranges) for t in _tensors(ours) if t.numel())


def test_a_plain_checkpoint_opens_as_a_document_with_its_ties(tmp_path):
    path = str(tmp_path / "c.pt")
    torch.save(_ties_and_views(), path)
    doc = load_document(path)
    assert doc.entry("w").shared_with == ["tied"]
    assert torch.equal(doc.entry("t").tensor(), torch.arange(24.0).reshape(4, 6).t())


def _with_pickle(tmp_path, data: bytes, compress=zipfile.ZIP_STORED, base=None) -> str:
    """A copy of a real torch.save file whose ``data.pkl`` is ``data``."""
    src = str(tmp_path / "src.pt")
    torch.save(base if base is not None else {"w": torch.ones(2)}, src)
    out = str(tmp_path / "edited.pt")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", compress) as zout:
        for info in zin.infolist():
            body = data if info.filename.endswith("/data.pkl") else zin.read(info)
            zout.writestr(info.filename, body)
    return out


def test_code_named_by_the_pickle_never_runs(tmp_path):
    marker = tmp_path / "ran"
    evil = pickle.dumps(_Runs(str(marker)), protocol=2)
    path = _with_pickle(tmp_path, evil)
    with pytest.raises(NotPlain):
        load_zip_mapped(path)
    with pytest.raises(UnsafePickleError):
        load_document(path)
    assert not marker.exists()


class _Runs:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _storage_pickle(body: bytes, key: bytes = b"0", numel: int = 2) -> bytes:
    """A protocol 2 pickle whose first stack item is a float32 storage (the file's key 0 holds
    2 elements), then ``body``."""
    return (b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" + key +
            b"X\x03\x00\x00\x00cpuK" + bytes([numel]) + b"tQ" + body + b".")


@pytest.mark.parametrize("why,data", [
    ("BUILD on a storage", _storage_pickle(b"}b")),
    ("a storage called", _storage_pickle(b")R")),
    ("a dtype called", _storage_pickle(b"0ctorch\nfloat32\n)R")),
    ("a global outside the list", _storage_pickle(b"0cbuiltins\neval\n")),
    ("a builtin outside the list", _storage_pickle(b"0c__builtin__\nlist\n)R")),
    ("the rebuild given a list", _storage_pickle(b"ctorch._utils\n_rebuild_tensor_v2\n]R")),
    ("a frozenset (outside torch's list)", _storage_pickle(b"0c__builtin__\nfrozenset\n")),
    ("a missing member", _storage_pickle(b"", key=b"1")),
    ("a storage larger than its member", _storage_pickle(b"", numel=9)),
    ("NEWOBJ", _storage_pickle(b"0ccollections\nOrderedDict\n)\x81")),
    ("INST", _storage_pickle(b"0(icollections\nOrderedDict\n")),
    ("EXT1", _storage_pickle(b"0\x82\x01")),
    ("text PUT", _storage_pickle(b"p99999999999\n")),
])
def test_what_the_reader_does_not_allow_is_left_to_torch_load(tmp_path, why, data):
    path = _with_pickle(tmp_path, data)
    with pytest.raises(NotPlain):
        load_zip_mapped(path)


def test_a_view_past_its_storage_is_refused_by_both_readers(tmp_path):
    data = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(" + _storage_pickle(b"")[2:-1] +
            b"K\x00K\x05\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR.")
    path = _with_pickle(tmp_path, data)
    with pytest.raises(Exception):
        load_zip_mapped(path)
    with pytest.raises(CheckpointError):
        load_document(path)


def test_a_huge_memo_index_costs_no_memory(tmp_path):
    """The C unpickler grows its memo to twice the index (8 GB for 0x20000000); ours is a dict."""
    status = "/proc/self/status"
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc")
    path = _with_pickle(tmp_path, b"\x80\x02Nr\x00\x00\x00\x20.")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak RSS starts again from here
    base = _kib(status, "VmRSS")
    load_zip_mapped(path)  # None: nothing to refuse, and nothing grew
    assert _kib(status, "VmHWM") - base < 256 * 1024


def _kib(status: str, field: str) -> int:
    with open(status) as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


@pytest.mark.parametrize("what", ["numpy scalar", "bytes", "quantized", "big-endian", "compressed"])
def test_less_plain_checkpoints_still_open_through_torch_load(tmp_path, what):
    obj = {"w": torch.arange(6.0)}
    if what == "numpy scalar":
        obj["best"] = np.float64(0.5)
    elif what == "bytes":
        obj["raw"] = b"\x00\x01"
    elif what == "quantized":
        obj["q"] = torch.quantize_per_tensor(torch.rand(4), 0.1, 2, torch.quint8)
    path = str(tmp_path / "c.pt")
    torch.save(obj, path)
    if what == "big-endian":
        path = _rewritten(tmp_path, path, {"byteorder": b"big"})
    elif what == "compressed":
        path = _rewritten(tmp_path, path, {}, zipfile.ZIP_DEFLATED)
    with pytest.raises(NotPlain):
        load_zip_mapped(path)
    if what in ("big-endian", "compressed"):
        return  # torch.load decides (byte-swapped, or refused for mmap); not ours to judge
    doc = load_document(path)
    assert torch.equal(doc.entry("w").tensor(), torch.arange(6.0))


def _rewritten(tmp_path, path, replace: dict, compress=zipfile.ZIP_STORED) -> str:
    out = str(tmp_path / "rewritten.pt")
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w", compress) as zout:
        for info in zin.infolist():
            key = info.filename.split("/", 1)[1]
            zout.writestr(info.filename, replace.get(key, zin.read(info)))
    return out


def test_zip64_fields_in_the_central_directory_are_read(tmp_path):
    """Checkpoints over 4 GiB give sizes and offsets in a zip64 extra field (0xFFFFFFFF in the
    record): here every record of a small file is rewritten that way."""
    path = str(tmp_path / "c.pt")
    torch.save(_ties_and_views(), path)
    wide = _with_zip64_records(path, str(tmp_path / "wide.pt"))
    assert [(m.name, m.size, m.header_offset) for m in central_members(wide)] == \
           [(i.filename, i.file_size, i.header_offset) for i in zipfile.ZipFile(wide).infolist()]
    _same(load_zip_mapped(wide), torch.load(path, mmap=True, weights_only=True))


def _with_zip64_records(path: str, out: str) -> str:
    raw = open(path, "rb").read()
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        infos = z.infolist()
    cd_start = min(_central_offsets(raw))
    records = b""
    pos = cd_start
    for _ in infos:
        n, m, k = struct.unpack_from("<HHH", raw, pos + 28)
        fixed = bytearray(raw[pos:pos + 46])
        comp, size = struct.unpack_from("<II", fixed, 20)
        (offset,) = struct.unpack_from("<I", fixed, 42)
        struct.pack_into("<II", fixed, 20, 0xFFFFFFFF, 0xFFFFFFFF)
        struct.pack_into("<I", fixed, 42, 0xFFFFFFFF)
        extra = struct.pack("<HHQQQ", 1, 24, size, comp, offset)
        struct.pack_into("<H", fixed, 30, len(extra))
        records += bytes(fixed) + raw[pos + 46:pos + 46 + n] + extra
        pos += 46 + n + m + k
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(infos), len(infos), len(records),
                      cd_start, 0)
    with open(out, "wb") as f:
        f.write(raw[:cd_start] + records + end)
    return out


def _central_offsets(raw: bytes):
    at = raw.find(b"PK\x01\x02")
    while at != -1:
        yield at
        at = raw.find(b"PK\x01\x02", at + 1)


def test_an_ordered_dict_keeps_only_text_metadata(tmp_path):
    sd = OrderedDict(w=torch.ones(2))
    sd._metadata = {"": {"version": 1}}
    path = str(tmp_path / "c.pt")
    torch.save(sd, path)
    assert load_zip_mapped(path)._metadata == {"": {"version": 1}}


# -- what a review found: shapes torch.save never writes ------------------------------------

_STRETCHED = (b"ctorch._utils\n_rebuild_tensor_v2\n(" + _storage_pickle(b"")[2:-1] +
              b"K\x00J\x40\x42\x0f\x00\x85K\x00\x85\x89ccollections\nOrderedDict\n)RtR")


def test_a_set_built_by_iterating_a_stretched_tensor_is_refused_outright(tmp_path):
    """1e6 tensor objects (and 5e6 from a 1.2 KB file: 3.4 GB); torch.load would build them."""
    path = _with_pickle(tmp_path, b"\x80\x02c__builtin__\nset\n" + _STRETCHED + b"\x85R.")
    with pytest.raises(Refused):
        load_zip_mapped(path)
    with pytest.raises(CheckpointError, match="refused"):
        load_document(path)


@pytest.mark.parametrize("why,data", [
    ("one list made into sets again and again",
     b"\x80\x02]q\x00(K\x01K\x02ec__builtin__\nset\nq\x01h\x00\x85Rh\x01h\x00\x85R\x86."),
    ("one state BUILT into two OrderedDicts",
     b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01sccollections\nOrderedDict\nq\x01)Rh\x00b"
     b"h\x01)Rh\x00b\x86."),
])
def test_one_container_consumed_twice_is_refused(tmp_path, why, data):
    with pytest.raises(Refused):
        load_zip_mapped(_with_pickle(tmp_path, data))


@pytest.mark.parametrize("why,data", [
    ("SETITEM into a tensor (it would write into the mapping)", _STRETCHED[:0] + _storage_pickle(
        b"0ctorch._utils\n_rebuild_tensor_v2\n(" + _storage_pickle(b"")[2:-1] +
        b"K\x00K\x02\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRK\x00K\x05s")),
    ("a dtype alias torch refuses", b"\x80\x02ctorch\nfloat\n."),
    ("torch.UntypedStorage (torch allows only torch.storage's)", b"\x80\x02ctorch\nUntypedStorage\n."),
    ("a v2 rebuild given a dtype", b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(" +
     _storage_pickle(b"")[2:-1] +
     b"K\x00K\x02\x85K\x01\x85\x89ccollections\nOrderedDict\n)RNctorch\nfloat64\ntR."),
])
def test_what_torch_load_refuses_is_not_accepted_here(tmp_path, why, data):
    with pytest.raises((NotPlain, TypeError)):
        load_zip_mapped(_with_pickle(tmp_path, data))


def test_member_names_differing_only_in_case_are_left_to_torch_load(tmp_path):
    """torch's reader finds members by name in either case: which twin it reads is its call."""
    path = _with_pickle(tmp_path, _storage_pickle(b""))
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(z.namelist()[0].split("/")[0] + "/DATA.PKL", pickle.dumps(None, protocol=2))
    with pytest.raises(NotPlain):
        load_zip_mapped(path)


def test_an_archive_without_its_version_record_is_left_to_torch_load(tmp_path):
    path = str(tmp_path / "c.pt")
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(NotPlain):
        load_zip_mapped(_rewritten(tmp_path, path, {"version": b"x"}))


def test_a_load_given_up_midway_keeps_no_mapping_of_the_file(tmp_path):
    """The unpickler's stack held a stand-in bound to it: a cycle keeping the whole file mapped."""
    import gc
    path = _with_pickle(tmp_path, _storage_pickle(b"ctorch._utils\n_rebuild_tensor_v2\n(h\x00"))
    st = os.stat(path)
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(Exception):
            load_zip_mapped(path)
        assert mapped_ranges({(st.st_dev, st.st_ino)}) == []
    finally:
        gc.enable()


def test_tensors_have_no_backward_hooks_as_torch_gives_them_none(tmp_path):
    """torch keeps the pickle's empty hooks dict on each tensor; here there is none (the same to
    autograd and to torch.save, and 32 MB less at 100k tensors)."""
    path = str(tmp_path / "c.pt")
    torch.save({"w": torch.ones(2), "p": torch.nn.Parameter(torch.ones(2))}, path)
    ours, theirs = load_zip_mapped(path), torch.load(path, mmap=True, weights_only=True)
    for k in ours:
        assert not ours[k]._backward_hooks and not theirs[k]._backward_hooks, k


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_state_dict_metadata_nested_too_deep_is_refused_at_open(tmp_path, wrapped):
    """No walk enters the attribute; saving it later stopped with a RecursionError traceback."""
    sd = OrderedDict(w=torch.ones(2))
    meta = None
    for _ in range(300):  # past the 256 levels allowed; a hostile file nests 200k deep
        meta = (meta,)
    sd._metadata = {"": meta}
    path = str(tmp_path / "c.pt")
    torch.save({"model": sd, "epoch": 1} if wrapped else sd, path)
    with pytest.raises(CheckpointError, match="nests deeper"):
        load_document(path)
