"""fp8 tensors take fills, cell values and expressions (through float32), refuse what they
cannot hold in one line, and undo exactly."""
import pytest
import torch

from app.core.model import dtypes
from app.core.model.document import Document
from app.core.edits.specs import EditSpec, edit_from_spec, preview_edit
from app.core.edits.values import CellEdit, ExprEdit, FillEdit, parse_cell_value
from app.core.errors import UserError
from app.core.model.tensor_entry import TensorEntry

FP8 = list(dtypes.FLOAT8)


def doc_of(dtype):
    t = torch.tensor([1.0, 2.0, 4.0, 8.0]).to(dtype)
    return Document([TensorEntry.of("w", t)]), t


@pytest.mark.parametrize("dtype", FP8, ids=dtypes.dtype_name)
def test_fill_cell_expression_and_undo(dtype):
    doc, t = doc_of(dtype)
    before = t.clone()
    fill = FillEdit("w", 0.5, index="[0:2]")
    fill.apply(doc)
    assert t[:2].float().tolist() == [0.5, 0.5]
    fill.revert(doc)
    cell = CellEdit("w", (3,), parse_cell_value("2", dtype))
    cell.apply(doc)
    assert float(t[3].float()) == 2.0
    cell.revert(doc)
    expr = ExprEdit("w", "w * 2", mask="w > 1")
    expr.apply(doc)
    assert t.float().tolist() == [1.0, 4.0, 8.0, 16.0]  # powers of two: exact in every kind
    expr.revert(doc)
    add = edit_from_spec(EditSpec("add", value="1"), ["w"])
    add.apply(doc)
    assert t.float().tolist() == (before.float() + 1).to(dtype).float().tolist()
    add.revert(doc)
    assert torch.equal(t.view(torch.uint8), before.view(torch.uint8))
    assert preview_edit(EditSpec("mul", value="2"), "w", t).changed == 4


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_values_beyond_range_refused_in_one_line(dtype):
    doc, t = doc_of(dtype)
    for edit in (FillEdit("w", 1e9), CellEdit("w", (0,), 1e9)):
        with pytest.raises(UserError) as err:
            edit.apply(doc)
        assert "too large for " + dtypes.dtype_name(dtype) in str(err.value)
        assert "\n" not in str(err.value)
    assert t.float().tolist() == [1.0, 2.0, 4.0, 8.0]


def test_recipe_with_complex_and_fp8_steps_replays(tmp_path, capsys):
    import json

    from app.__main__ import main
    from app.core.edits.values import CellEdit
    src, out, recipe = tmp_path / "m.pt", tmp_path / "out.pt", tmp_path / "r.json"
    torch.save({"z": torch.zeros(3, dtype=torch.complex64),
                "f8": torch.zeros(3).to(torch.float8_e4m3fn)}, src)
    doc = Document([TensorEntry.of("z", torch.zeros(3, dtype=torch.complex64))])
    cell = CellEdit("z", (1,), parse_cell_value("1+2j", torch.complex64))
    cell.apply(doc)
    steps = [cell.recipe_step(), {"op": "fill", "target": "f8", "value": 0.5},
             {"op": "expr", "target": "f8", "expr": "w + 1"}]
    recipe.write_text(json.dumps({"version": 1, "steps": steps}))
    assert main(["apply", str(recipe), str(src), "-o", str(out)]) == 0, capsys.readouterr().err
    back = torch.load(out)
    assert back["z"].tolist() == [0j, 1 + 2j, 0j]
    assert back["f8"].float().tolist() == [1.5, 1.5, 1.5]
