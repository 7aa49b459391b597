"""Quantized, sparse, complex, unsigned, bool, views and expanded tensors: shown, measured,
edited where torch defines it (one clear refusal elsewhere), saved bit-exact in .pt."""
import json
import warnings

import numpy as np
import pytest
import torch

from app.__main__ import main
from app.core.model.document import Document
from app.core.edits.values import CellEdit, FillEdit, parse_cell_value
from app.core.errors import UserError
from app.core.formats import load_document
from app.core.formats.save import save_document
from app.core.model.slice2d import Slice2D
from app.core.stats import compute_stats, distinct_elements, preview_stats
from app.core.model.tensor_entry import TensorEntry
from app.core.model.ties import tie_key

warnings.filterwarnings("ignore", category=UserWarning)


def quantized():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, generator=g)
    return {"qt": torch.quantize_per_tensor(x, 0.05, 3, torch.quint8),
            "qc": torch.quantize_per_channel(x, torch.rand(5, generator=g) + 0.01,
                                             torch.arange(5), 1, torch.qint8)}


def sparse():
    g = torch.Generator().manual_seed(1)
    d = torch.randn(6, 8, generator=g)
    d[d.abs() < 0.8] = 0
    return d, {"coo": d.to_sparse(), "csr": d.to_sparse_csr(), "csc": d.to_sparse_csc(),
               "bsr": d.to_sparse_bsr((2, 4))}


def ref_stats(values: torch.Tensor) -> dict:
    f = values.double().flatten()
    return {"min": f.min().item(), "max": f.max().item(), "mean": f.mean().item(),
            "std": f.std().item(), "zeros": int((f == 0).sum())}


def assert_stats(s, ref):
    for k in ("min", "max", "mean", "std"):
        assert getattr(s, k) == pytest.approx(ref[k], rel=1e-6, abs=1e-9), k
    assert s.zeros == ref["zeros"]


def inspect_json(capsys, path) -> dict:
    assert main(["inspect", str(path), "--json", "--stats"]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return {t["name"]: t for t in json.loads(out.out)["tensors"]}


# -- quantized ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["qt", "qc"])
def test_quantized_shows_dequantized_values_and_raw_integers(name):
    q = quantized()[name]
    view = Slice2D(q, 0, 1)
    assert np.array_equal(view.block(0, 6, 0, 5), q.dequantize().numpy())
    transposed = Slice2D(q, 1, 0).block(1, 4, 2, 5)
    assert np.array_equal(transposed, q.dequantize().t()[1:4, 2:5].numpy())
    raw = Slice2D(q, 0, 1, raw=True)
    assert raw.kind == "int" and np.array_equal(raw.block(0, 6, 0, 5), q.int_repr().numpy())
    assert_stats(compute_stats(q), ref_stats(q.dequantize()))


def test_quantized_edits_refused_in_one_line_and_saved_bit_exact(tmp_path, capsys):
    qs = quantized()
    doc = Document([TensorEntry.of(n, t) for n, t in qs.items()])
    for edit in (FillEdit("qc", 0.5), CellEdit("qt", (0, 0), 1.0)):
        with pytest.raises(UserError) as err:
            edit.apply(doc)
        assert "\n" not in str(err.value) and "quantized" in str(err.value)
    path = tmp_path / "q.pt"
    save_document(doc, str(path))
    back = load_document(str(path))
    for n, q in qs.items():
        b = back.tensor(n)
        assert b.qscheme() == q.qscheme() and torch.equal(b.int_repr(), q.int_repr())
        assert torch.equal(b.dequantize(), q.dequantize())
    out = inspect_json(capsys, path)
    assert out["qc"]["stats"]["min"] == pytest.approx(float(qs["qc"].dequantize().min()))


def test_quantized_linear_state_dict_and_live_module(tmp_path, capsys):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.ao.nn.quantized.Linear(4, 3))
    path = tmp_path / "qlin.pt"
    torch.save(m.state_dict(), path)
    out = inspect_json(capsys, path)
    weight = next(t for n, t in out.items() if n.endswith("_packed_params.0"))
    assert weight["dtype"] == "qint8" and weight["stats"]["min"] is not None
    live = Document.from_module(m)
    assert "0._packed_params._packed_params.0" in live.tensors and live.total_numel() > 0
    with pytest.raises(UserError):
        FillEdit("0._packed_params._packed_params.1", 1.0).apply(live)


