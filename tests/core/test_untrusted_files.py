"""Untrusted checkpoints: names that collide, aliases from metadata, CRCs, Python 2 pickles,
numpy values, torch.package, truncated zips, TorchScript that would run code, nested values."""
import collections
import json
import pickle
import struct
from typing import Tuple

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from app.__main__ import main
from app.core.errors import Cancelled, CheckpointError, UnsafePickleError, UntrustedCodeError
from app.core.formats import load_document, verify_document
from app.core.formats import restricted_pickle
from app.core.formats.save import save_document
from app.core.model.tree import ENTRY
from tests.corpus.generate import CASES, legacy_file


def run(capsys, *argv):
    rc = main(["inspect", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


# -- names that collide after joining with '.' ------------------------------------------------
def test_colliding_names_are_all_listed_and_saved(tmp_path):
    ck = {"a.b": torch.ones(1), "a": {"b": torch.zeros(2)}, 1: torch.ones(3),
          "1": torch.ones(4), "": torch.ones(5), "tensor": torch.ones(6)}
    path = tmp_path / "c.pt"
    torch.save(ck, path)
    doc = load_document(path)
    assert doc.names() == ["a.b", "a.b~2", "1", "1~2", "tensor", "tensor~2"]
    assert [doc.entry(n).numel for n in doc.names()] == [1, 2, 3, 4, 5, 6]
    assert doc.entry("a.b~2").path == ("a", "b") and doc.entry("1").path == (1,)
    out = tmp_path / "out.pt"
    save_document(doc, str(out))
    back = torch.load(out, weights_only=True)
    assert set(back) == set(ck) and torch.equal(back["a"]["b"], ck["a"]["b"])
    assert torch.equal(back[1], ck[1]) and torch.equal(back["1"], ck["1"])


def test_a_lone_tensor_and_a_key_named_tensor(tmp_path):
    path = tmp_path / "lone.pt"
    torch.save(torch.arange(3), path)
    assert load_document(path).names() == ["tensor"]


# -- paramedit.aliases metadata -----------------------------------------------------------------
def test_alias_metadata_does_not_invent_tensors(tmp_path):
    path = tmp_path / "a.safetensors"
    aliases = {f"ghost{i}": "w" for i in range(5000)}
    aliases.update({"x": "missing", "": "w", "a..b": "w", "w2": 5})
    save_file({"w": torch.ones(2)}, str(path), metadata={
        "paramedit.aliases": json.dumps(aliases), "paramedit.order": json.dumps(["w", "x", ""])})
    doc = load_document(path)
    assert doc.names() == ["w"]


def test_aliases_written_by_paramedit_still_come_back(tmp_path):
    w = torch.randn(3, 2)
    src = tmp_path / "tied.pt"
    torch.save({"emb.weight": w, "head.weight": w}, src)
    out = tmp_path / "tied.safetensors"
    save_document(load_document(src), str(out))
    doc = load_document(out)
    assert doc.names() == ["emb.weight", "head.weight"]
    assert doc.entry("head.weight").shared_with == ["emb.weight"]


def test_many_paths_to_one_tensor_within_the_cap_are_tied(tmp_path):
    x = [torch.ones(1)]
    for _ in range(10):  # 1024 paths
        x = [x, x]
    path = tmp_path / "paths.pt"
    torch.save(x, path)
    doc = load_document(path)
    assert len(doc.names()) == 1024 and doc.total_numel() == 1
    assert len(doc.entry(doc.names()[0]).shared_with) == 1023


# -- zip CRCs -------------------------------------------------------------------------------------
def _crc_broken(tmp_path):
    return CASES["zip_crc_mismatch"](tmp_path, tmp_path / "marker")


def test_verify_reports_members_whose_crc_does_not_match(tmp_path):
    bad = _crc_broken(tmp_path)
    seen = []
    assert verify_document(bad, progress=lambda d, t: seen.append((d, t))) == [
        "archive/data/0: CRC mismatch"]
    assert seen and seen[-1][0] == seen[-1][1]
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(3)}, good)
    assert verify_document(good) == []


def test_verify_can_be_cancelled(tmp_path):
    bad = _crc_broken(tmp_path)
    with pytest.raises(Cancelled):
        verify_document(bad, cancel=lambda: True)


def test_inspect_verify_exit_2_on_crc_mismatch(tmp_path, capsys):
    bad = _crc_broken(tmp_path)
    assert run(capsys, bad, "--json")[0] == 0  # torch itself does not check
    rc, out, err = run(capsys, bad, "--verify")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "CRC" in err and "archive/data/0" in err
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(3)}, good)
    rc, out, _ = run(capsys, good, "--verify", "--json")
    assert rc == 0 and json.loads(out)["verified"] is True


