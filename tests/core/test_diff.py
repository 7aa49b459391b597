"""``main.py diff A B [--json] [--atol X] [--rtol Y] [--rename FROM=TO]`` (CONTRACT.md section 5)."""
import json

import pytest
import torch
from safetensors.torch import save_file

from app.__main__ import main
from tests.checkpoints import tied_lm, training_checkpoint
from tests.cli import run_main_process


def diff(capsys, *args) -> tuple[int, str, str]:
    code = main(["diff", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def diff_json(capsys, *args) -> tuple[int, dict]:
    code, out, err = diff(capsys, *args, "--json")
    assert err == ""
    return code, json.loads(out)


def state(seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"encoder.0.weight": torch.randn(8, 4, generator=g),
            "encoder.0.bias": torch.randn(8, generator=g),
            "head.weight": torch.randn(3, 8, generator=g)}


def clone(sd: dict) -> dict:
    return {k: v.clone() for k, v in sd.items()}


def test_equal_files_in_two_formats_exit_0(tmp_path, capsys):
    sd = state()
    torch.save(sd, tmp_path / "a.pt")
    save_file(clone(sd), str(tmp_path / "b.safetensors"))
    code, out = diff_json(capsys, tmp_path / "a.pt", tmp_path / "b.safetensors")
    assert code == 0
    assert out["equal"] == list(sd) and out["changed"] == []
    assert out["only_a"] == out["only_b"] == out["shape_changed"] == out["dtype_changed"] == []
    assert out["summary"] == {"matched": 3, "changed": 0, "equal": 3, "only_a": 0, "only_b": 0,
                              "shape_changed": 0, "dtype_changed": 0}
    assert out["a"] == str(tmp_path / "a.pt") and out["b"] == str(tmp_path / "b.safetensors")
    code, text, _ = diff(capsys, tmp_path / "a.pt", tmp_path / "b.safetensors")
    assert code == 0 and "equal: 3 tensors" in text and text.rstrip().endswith("identical")


def test_one_element_change_reports_exact_figures(tmp_path, capsys):
    a = state()
    b = clone(a)
    b["encoder.0.weight"][2, 1] += 0.25
    torch.save(a, tmp_path / "a.pt")
    torch.save(b, tmp_path / "b.pt")
    code, out = diff_json(capsys, tmp_path / "a.pt", tmp_path / "b.pt")
    assert code == 1
    assert out["equal"] == ["encoder.0.bias", "head.weight"]
    [ch] = out["changed"]
    A, B = a["encoder.0.weight"].double(), b["encoder.0.weight"].double()
    assert ch["name"] == "encoder.0.weight" and ch["n_diff"] == 1 and ch["numel"] == 32
    assert ch["max_abs"] == pytest.approx((A - B).abs().max().item(), rel=1e-12)
    # float32 tensors: norms are float32 dot products (to ~1e-7 here, see test_diff_accuracy.py)
    assert ch["rel_l2"] == pytest.approx(((A - B).norm() / B.norm()).item(), rel=1e-6)
    assert ch["cosine"] == pytest.approx(torch.nn.functional.cosine_similarity(
        A.flatten(), B.flatten(), dim=0).item(), rel=1e-6)
    assert out["summary"]["changed"] == 1 and out["summary"]["matched"] == 3
    code, text, _ = diff(capsys, tmp_path / "a.pt", tmp_path / "b.pt")
    row = next(line for line in text.splitlines() if line.strip().startswith("encoder.0.weight"))
    assert row.split()[-2:] == ["1", "32"]


def test_tolerances_accept_small_changes(tmp_path, capsys):
    a = state()
    b = clone(a)
    b["head.weight"] += 1e-4
    torch.save(a, tmp_path / "a.pt")
    torch.save(b, tmp_path / "b.pt")
    assert diff_json(capsys, tmp_path / "a.pt", tmp_path / "b.pt")[0] == 1
    code, out = diff_json(capsys, tmp_path / "a.pt", tmp_path / "b.pt", "--atol", "1e-3")
    assert code == 0 and "head.weight" in out["equal"]
    code, out = diff_json(capsys, tmp_path / "a.pt", tmp_path / "b.pt", "--rtol", "1e-9")
    assert code == 1 and out["changed"][0]["n_diff"] == 24


def test_renamed_prefixes_match_with_rules_and_presets(tmp_path, capsys):
    a = state()
    torch.save(a, tmp_path / "a.pt")
    torch.save({"module." + k: v.clone() for k, v in a.items()}, tmp_path / "ddp.pt")
    torch.save({k.replace("encoder.", "encoder._orig_mod."): v.clone() for k, v in a.items()},
               tmp_path / "compiled.pt")
    code, out = diff_json(capsys, tmp_path / "a.pt", tmp_path / "ddp.pt")
    assert code == 1 and out["only_a"] == list(a) and out["only_b"] == ["module." + k for k in a]
    code, text, _ = diff(capsys, tmp_path / "a.pt", tmp_path / "ddp.pt")
    assert "--rename '^module\\.='" in text
    for rule in ("^module\\.=", "module"):
        code, out = diff_json(capsys, tmp_path / "a.pt", tmp_path / "ddp.pt", "--rename", rule)
        assert code == 0 and out["equal"] == list(a)
    code, out = diff_json(capsys, tmp_path / "compiled.pt", tmp_path / "ddp.pt",
                          "--rename", "_orig_mod", "--rename", "module")
    assert code == 0 and out["equal"] == list(a)


def test_shape_and_dtype_changes(tmp_path, capsys):
    a = state()
    b = clone(a)
    b["head.weight"] = torch.randn(4, 8)
    b["encoder.0.weight"] = a["encoder.0.weight"].to(torch.bfloat16)
    b["encoder.0.bias"] = a["encoder.0.bias"].double()       # exact in float64: equal values
    torch.save(a, tmp_path / "a.pt")
    save_file(b, str(tmp_path / "b.safetensors"))
    code, out = diff_json(capsys, tmp_path / "a.pt", tmp_path / "b.safetensors")
    assert code == 1
    assert out["shape_changed"] == [{"name": "head.weight", "a": [3, 8], "b": [4, 8]}]
    assert out["dtype_changed"] == [{"name": "encoder.0.weight", "a": "float32", "b": "bfloat16"},
                                    {"name": "encoder.0.bias", "a": "float32", "b": "float64"}]
    assert [c["name"] for c in out["changed"]] == ["encoder.0.weight"]
    assert out["equal"] == ["encoder.0.bias"]
    want = (a["encoder.0.weight"].double() - b["encoder.0.weight"].double()).abs().max().item()
    assert out["changed"][0]["max_abs"] == want
    assert out["summary"]["matched"] == 2 and out["summary"]["shape_changed"] == 1


def test_nan_on_one_side_differs_nan_on_both_is_equal(tmp_path, capsys):
    a = state()
    a["encoder.0.bias"][3] = float("nan")
    b = clone(a)
    torch.save(a, tmp_path / "a.pt")
    torch.save(b, tmp_path / "same.pt")
    b["head.weight"][0, 0] = float("nan")
    torch.save(b, tmp_path / "b.pt")
    code, out = diff_json(capsys, tmp_path / "a.pt", tmp_path / "same.pt")
    assert code == 0 and "encoder.0.bias" in out["equal"]
    code, out = diff_json(capsys, tmp_path / "a.pt", tmp_path / "b.pt", "--atol", "10")
    assert code == 1
    [ch] = out["changed"]
    assert ch["name"] == "head.weight" and ch["n_diff"] == 1
    assert ch["nan_a"] == 0 and ch["nan_b"] == 1 and ch["max_abs"] == 0.0
    code, text, _ = diff(capsys, tmp_path / "a.pt", tmp_path / "b.pt")
    assert "NaN: A 0, B 1" in text


def test_tied_tensors_compared_under_every_name(tmp_path, capsys):
    model = tied_lm()
    torch.save(model.state_dict(), tmp_path / "tied.pt")       # embed.weight is lm_head.weight
    untied = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(untied, tmp_path / "untied.pt")
    code, out = diff_json(capsys, tmp_path / "tied.pt", tmp_path / "untied.pt")
    assert code == 0 and "embed.weight" in out["equal"] and "lm_head.weight" in out["equal"]
    untied["lm_head.weight"][0, 0] += 1
    torch.save(untied, tmp_path / "untied2.pt")
    code, out = diff_json(capsys, tmp_path / "tied.pt", tmp_path / "untied2.pt")
    assert [c["name"] for c in out["changed"]] == ["lm_head.weight"]
    with torch.no_grad():
        model.embed.weight[1, 1] = 5.0  # both tied names change
    torch.save(model.state_dict(), tmp_path / "tied2.pt")
    code, out = diff_json(capsys, tmp_path / "tied.pt", tmp_path / "tied2.pt")
    assert code == 1
    assert [c["name"] for c in out["changed"]] == ["embed.weight", "lm_head.weight"]
    assert out["changed"][0]["n_diff"] == out["changed"][1]["n_diff"] == 1


def test_training_checkpoint_against_bare_state_dict(tmp_path, capsys):
    model = tied_lm()
    torch.save(training_checkpoint(model), tmp_path / "ck.pt")
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    code, text, _ = diff(capsys, tmp_path / "ck.pt", tmp_path / "sd.pt")
    assert code == 1 and "try --rename '^model\\.='" in text
    code, out = diff_json(capsys, tmp_path / "ck.pt", tmp_path / "sd.pt", "--rename", "^model\\.=")
    assert out["equal"] == list(model.state_dict()) and out["changed"] == []
    assert out["only_b"] == [] and "optimizer.state.0.exp_avg" in out["only_a"]
    assert "history.0" in out["only_a"] and code == 1


@pytest.mark.parametrize("case", ["missing", "corrupt", "regex", "atol", "collision", "preset"])
def test_bad_input_exits_2_with_one_error_line(tmp_path, capsys, case):
    good = tmp_path / "a.pt"
    torch.save({"a.w": torch.ones(2), "b.w": torch.ones(2)}, good)
    other, extra = good, []
    if case == "missing":
        other = tmp_path / "missing.pt"
    elif case == "corrupt":
        other = tmp_path / "bad.safetensors"
        other.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    elif case == "regex":
        extra = ["--rename", "(=x"]
    elif case == "atol":
        extra = ["--atol", "-1"]
    elif case == "collision":
        extra = ["--rename", "^[ab]\\.="]
    elif case == "preset":
        extra = ["--rename", "nonsense"]
    code, out, err = diff(capsys, good, other, *extra)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    if case in ("missing", "corrupt"):
        assert str(other) in lines[0]


def test_subprocess_smoke(tmp_path):
    a = state()
    b = clone(a)
    b["head.weight"][0] = 0
    save_file(a, str(tmp_path / "a.safetensors"))
    save_file(b, str(tmp_path / "b.safetensors"))
    proc = run_main_process("diff", tmp_path / "a.safetensors", tmp_path / "b.safetensors", "--json")
    assert proc.returncode == 1, proc.stderr
    assert [c["name"] for c in json.loads(proc.stdout)["changed"]] == ["head.weight"]