# -- sparse ------------------------------------------------------------------------------------

def test_sparse_tensors_open_show_measure_save(tmp_path, capsys):
    dense, sp = sparse()
    path = tmp_path / "sparse.pt"
    torch.save({**sp, "dense": torch.ones(3)}, path)
    doc = load_document(str(path))
    assert set(sp) <= set(doc.tensors)
    for n, t in sp.items():
        e = doc.entry(n)
        assert e.layout == t.layout.__str__().removeprefix("torch.") and n in e.dtype_label
        assert np.array_equal(Slice2D(e.tensor(), 0, 1).block(1, 5, 2, 7), dense[1:5, 2:7].numpy())
        assert_stats(compute_stats(e.tensor()), ref_stats(dense))
        with pytest.raises(UserError) as err:
            FillEdit(n, 1.0).apply(doc)
        assert "sparse" in str(err.value)
    assert len({tie_key(t) for t in sp.values()}) == len(sp)
    out_path = tmp_path / "again.pt"
    save_document(doc, str(out_path))
    back = load_document(str(out_path))
    for n, t in sp.items():
        b = back.tensor(n)
        assert b.layout == t.layout and torch.equal(b.to_dense(), t.to_dense())
    out = inspect_json(capsys, path)
    assert out["csr"]["stats"]["zeros"] == int((dense == 0).sum())


# -- complex -----------------------------------------------------------------------------------

@pytest.mark.parametrize("part", ["real", "imag", "abs"])
def test_complex_stats_by_part(part):
    g = torch.Generator().manual_seed(2)
    z = torch.complex(torch.randn(40, generator=g), torch.randn(40, generator=g))
    s = compute_stats(z, part=part)
    assert s.part == part
    assert_stats(s, ref_stats(getattr(z, part) if part != "abs" else z.abs()))
    assert s.counts.sum() == 40


def test_complex_cell_accepts_1_plus_2j():
    doc = Document([TensorEntry.of("z", torch.zeros(3, dtype=torch.complex64))])
    CellEdit("z", (1,), parse_cell_value("1+2j", torch.complex64)).apply(doc)
    assert doc.tensor("z")[1] == complex(1, 2)
    with pytest.raises(UserError):
        parse_cell_value("1+2j", torch.float32)


# -- unsigned, bool, views ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.uint16, torch.uint32, torch.uint64, torch.bool])
def test_unsigned_and_bool_show_measure_edit_save(tmp_path, dtype):
    t = (torch.arange(12).reshape(3, 4) % 2 == 1) if dtype == torch.bool else \
        torch.arange(12).reshape(3, 4).to(dtype)
    doc = Document([TensorEntry.of("w", t)])
    assert np.array_equal(Slice2D(t).block(0, 3, 0, 4), t.numpy())
    assert_stats(compute_stats(t), ref_stats(t.double()))
    CellEdit("w", (2, 3), parse_cell_value("1" if dtype == torch.bool else "65535", dtype)).apply(doc)
    save_document(doc, str(tmp_path / "u.pt"))
    assert torch.equal(load_document(str(tmp_path / "u.pt")).tensor("w"), t)


def test_views_into_a_larger_storage(tmp_path):
    base = torch.arange(100, dtype=torch.float32)
    view = base[10:70].reshape(6, 10)[:, 2:8:2]  # offset and strides
    doc = Document([TensorEntry.of("v", view)])
    assert np.array_equal(Slice2D(view).block(0, 6, 0, 3), view.numpy())
    assert_stats(compute_stats(view), ref_stats(view))
    CellEdit("v", (1, 1), 0.5).apply(doc)
    assert base[24] == 0.5  # written through the view into the storage
    save_document(doc, str(tmp_path / "v.pt"))
    assert torch.equal(load_document(str(tmp_path / "v.pt")).tensor("v"), view)


