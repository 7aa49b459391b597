"""``--model package.module:factory``: a state_dict loaded into model code, in place, with a report."""
import json
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from app.core.errors import UserError
from app.core.loading.model_code import UNEXPECTED_GROUP, describe_report, load_into_model
from app.core.loading.open import open_document
from tests.cli import assert_one_error_line, run_main

MODULE = "pe_factory_models"

SOURCE = textwrap.dedent('''
    import torch
    from torch import nn

    SNAPSHOTS = []   # (name -> (Parameter/buffer, data_ptr, value)) of every model built


    class Block(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.proj = nn.Linear(dim, dim)
            self.norm = nn.LayerNorm(dim)


    class Net(nn.Module):
        def __init__(self, dim=4, classes=3):
            super().__init__()
            self.embed = nn.Linear(2, dim)
            self.encoder = nn.Sequential(Block(dim), nn.ReLU())
            self.decoder = nn.Sequential(self.encoder[0])   # the same Block: a shared layer
            self.head = nn.Linear(dim, classes)
            self.register_buffer("scale", torch.ones(dim))


    def make_net(dim=4, classes=3):
        torch.manual_seed(0)
        net = Net(dim, classes)
        SNAPSHOTS.append({n: (t, t.data_ptr(), t.detach().clone())
                          for n, t in net.state_dict(keep_vars=True).items()})
        return net


    def broken():
        raise ValueError("no such size")


    def not_a_model():
        return 42
''')


def forget_module(monkeypatch, name):
    """Import ``name`` afresh in this test, and drop it again afterwards."""
    monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, name)


@pytest.fixture
def models(tmp_path, monkeypatch):
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    forget_module(monkeypatch, MODULE)
    __import__(MODULE)
    return sys.modules[MODULE]


def file_state(seed=1, **kw):
    """The file's state_dict: a trained Net's, as plain tensors."""
    torch.manual_seed(seed)
    src = sys.modules[MODULE].Net(**kw)
    return {k: v.detach().clone() for k, v in src.state_dict().items()}


def messy_state():
    """One missing, one unexpected, one shape mismatch, a float64 tensor, all under ``module.``."""
    sd = file_state()
    del sd["embed.bias"]
    sd["extra.weight"] = torch.arange(4.0).reshape(2, 2)
    sd["head.weight"] = torch.randn(5, 4)
    sd["scale"] = torch.full((4,), 2.5, dtype=torch.float64)
    return sd, {"module." + k: v for k, v in sd.items()}


def module_rows(module, prefix=""):
    rows = []
    for name, child in module._modules.items():
        rows.append((prefix + name, type(child).__name__))
        rows += module_rows(child, f"{prefix}{name}.")
    return rows


def tree_rows(node):
    rows = []
    for c in node.children:
        if c.kind == "module":
            rows.append((c.full_name, c.type_name))
            rows += tree_rows(c)
    return rows


def test_report_values_identity_and_tree(models, tmp_path):
    sd, prefixed = messy_state()
    path = tmp_path / "messy.pt"
    torch.save(prefixed, path)
    doc = load_into_model(str(path), f"{MODULE}:make_net", None)
    model = doc.module
    assert isinstance(model, models.Net) and doc.path == str(path) and doc.format == "torch"
    assert doc.load_report["missing"] == ["embed.bias"]
    assert doc.load_report["unexpected"] == ["extra.weight"]
    assert doc.load_report["mismatched"] == {"head.weight": {"file": [5, 4], "model": [3, 4]}}
    assert doc.load_report["stripped_prefix"] == "module."
    assert doc.load_report["source_key"] is None
    assert any("embed.bias" in line for line in describe_report(doc.load_report))

    snapshot = models.SNAPSHOTS[-1]
    now = model.state_dict(keep_vars=True)
    for name, (obj, ptr, initial) in snapshot.items():
        assert now[name] is obj and now[name].data_ptr() == ptr, name  # same object, same storage
        assert doc.tensor(name) is obj
        if name in ("embed.bias", "head.weight"):  # missing / mismatched keep the initial values
            assert torch.equal(obj.detach(), initial), name
        else:
            assert torch.equal(obj.detach(), sd[name].to(obj.dtype)), name
    assert model.scale.dtype == torch.float32 and torch.all(model.scale == 2.5)
    assert isinstance(model.head.weight, torch.nn.Parameter)

    assert tree_rows(doc.root) == module_rows(model)
    assert doc.root.type_name == "Net" and doc.node("decoder.0").type_name == "Block"
    assert doc.entry("encoder.0.proj.weight").shared_with == ["decoder.0.proj.weight"]

    extra = doc.entry("extra.weight")
    assert extra.kind == "tensor" and torch.equal(extra.tensor(), sd["extra.weight"])
    group = doc.root.children[-1]
    assert group.name == UNEXPECTED_GROUP and group.kind == "group"
    assert doc.node("extra.weight").parent.parent is group


def test_training_checkpoint_model_key(models, tmp_path):
    sd = file_state()
    path = tmp_path / "train.pt"
    torch.save({"model": sd, "optimizer": {"state": {}, "param_groups": []}, "epoch": 1}, path)
    doc = load_into_model(str(path), f"{MODULE}:make_net", None)
    report = doc.load_report
    assert report["source_key"] == "model" and report["stripped_prefix"] is None
    assert report["missing"] == [] and report["unexpected"] == [] and report["mismatched"] == {}
    assert report["filled_by_alias"] == {}
    assert torch.equal(doc.module.head.weight.detach(), sd["head.weight"])
    assert doc.entries["epoch"] == "int: 1"
    assert not any(e.name.startswith("optimizer") for e in doc.tensors.values())