# -- Python 2 era pickles and our restricted unpickler ------------------------------------------
@pytest.mark.parametrize("zip_", [True, False])
def test_protocol_1_pickles_open_with_their_values(tmp_path, zip_):
    w = torch.randn(3, 2)
    path = tmp_path / "old.pt"
    torch.save({"w": w, "flag": True, "n": 7}, path, pickle_protocol=1,
               _use_new_zipfile_serialization=zip_)
    with pytest.raises(pickle.UnpicklingError, match="Unsupported operand"):
        torch.load(path, weights_only=True)  # what torch itself says
    doc = load_document(path)
    assert torch.equal(doc.tensor("w"), w)
    assert doc.container["flag"] is True and doc.container["n"] == 7


def test_old_int_opcode_pickle(tmp_path):
    payload = b"(dp0\nS'epoch'\np1\nI12\nsS'ok'\np2\nI01\ns."  # Python 2 text pickle
    path = tmp_path / "py2.pt"
    path.write_bytes(legacy_file(payload))
    doc = load_document(path)
    assert doc.container == {"epoch": 12, "ok": True}


def test_restricted_unpickler_names_the_global_it_needs():
    data = pickle.dumps(collections.defaultdict(int), protocol=1)
    with pytest.raises(restricted_pickle.NeedsGlobal) as info:
        restricted_pickle.loads(data)
    assert info.value.name == "collections.defaultdict"
    od = restricted_pickle.loads(pickle.dumps(collections.OrderedDict(a=1), protocol=0))
    assert od == collections.OrderedDict(a=1)


def test_a_needed_global_outside_the_allowlist_is_named(tmp_path, capsys):
    path = tmp_path / "ok.pt"  # an allowlisted global by a Python 2 opcode sequence: opens
    path.write_bytes(legacy_file(b"ccollections\nCounter\n((dp0\nS'a'\np1\nI3\nstR."))
    assert load_document(path).container == collections.Counter(a=3)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(legacy_file(b"(S'x'\niposix\nsystem\n."))
    rc, _, err = run(capsys, evil)
    assert rc == 2 and "posix.system" in err and "--trust" in err


# -- numpy inside a checkpoint ------------------------------------------------------------------
def test_numpy_arrays_open_without_trust_and_show_as_values(tmp_path, capsys):
    path = tmp_path / "np.pt"
    torch.save({"w": torch.ones(2), "cfg": {"cutoff": np.float64(5.0), "arr": np.arange(3),
                                            "m": np.ones((2, 2), dtype=np.float32)}}, path)
    before = list(torch.serialization.get_safe_globals())
    doc = load_document(path)
    # nothing of ours left registered (torch may add its own DTensor entries when it imports
    # torch.distributed lazily, so compare what was added, not the whole list)
    added = [g for g in torch.serialization.get_safe_globals() if g not in before]
    assert not [g for g in added if "numpy" in repr(g)], added
    np.testing.assert_array_equal(doc.container["cfg"]["arr"], np.arange(3))
    rc, out, _ = run(capsys, path, "--json")
    entries = json.loads(out)["entries"]
    assert rc == 0 and entries["cfg.arr"].startswith("ndarray: array([0, 1, 2]")
    assert "5.0" in entries["cfg.cutoff"]


# -- torch.package, truncated zips ----------------------------------------------------------------
def test_torch_package_is_named(tmp_path):
    path = CASES["torch_package"](tmp_path, tmp_path / "m")
    with pytest.raises(CheckpointError, match="torch.package archive.*packaged"):
        load_document(path)


def test_truncated_zip_says_truncated_or_corrupt(tmp_path):
    path = tmp_path / "t.pt"
    torch.save({"w": torch.randn(1000)}, path)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_document(path)


# -- TorchScript that would run code --------------------------------------------------------------
class _LoopsOnLoad(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))
        self.k = 1

    def forward(self, x):
        return x * self.w

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, int, bool]:
        return (self.w, self.k, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, int, bool]) -> None:
        k = state[1]
        while k > 0:  # never ends when loaded
            k = k + 1
        self.w = state[0]
        self.k = k
        self.training = state[2]


