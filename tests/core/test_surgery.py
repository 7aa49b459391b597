"""Rename, delete and cast as Edits: each applies, saves, and reverts exactly."""
import pytest
import torch

from app.core.model.document import Document
from app.core.errors import UserError
from app.core.formats import load_document
from app.core.formats.save import save_document
from app.core.edits.surgery import CastEdit, DeleteEdit, RenameEdit, edit_from_step, extract_subtree, save_subtree
from tests.checkpoints import tied_lm, training_checkpoint


def snapshot(doc):
    return ([(n, e.tensor(), list(e.shared_with), e.dtype) for n, e in doc.tensors.items()],
            dict(doc.entries), [n.full_name for n in doc.root.walk()])


def assert_restored(doc, snap):
    names, entries, tree = snapshot(doc)
    assert [n for n, *_ in names] == [n for n, *_ in snap[0]]
    for (n, t, sw, dt), (_, t0, sw0, dt0) in zip(names, snap[0]):
        assert t is t0 and sw == sw0 and dt == dt0, n
    assert entries == snap[1] and tree == snap[2]


def ddp_doc(tmp_path):
    sd = {f"module.{k}": v for k, v in tied_lm().state_dict().items()}
    torch.save(sd, tmp_path / "ddp.pt")
    return load_document(str(tmp_path / "ddp.pt"))


def test_rename_strips_module_prefix_and_reverts(tmp_path):
    doc = ddp_doc(tmp_path)
    snap = snapshot(doc)
    edit = RenameEdit(r"^module\.", "")
    edit.apply(doc)
    assert list(doc.tensors)[0] == "embed.weight"
    assert doc.entry("lm_head.weight").shared_with == ["embed.weight"]
    assert list(doc.container)[0] == "embed.weight"
    save_document(doc, str(tmp_path / "out.pt"))
    assert list(torch.load(tmp_path / "out.pt", weights_only=True)) == list(doc.tensors)
    edit.revert(doc)
    assert_restored(doc, snap)
    assert edit.recipe_step() == {"op": "rename", "from": r"^module\.", "to": ""}


def test_rename_collision_refused_before_any_change(tmp_path):
    doc = ddp_doc(tmp_path)
    snap = snapshot(doc)
    with pytest.raises(UserError, match="same name"):
        RenameEdit(r"\.(weight|bias)$", ".w").apply(doc)
    assert_restored(doc, snap)
    with pytest.raises(UserError):
        RenameEdit("^nothing", "x").apply(doc)
    with pytest.raises(UserError):
        RenameEdit("(", "x")


def test_rename_in_nested_checkpoint(tmp_path):
    torch.save(training_checkpoint(tied_lm()), tmp_path / "ck.pt")
    doc = load_document(str(tmp_path / "ck.pt"))
    RenameEdit(r"^model\.body\.", "model.trunk.").apply(doc)
    assert "model.trunk.0.weight" in doc.tensors
    assert list(doc.container["model"])[1] == "trunk.0.weight"
    save_document(doc, str(tmp_path / "o.pt"))
    assert "model.trunk.0.weight" in load_document(str(tmp_path / "o.pt")).tensors


def test_delete_glob_and_optimizer_entry_then_undo(tmp_path):
    torch.save(training_checkpoint(tied_lm()), tmp_path / "ck.pt")
    doc = load_document(str(tmp_path / "ck.pt"))
    snap = snapshot(doc)
    drop_opt, drop_body = DeleteEdit("optimizer"), DeleteEdit("model.body.*")
    drop_opt.apply(doc)
    drop_body.apply(doc)
    assert "optimizer" not in doc.entries and "optimizer" not in doc.container
    assert not any(n.startswith(("optimizer.", "model.body.")) for n in doc.tensors)
    save_document(doc, str(tmp_path / "small.pt"))
    back = torch.load(tmp_path / "small.pt", weights_only=True)
    assert list(back) == ["model", "epoch", "config", "history"]
    assert list(back["model"]) == ["embed.weight", "lm_head.weight"]
    drop_body.revert(doc)
    drop_opt.revert(doc)
    assert_restored(doc, snap)
    assert list(doc.container) == ["model", "optimizer", "epoch", "config", "history"]
    with pytest.raises(UserError, match="matches no"):
        DeleteEdit("nope.*").apply(doc)


def test_delete_one_of_tied_pair_and_undo_reties(tmp_path):
    doc = Document.from_object(tied_lm().state_dict())
    snap = snapshot(doc)
    edit = DeleteEdit("lm_head.weight")
    edit.apply(doc)
    assert doc.entry("embed.weight").shared_with == []
    edit.revert(doc)
    assert_restored(doc, snap)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "fp16"])
def test_cast_keeps_ties_and_reverts_exactly(tmp_path, dtype):
    doc = Document.from_object(tied_lm().state_dict())
    snap = snapshot(doc)
    edit = CastEdit("*", dtype)
    edit.apply(doc)
    assert doc.tensor("embed.weight").dtype == edit.dtype
    assert doc.tensor("embed.weight") is doc.tensor("lm_head.weight")
    for out in ("c.pt", "c.safetensors"):
        save_document(doc, str(tmp_path / out))
        again = load_document(str(tmp_path / out))
        assert again.entry("lm_head.weight").shared_with == ["embed.weight"]
        assert again.tensor("body.0.weight").dtype == edit.dtype
    edit.revert(doc)
    assert_restored(doc, snap)


def test_cast_live_module_keeps_parameter_objects():
    model = tied_lm()
    doc = Document.from_module(model)
    p = model.embed.weight
    edit = CastEdit("embed.weight", "float16")
    edit.apply(doc)
    assert model.embed.weight is p and model.lm_head.weight is p and p.dtype == torch.float16
    assert doc.entry("lm_head.weight").dtype == torch.float16
    edit.revert(doc)
    assert p.dtype == torch.float32


def test_bad_dtype_and_steps():
    with pytest.raises(UserError, match="dtype"):
        CastEdit("*", "float17")
    assert isinstance(edit_from_step({"op": "delete", "target": "x"}), DeleteEdit)
    with pytest.raises(UserError):
        edit_from_step({"op": "cast", "target": "x"})


def test_extract_subtree_relative_or_kept(tmp_path):
    doc = Document.from_object(tied_lm().state_dict())
    sub = extract_subtree(doc, "body")
    assert list(sub) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert list(extract_subtree(doc, "body.0", relative=False)) == ["body.0.weight", "body.0.bias"]
    save_subtree(doc, "body", str(tmp_path / "body.safetensors"))
    again = load_document(str(tmp_path / "body.safetensors"))
    assert torch.equal(again.tensor("1.weight"), doc.tensor("body.1.weight"))
