"""A document of many tensors is built small: the tree's nodes, the safetensors header read
straight into loaders, and nothing left for the garbage collector to walk again."""
import gc
import json
import struct
import tracemalloc

import pytest
import torch

from app.core.errors import CheckpointError
from app.core.formats import load_document
from app.core.formats.safetensors_file import _check_layout, _check_tensor, open_entries
from app.core.model.tensor_entry import TensorEntry
from app.core.model.tree import tree_from_names

N = 3000


def _names(n: int = N) -> list[str]:
    """Nested names like a transformer's: layers / blocks / sublayer / weight and bias."""
    subs = ("attn.q", "attn.k", "mlp.fc1", "mlp.fc2", "norm")
    out = [f"model.layers.{i // 40}.blocks.{i // 10 % 4}.{subs[i // 2 % 5]}.{('weight', 'bias')[i % 2]}"
           for i in range(n)]
    assert len(set(out)) == n
    return out


def _traced(fn):
    """What ``fn()`` allocates and keeps, and its peak, in bytes (the collector paused)."""
    was = gc.isenabled()
    gc.disable()
    tracemalloc.start()
    try:
        kept = fn()
        now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        if was:
            gc.enable()
    return kept, now, peak


def test_tree_of_many_tensors_costs_little_per_tensor():
    entries = [TensorEntry.of(n, torch.zeros(4)) for n in _names()]

    def build():
        root = tree_from_names(entries)
        root.totals()
        return root

    root, kept, _ = _traced(build)
    # 670 B a tensor with a children list per tensor node, tuple totals and a second path string
    # per group; about 440 now
    assert kept / N < 550
    assert root.totals() == (4 * N, 16 * N)


def _write(path, header: dict, data_len: int) -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(data_len))


def test_safetensors_header_is_not_held_as_json_objects(tmp_path):
    names = _names()
    header = {n: {"dtype": "F32", "shape": [2, 2], "data_offsets": [16 * i, 16 * i + 16]}
              for i, n in enumerate(names)}
    path = tmp_path / "many.safetensors"
    _write(path, header, 16 * N)
    (entries, _meta, close), _, peak = _traced(lambda: open_entries(str(path)))
    close()
    # ~980 B a tensor at the peak while the header was a dict of dicts of lists; ~440 now
    assert peak / N < 650
    assert [e.name for e in entries] == names and entries[5].shape == (2, 2)


def _t(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


# (header, data bytes): what the strict per-tensor checks make of each is what opening does
TABLES = {
    "good": ({"b": _t(offsets=(8, 16)), "a": _t()}, 16),
    "zero sized, same begin, later end first": ({"b": _t(offsets=(8, 16)), "e": _t(shape=(0,), offsets=(8, 8)),
                                                 "a": _t()}, 16),
    "extra key": ({"a": {**_t(), "note": "x"}}, 8),
    "metadata like a tensor": ({"__metadata__": {"dtype": "F32", "shape": "2", "data_offsets": "0"},
                                "a": _t()}, 8),
    "tensor object nested in one": ({"a": {**_t(), "dtype": _t()}}, 8),
    "empty": ({}, 0),
    "empty with data": ({}, 4),
    "gap": ({"a": _t(), "b": _t(offsets=(9, 17))}, 17),
    "overlap": ({"a": _t(), "b": _t(offsets=(4, 12))}, 12),
    "short data": ({"a": _t()}, 4),
    "trailing data": ({"a": _t()}, 12),
    "bool dim": ({"a": _t(shape=(True, 2), offsets=(0, 8))}, 8),
    "negative dim": ({"a": _t(shape=(-2, -1), offsets=(0, 8))}, 8),
    "float dim": ({"a": _t(shape=(2.0,))}, 8),
    "float offset": ({"a": _t(offsets=(0.0, 8))}, 8),
    "reversed offsets": ({"a": _t(offsets=(8, 0))}, 8),
    "size mismatch": ({"a": _t(shape=(3,))}, 8),
    "unknown dtype": ({"a": _t(dtype="F33")}, 8),
    "unhashable dtype": ({"a": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}, 8),
    "not an object": ({"a": [1, 2]}, 8),
    "missing key": ({"a": {"dtype": "F32", "shape": [2]}}, 8),
    "three offsets": ({"a": _t(offsets=(0, 8, 8))}, 8),
    "shape not a list": ({"a": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}}, 8),
    "huge dims": ({"a": _t(dtype="U8", shape=(2 ** 40, 2 ** 40, 0), offsets=(0, 0))}, 0),
}


def _checks_pass(header: dict, data_len: int) -> bool:
    try:
        for name, info in header.items():
            if name != "__metadata__":
                _check_tensor("f", name, info, data_len)
        _check_layout("f", {k: v for k, v in header.items() if k != "__metadata__"}, data_len)
    except CheckpointError:
        return False
    return True


@pytest.mark.parametrize("case", TABLES)
def test_opening_refuses_what_the_per_tensor_checks_refuse(tmp_path, case):
    header, data_len = TABLES[case]
    path = tmp_path / "t.safetensors"
    _write(path, header, data_len)
    if not _checks_pass(header, data_len):
        with pytest.raises(CheckpointError):
            open_entries(str(path))
        return
    entries, meta, close = open_entries(str(path))
    close()
    assert meta == header.get("__metadata__", {})
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    in_data_order = sorted(tensors, key=lambda k: tensors[k]["data_offsets"][0])  # stable
    assert [e.name for e in entries] == in_data_order
    assert all(list(e.shape) == tensors[e.name]["shape"] for e in entries)


def test_a_read_document_is_left_to_the_oldest_collection(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "m.safetensors"
    save_file({n: torch.zeros(2) for n in _names(50)}, str(path))
    assert gc.isenabled()
    doc = load_document(str(path))
    node = doc.root.children[0]
    # not walked again by the next young collections: moved as it is to the oldest generation
    assert not any(o is node for o in gc.get_objects(generation=0))
    assert not any(o is node for o in gc.get_objects(generation=1))


def test_names_of_a_str_subclass_still_make_a_tree():
    class Key(str):
        pass

    entries = [TensorEntry.of(Key("w"), torch.zeros(2)), TensorEntry.of(Key("a.w"), torch.zeros(3))]
    root = tree_from_names(entries)
    assert [c.name for c in root.children] == ["w", "a"] and root.children[1].children[0].name == "w"
    assert root.totals() == (5, 20)