def test_state_dict_key_with_compile_prefix_and_one_tied_name(models, tmp_path):
    sd = file_state()
    for k in [k for k in sd if k.startswith("decoder.")]:
        del sd[k]  # a tied alias saved once only: filled through the other name
    path = tmp_path / "compiled.pth"
    torch.save({"state_dict": {"_orig_mod." + k: v for k, v in sd.items()}, "step": 3}, path)
    doc = open_document(str(path), model=f"{MODULE}:make_net")
    report = doc.load_report
    assert report["source_key"] == "state_dict" and report["stripped_prefix"] == "_orig_mod."
    assert report["missing"] == []
    assert report["filled_by_alias"]["decoder.0.proj.weight"] == "encoder.0.proj.weight"
    assert torch.equal(doc.module.decoder[0].proj.weight.detach(), sd["encoder.0.proj.weight"])


def test_safetensors_and_model_args(models, tmp_path):
    sd = file_state(classes=5)
    sd["decoder.0.proj.weight"] = sd["encoder.0.proj.weight"].clone()  # safetensors: no shared memory
    sd = {k: v for k, v in sd.items() if not k.startswith("decoder.")}
    path = tmp_path / "m.safetensors"
    save_file(sd, str(path))
    doc = load_into_model(str(path), f"{MODULE}:make_net", '{"classes": 5}')
    assert doc.format == "safetensors" and doc.load_report["mismatched"] == {}
    assert torch.equal(doc.module.head.weight.detach(), sd["head.weight"])
    doc = load_into_model(str(path), f"{MODULE}:make_net", "[4, 5]")  # a list: positional
    assert doc.module.head.weight.shape == (5, 4)


def test_module_from_current_directory_and_from_a_file(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "cwd_only_model.py").write_text(SOURCE)
    namespace = {}
    exec(compile(SOURCE, "cwd_only_model.py", "exec"), namespace)
    path = tmp_path / "sd.pt"
    torch.save(namespace["Net"]().state_dict(), path)
    # main.py puts only the repository on sys.path, not the user's current directory
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(folder))])
    forget_module(monkeypatch, "cwd_only_model")
    monkeypatch.chdir(folder)
    doc = load_into_model(str(path), "cwd_only_model:make_net", None)
    assert doc.load_report["missing"] == [] and type(doc.module).__name__ == "Net"
    forget_module(monkeypatch, "cwd_only_model")
    doc = load_into_model(str(path), f"{folder / 'cwd_only_model.py'}:make_net", '{"dim": 4}')
    assert doc.load_report["unexpected"] == [] and doc.load_report["mismatched"] == {}


@pytest.mark.parametrize("spec, args, words", [
    ("no_colon_here", None, "package.module:factory"),
    (f"{MODULE}:", None, "package.module:factory"),
    ("pe_no_such_module_xyz:make", None, "no module named 'pe_no_such_module_xyz'"),
    ("not a module:make", None, "not a Python module name"),
    (f"{MODULE}:missing_factory", None, "has no 'missing_factory'"),
    (f"{MODULE}:SNAPSHOTS", None, "not a function"),
    (f"{MODULE}:broken", None, "ValueError: no such size"),
    (f"{MODULE}:not_a_model", None, "not a torch.nn.Module"),
    (f"{MODULE}:make_net", "{classes: 5}", "not valid JSON"),
    (f"{MODULE}:make_net", "5", "JSON object"),
    (f"{MODULE}:make_net", '{"nope": 1}', "unexpected keyword argument"),
])
def test_bad_spec_or_arguments_are_user_errors(models, tmp_path, spec, args, words):
    path = tmp_path / "sd.pt"
    torch.save(file_state(), path)
    with pytest.raises(UserError) as err:
        load_into_model(str(path), spec, args)
    assert words in str(err.value)


def test_cli_inspect_with_model_code(models, tmp_path):
    _, prefixed = messy_state()
    path = tmp_path / "messy.pt"
    torch.save(prefixed, path)
    env = {"PYTHONPATH": str(tmp_path)}
    proc = run_main("inspect", "--model", f"{MODULE}:make_net", path, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    kinds = {t["name"]: t["kind"] for t in out["tensors"]}
    assert kinds["encoder.0.proj.weight"] == kinds["decoder.0.norm.bias"] == "parameter"
    assert kinds["scale"] == "buffer" and kinds["extra.weight"] == "tensor"
    assert not any(n.startswith("module.") for n in kinds)

    text = run_main("inspect", "--model", f"{MODULE}:make_net", path, env=env)
    assert text.returncode == 0, text.stderr
    for line in ("encoder (Sequential)", "  0 (Block)", "decoder (Sequential)", "unexpected"):
        assert line in text.stdout

    bad = run_main("inspect", "--model", "no_colon_here", path, "--json", env=env)
    assert "package.module:factory" in assert_one_error_line(bad)
    bad = run_main("inspect", "--model", f"{MODULE}:make_net", "--model-args", "{oops", path,
                   env=env)
    assert "not valid JSON" in assert_one_error_line(bad)