# -- std and expanded --------------------------------------------------------------------------

def test_std_is_torch_std_with_bessel():
    t = torch.tensor([1.0, 2.0, 4.0, 7.0])
    assert compute_stats(t).std == pytest.approx(t.std().item())
    assert compute_stats(t).std != pytest.approx(t.std(correction=0).item())


def test_expanded_stats_from_distinct_elements():
    base = torch.randn(5, 1, generator=torch.Generator().manual_seed(3))
    t = base.expand(5, 300)
    assert distinct_elements(t) == 5
    s, ref = compute_stats(t), compute_stats(t.contiguous())
    assert s.as_dict() == pytest.approx(ref.as_dict()) and (s.counts == ref.counts).all()


def test_huge_expanded_tensor_is_bounded(tmp_path, capsys):
    t = torch.ones(1).expand(10 ** 6, 10 ** 6)
    s = compute_stats(t)
    assert (s.numel, s.mean, s.std, int(s.counts.sum())) == (10 ** 12, 1.0, 0.0, 10 ** 12)
    assert preview_stats(t).numel == 10 ** 12
    assert Slice2D(t, 0, 1).block(0, 256, 0, 64).shape == (256, 64)
    path = tmp_path / "exp.pt"
    torch.save({"e": t}, path)
    out = inspect_json(capsys, path)
    assert out["e"]["stats"]["mean"] == 1.0 and out["e"]["numel"] == 10 ** 12


def test_overlapping_view_refused_in_one_line_not_computed_for_days(tmp_path, capsys):
    t = torch.arange(20_000, dtype=torch.float32).as_strided((10 ** 4, 10 ** 4), (1, 1))
    with pytest.raises(ValueError, match="overlapping view"):
        compute_stats(t)
    assert Slice2D(t).block(0, 2, 0, 3).tolist() == [[0, 1, 2], [1, 2, 3]]
    path = tmp_path / "overlap.pt"
    torch.save({"o": t, "ok": torch.ones(2)}, path)
    out = inspect_json(capsys, path)
    assert "overlapping view" in out["o"]["stats"]["error"] and out["ok"]["stats"]["mean"] == 1.0
    assert main(["inspect", str(path), "--stats"]) == 0
    assert "no statistics: an overlapping view" in capsys.readouterr().out


def test_pooled_preview_weights_an_expanded_tensor_by_what_it_stands_for():
    from app.core.stats import compute_stats_many, preview_stats_many
    tensors = [torch.ones(1).expand(10 ** 6, 10 ** 6), torch.zeros(2000, 1000),
               torch.ones(3).to(torch.float8_e4m3fn)]
    p = preview_stats_many(tensors)
    assert p.approximate and p.numel == 10 ** 12 + 2_000_003
    assert p.mean == pytest.approx(1.0, abs=1e-5)
    exact = compute_stats_many(tensors)
    assert exact.mean == pytest.approx(1 - 2e6 / (10 ** 12 + 2_000_003))
    assert exact.zeros == 2_000_000 and int(exact.counts.sum()) == exact.numel


def test_edit_dialog_specs_take_complex_values():
    from app.core.edits.specs import EditSpec, edit_from_spec
    doc = Document([TensorEntry.of("z", torch.zeros(2, dtype=torch.complex64)),
                    TensorEntry.of("x", torch.zeros(2))])
    edit_from_spec(EditSpec("set", value="1+2j"), ["z"]).apply(doc)
    edit_from_spec(EditSpec("add", value="1j"), ["z"]).apply(doc)
    assert doc.tensor("z").tolist() == [1 + 3j, 1 + 3j]
    with pytest.raises(UserError, match="complex"):
        edit_from_spec(EditSpec("set", value="1+2j"), ["x"]).apply(doc)