@pytest.mark.timeout(60)
def test_torchscript_whose_code_would_loop_is_refused_not_run(tmp_path, capsys):
    path = tmp_path / "loop.pt"
    torch.jit.save(torch.jit.script(_LoopsOnLoad()), str(path))
    with pytest.raises(UntrustedCodeError) as info:
        load_document(path)
    assert isinstance(info.value, UnsafePickleError)  # the window's trust dialog handles it
    rc, _, err = run(capsys, path)
    assert rc == 2 and "TorchScript" in err and "--trust" in err


def test_torchscript_that_prints_runs_only_with_trust(tmp_path, capfd):
    path = CASES["torchscript_setstate_prints"](tmp_path, tmp_path / "m")
    with pytest.raises(UntrustedCodeError):
        load_document(path)
    assert "PWNED" not in capfd.readouterr().out
    doc = load_document(path, trust=True)
    assert doc.names() == ["w"]
    assert "PWNED" in capfd.readouterr().out  # proof that trust is what runs it


# -- non-tensor values at any depth -----------------------------------------------------------------
def test_nested_values_in_json_and_tree(tmp_path, capsys):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    ck = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 4,
          "state": {"net": {"step": 17, "w": torch.ones(1)}}, "config": {"name": "x", "dims": [1, 2]}}
    path = tmp_path / "ck.pt"
    torch.save(ck, path)
    rc, out, _ = run(capsys, path, "--json")
    entries = json.loads(out)["entries"]
    assert rc == 0
    assert entries["optimizer"] == "dict (2 keys)" and entries["epoch"] == "int: 4"
    assert entries["optimizer.param_groups.0.lr"] == "float: 0.003"
    assert entries["optimizer.param_groups.0.params"] == "list: [0, 1]"
    assert entries["state.net.step"] == "int: 17" and entries["config.dims"] == "list: [1, 2]"
    assert "optimizer.state.0.step" not in entries  # a tensor, listed under tensors
    doc = load_document(path)
    lr = doc.node("optimizer.param_groups.0.lr")
    assert lr.kind == ENTRY and lr.summary == "float: 0.003"
    assert doc.node("state.net.step").summary == "int: 17"
    assert doc.node("config.name").summary == "str: 'x'"
    assert doc.node("state.net.w").entry is doc.entry("state.net.w")


def test_a_name_thousands_of_levels_deep_keeps_the_tree_shallow(tmp_path):
    name = "a." * 5000 + "w"
    path = tmp_path / "dots.pt"
    torch.save({name: torch.ones(1)}, path)
    doc = load_document(path)
    assert doc.names() == [name]
    node, depth = doc.node(name), 0
    while node.parent is not None:
        node, depth = node.parent, depth + 1
    assert depth == 64


def test_numpy_globals_the_user_registered_stay_registered(tmp_path):
    path = tmp_path / "np.pt"
    torch.save({"a": np.arange(2)}, path)
    torch.serialization.add_safe_globals([np.ndarray])
    try:
        load_document(path)
        assert np.ndarray in torch.serialization.get_safe_globals()
    finally:
        torch.serialization.clear_safe_globals()


def test_a_name_in_two_shards_keeps_both(tmp_path):
    from safetensors.torch import save_file as save_st
    folder = tmp_path / "sh"
    folder.mkdir()
    save_st({"w": torch.zeros(2), "b": torch.ones(1)}, str(folder / "a.safetensors"))
    save_st({"w": torch.ones(2)}, str(folder / "b.safetensors"))
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"w": "b.safetensors", "b": "a.safetensors"}}))
    doc = load_document(folder)
    assert doc.names() == ["w", "b", "w~2"]
    assert torch.equal(doc.tensor("w"), torch.ones(2))  # from the shard the index names
    assert torch.equal(doc.tensor("w~2"), torch.zeros(2))


@pytest.mark.parametrize("payload", [
    b"cbuiltins\nopen\n(S'{m}'\nS'w'\ntR.",            # GLOBAL + REDUCE
    b"(S'{m}'\nS'w'\nibuiltins\nopen\n.",               # INST
    b"(cbuiltins\nopen\nS'{m}'\nS'w'\no.",              # OBJ
    b"cposix\nsystem\n(S'touch {m}'\ntR.",              # os.system by its real module name
])
def test_the_restricted_unpickler_itself_runs_no_code(tmp_path, payload):
    """It is handed to ``torch.load(weights_only=False, pickle_module=...)``: whatever the static
    scan would catch first, the unpickler on its own must refuse every call outside torch's
    allowlist before making it."""
    marker = tmp_path / "MARKER"
    data = payload.replace(b"{m}", str(marker).encode())
    with pytest.raises(restricted_pickle.NeedsGlobal):
        restricted_pickle.loads(data)
    assert not marker.exists()
