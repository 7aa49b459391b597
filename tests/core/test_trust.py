"""Full-model pickles (``torch.save(model)``): refused by default with nothing executed, the globals
named statically, and loaded as a live model only when trusted."""
import io
import json
import pickle
import sys
import textwrap

import pytest
import torch

from app.core.errors import CheckpointError, UnsafePickleError
from app.core.formats import load_document
from app.core.loading.open import open_document
from app.core.formats.pickle_trust import load_trusted, pickle_globals, unsafe_globals
from tests.cli import assert_one_error_line, run_main

MODULE = "pe_full_models"
NET, TROJAN = f"{MODULE}.FullNet", f"{MODULE}.Trojan"
LINEAR = "torch.nn.modules.linear.Linear"
SEQ = "torch.nn.modules.container.Sequential"

SOURCE = textwrap.dedent('''
    from torch import nn


    class Touch:
        """Unpickling this opens (creates) the marker file: proof that the pickle ran code."""
        def __init__(self, marker):
            self.marker = marker

        def __reduce__(self):
            return (open, (self.marker, "w"))


    class FullNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)
            self.out = nn.Sequential(self.fc)   # shared


    class Trojan(FullNet):
        def __init__(self, marker):
            super().__init__()
            self.payload = Touch(marker)


    class A:
        pass


    class B:
        pass
''')

KINDS = {"zip": False, "legacy": True}


@pytest.fixture
def models(tmp_path, monkeypatch):
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, MODULE, None)
    monkeypatch.delitem(sys.modules, MODULE)  # imported afresh here, dropped afterwards
    __import__(MODULE)
    return sys.modules[MODULE]


def save(obj, path, legacy):
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return str(path)


@pytest.mark.parametrize("kind", KINDS)
def test_refused_by_default_and_nothing_executed(models, tmp_path, kind):
    marker = tmp_path / "marker"
    path = save(models.Trojan(str(marker)), tmp_path / f"trojan-{kind}.pt", KINDS[kind])
    assert not marker.exists()
    for load in (load_document, open_document):
        with pytest.raises(UnsafePickleError) as err:
            load(path)
        assert TROJAN in str(err.value)
    assert set(unsafe_globals(path)) == {TROJAN, LINEAR, SEQ, "io.open"}
    assert not marker.exists()  # refusing and listing ran nothing
    with pytest.raises(UnsafePickleError):
        load_document(path, trust=False)
    assert not marker.exists()


def test_refusal_lists_the_globals_zip(models, tmp_path):
    path = save(models.FullNet(), tmp_path / "net.pt", legacy=False)
    with pytest.raises(UnsafePickleError) as err:
        load_document(path)
    assert set(err.value.globals) == {NET, LINEAR, SEQ}


def test_refusal_lists_the_globals_legacy(models, tmp_path):
    path = save(models.FullNet(), tmp_path / "net.pt", legacy=True)
    with pytest.raises(UnsafePickleError) as err:
        load_document(path)
    assert set(err.value.globals) == {NET, LINEAR, SEQ}


@pytest.mark.parametrize("kind", KINDS)
def test_unsafe_globals_of_model_and_state_dict(models, tmp_path, kind):
    net = models.FullNet()
    path = save(net, tmp_path / "net.pt", KINDS[kind])
    assert unsafe_globals(path) == sorted([NET, LINEAR, SEQ])
    sd_path = save(net.state_dict(), tmp_path / "sd.pt", KINDS[kind])
    assert unsafe_globals(sd_path) == []
    nested = save({"model": net.state_dict(), "epoch": 3, "opt": {"lr": 0.1}}, tmp_path / "ck.pt",
                  KINDS[kind])
    assert unsafe_globals(nested) == []


def test_stack_global_and_memoized_names(models, tmp_path):
    data = pickle.dumps([models.A(), models.B(), models.A()], protocol=4)
    assert pickle_globals(io.BytesIO(data)) == {f"{MODULE}.A", f"{MODULE}.B"}
    path = tmp_path / "p4.pt"
    torch.save(models.FullNet(), path, _use_new_zipfile_serialization=False, pickle_protocol=4)
    assert unsafe_globals(str(path)) == sorted([NET, LINEAR, SEQ])


def test_unsafe_globals_of_a_broken_file(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"\x80\x02junk that is no pickle")
    with pytest.raises(CheckpointError):
        unsafe_globals(str(path))


@pytest.mark.parametrize("kind", KINDS)
def test_load_trusted_gives_a_live_model(models, tmp_path, kind):
    torch.manual_seed(3)
    net = models.FullNet()
    path = save(net, tmp_path / "net.pt", KINDS[kind])
    doc = load_trusted(path)
    model = doc.module
    assert isinstance(model, models.FullNet) and doc.format == "torch-module"
    for name, p in model.named_parameters(remove_duplicate=False):
        assert doc.tensor(name) is p and isinstance(p, torch.nn.Parameter)
        assert torch.equal(p.detach(), net.state_dict()[name])
    assert doc.entry("fc.weight").shared_with == ["out.0.weight"]
    assert [(c.name, c.type_name) for c in doc.root.children if c.kind == "module"] == \
        [("fc", "Linear"), ("out", "Sequential")]
    with torch.no_grad():  # edits through the document are edits of the model
        doc.tensor("out.0.bias").fill_(7.0)
    assert torch.all(model.fc.bias == 7.0)


def test_trusted_really_runs_code(models, tmp_path):
    """The other side of the refusal: trusting the trojan does create the marker."""
    marker = tmp_path / "marker"
    path = save(models.Trojan(str(marker)), tmp_path / "trojan.pt", legacy=False)
    doc = load_trusted(path)
    assert marker.exists() and isinstance(doc.module, models.Trojan)


def test_load_trusted_dict_and_errors(models, tmp_path):
    path = save({"w": torch.ones(2), "cfg": models.A()}, tmp_path / "d.pt", legacy=False)
    doc = load_trusted(path)
    assert doc.module is None and doc.names() == ["w"] and "cfg" in doc.entries
    with pytest.raises(CheckpointError, match="does not exist"):
        load_trusted(str(tmp_path / "absent.pt"))
    sys.modules.pop(MODULE)
    sys.path.remove(str(tmp_path))
    with pytest.raises(CheckpointError, match=f"needs the module '{MODULE}'"):
        load_trusted(path)  # the model code is gone: a clear message, no traceback


@pytest.mark.parametrize("kind", KINDS)
def test_cli_trust(models, tmp_path, kind):
    marker = tmp_path / "marker"
    path = save(models.Trojan(str(marker)), tmp_path / "trojan.pt", KINDS[kind])
    env = {"PYTHONPATH": str(tmp_path)}
    refused = run_main("inspect", path, "--json", env=env)
    assert TROJAN in assert_one_error_line(refused)
    assert not marker.exists()

    net_path = save(models.FullNet(), tmp_path / "net.pt", KINDS[kind])
    proc = run_main("inspect", net_path, "--trust", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [t["name"] for t in out["tensors"]] == ["fc.weight", "fc.bias", "out.0.weight",
                                                    "out.0.bias"]
    assert {t["kind"] for t in out["tensors"]} == {"parameter"}
    assert out["total_numel"] == 8
