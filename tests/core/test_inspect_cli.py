"""``main.py inspect PATH [--json] [--stats]`` exactly as CONTRACT.md section 1."""
import json

import pytest
import torch
from safetensors.torch import save_file

from tests.checkpoints import odd_dtypes, save_malicious, tied_lm, training_checkpoint
from tests.cli import assert_one_error_line, run_main


def test_json_of_a_training_checkpoint(tmp_path):
    ck = training_checkpoint(tied_lm())
    path = tmp_path / "ck.pt"
    torch.save(ck, path)
    proc = run_main("inspect", path, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["path"] == str(path) and out["format"] == "torch"
    names = [t["name"] for t in out["tensors"]]
    assert names[:3] == ["model.embed.weight", "model.body.0.weight", "model.body.0.bias"]
    assert "optimizer.state.0.exp_avg" in names and "history.0" in names
    first = out["tensors"][0]
    assert first == {"name": "model.embed.weight", "shape": [10, 4], "dtype": "float32",
                     "numel": 40, "kind": "tensor", "shared_with": ["model.lm_head.weight"]}
    top = {"optimizer": "dict (2 keys)", "epoch": "int: 12",
           "config": "dict (2 keys)", "history": "list (2 items)"}
    assert list(out["entries"].items())[:4] == list(top.items())  # top-level summaries first
    assert out["entries"]["config.lr"] == "float: 0.001"  # then values at any depth
    assert out["entries"]["history.1"] == "float: 0.5"
    distinct = {id(t.untyped_storage()): t.numel() for t in
                [ck["model"][k] for k in ck["model"]]}
    opt = sum(v.numel() for s in ck["optimizer"]["state"].values() for v in s.values())
    assert out["total_numel"] == sum(distinct.values()) + opt + 1


def test_json_stats_and_dtype_names(tmp_path):
    sd = {k: v.contiguous() for k, v in odd_dtypes().items()}
    sd["nan"] = torch.tensor([1.0, float("nan"), float("inf"), 0.0])
    path = tmp_path / "m.safetensors"
    save_file(sd, str(path))
    proc = run_main("inspect", path, "--json", "--stats")
    assert proc.returncode == 0, proc.stderr
    out = {t["name"]: t for t in json.loads(proc.stdout)["tensors"]}
    assert out["z.bf16"]["dtype"] == "bfloat16" and out["mask"]["dtype"] == "bool"
    assert out["scalar"]["shape"] == [] and out["empty"]["numel"] == 0
    assert out["nan"]["stats"] == {"min": 0.0, "max": 1.0, "mean": 0.5, "std": pytest.approx(0.5 ** 0.5),
                                   "nan": 1, "inf": 1, "zeros": 1}
    ref = sd["m.f64"]
    assert out["m.f64"]["stats"]["std"] == pytest.approx(ref.std().item())  # Bessel, as torch
    assert out["empty"]["stats"]["min"] is None


def test_human_output_is_an_indented_tree(tmp_path):
    path = tmp_path / "tied.pt"
    torch.save(tied_lm().state_dict(), path)
    proc = run_main("inspect", path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "embed" in lines[1] and lines[2].startswith("  weight  [10, 4]  float32")
    assert "tied with lm_head.weight" in lines[2]
    assert lines[-1].startswith("6 tensors (2 tied names), 68 elements")


@pytest.mark.parametrize("case", ["missing", "text", "random", "truncated", "unsafe", "empty_dir"])
def test_bad_input_exits_2_with_one_error_line(tmp_path, case):
    p = tmp_path / "x.pt"
    if case == "text":
        p.write_text("not a checkpoint")
    elif case == "random":
        p.write_bytes(bytes(range(256)) * 8)
    elif case == "truncated":
        torch.save({"w": torch.randn(500)}, p)
        p.write_bytes(p.read_bytes()[:900])
    elif case == "unsafe":
        save_malicious(str(p), str(tmp_path / "marker"))
    elif case == "empty_dir":
        p = tmp_path / "dir"
        p.mkdir()
    line = assert_one_error_line(run_main("inspect", p, "--json"))
    assert str(p) in line
    assert not (tmp_path / "marker").exists()


def test_inspect_into_a_closed_pipe_exits_quietly(tmp_path):
    """`paramedit inspect big.pt | head`: no BrokenPipeError traceback when head stops reading."""
    import subprocess
    import sys
    from pathlib import Path
    torch.save({f"layer{i}.weight": torch.zeros(2) for i in range(3000)}, tmp_path / "big.pt")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, str(root / "main.py"), "inspect", str(tmp_path / "big.pt")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root)
    proc.stdout.readline()
    proc.stdout.close()  # what head does after its lines
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_stats_keep_no_tensor_in_the_document(tmp_path):
    """``--stats`` reads each tensor, takes its statistics and lets it go: after the report no
    entry read lazily holds a tensor (a 40 GB file is read one tensor at a time)."""
    from app.core.loading.open import open_document
    from app.core.report import inspect_json, inspect_text
    path = tmp_path / "tied.pt"
    torch.save(tied_lm().state_dict(), path)
    sf = tmp_path / "m.safetensors"
    save_file({"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(4)}, str(sf))
    for p in (path, sf):
        doc = open_document(str(p))
        loaded = {n for n, e in doc.tensors.items() if e.is_loaded}  # torch's mmap: views
        assert p == path or not loaded
        out = inspect_json(doc, True)
        assert all(t["stats"]["min"] is not None for t in out["tensors"])
        assert "min=" in inspect_text(doc, True)
        assert {n for n, e in doc.tensors.items() if e.is_loaded} == loaded, p


def test_json_layout_is_one_line_per_tensor_and_the_same_data(tmp_path):
    """The fast writer gives the data ``json.dumps`` would, one tensor a line."""
    import io
    from app.core.report import write_json
    out = {"path": "x", "tensors": [{"name": f"t{i}", "shape": [i, 2], "stats": {"min": -0.5}}
                                    for i in range(3)],
           "entries": {"epoch": "int: 1"}, "none": {}, "empty": [], "total_numel": 12}
    buf = io.StringIO()
    write_json(out, buf)
    text = buf.getvalue()
    assert json.loads(text) == out
    lines = text.splitlines()
    assert '    {"name": "t1", "shape": [1, 2], "stats": {"min": -0.5}},' in lines
    assert lines[0] == "{" and lines[-1] == "}" and text.endswith("\n")


def test_cli_commands_never_import_qt(tmp_path):
    """``--version``, ``--help`` and ``inspect`` start without Qt (one fresh process for all)."""
    import subprocess
    import sys
    from tests.cli import ROOT
    path = tmp_path / "m.safetensors"
    save_file({"a": torch.ones(2)}, str(path))
    script = (
        "import sys, contextlib, io\n"
        "from app.__main__ import main\n"
        "for argv in (['--version'], ['--help'], ['inspect', '--help']):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main(argv)\n"
        "    assert 'PySide6' not in sys.modules, argv\n"
        "    assert argv[0] == 'inspect' or 'torch' not in sys.modules, argv\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['inspect', sys.argv[1], '--json', '--stats']) == 0\n"
        "qt = sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'shiboken')))\n"
        "print('qt:', qt)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "qt: []"


class _Prints:
    def __reduce__(self):
        return (print, ("PWNED",))


def _protocol5(tmp_path, value) -> str:
    """torch warns (UserWarning) about every protocol-5 pickle its weights-only reader reads."""
    path = tmp_path / "p5.pt"
    torch.save({"w": torch.ones(2), "x": value}, path, pickle_protocol=5)
    return path


def test_a_refusal_is_the_only_line_on_stderr_in_a_fresh_process(tmp_path):
    """As a user runs it (the warning showed above the ``error:`` line)."""
    from tests.cli import run_main_process
    proc = run_main_process("inspect", _protocol5(tmp_path, _Prints()))
    line = assert_one_error_line(proc)
    assert "builtins.print" in line
    assert "PWNED" not in proc.stdout + proc.stderr


def test_library_warnings_stay_off_stderr(tmp_path):
    import numpy as np
    import warnings
    path = _protocol5(tmp_path, np.float32(1.5))
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        proc = run_main("inspect", path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert [str(w.message) for w in shown] == []
    assert "w  [2]  float32" in proc.stdout


def test_warnings_asked_for_with_dash_w_are_shown(tmp_path, monkeypatch):
    import sys
    import numpy as np
    import warnings
    monkeypatch.setattr(sys, "warnoptions", ["default"])
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        proc = run_main("inspect", _protocol5(tmp_path, np.float32(1.5)))
    assert proc.returncode == 0, proc.stderr
    assert any("protocol 5" in str(w.message) for w in shown)
