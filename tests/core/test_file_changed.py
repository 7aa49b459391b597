"""The open file rewritten underneath (issue 9): reads and saves check the file's stamp first, so a
``torch.save`` to the open path gives a UserError, never SIGBUS or another file's values."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from app.core.errors import UserError
from app.core.model.file_stamps import FileChangedError, FileStamps, source_files, stamp
from app.core.formats import load_document


def _state(seed: int = 0, n: int = 4096) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"layer{i}.weight": torch.randn(n, generator=g) for i in range(4)}


@pytest.fixture
def pt_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save(_state(), path)
    return str(path)


def test_stamps_see_a_same_size_rewrite(pt_file):
    stamps = FileStamps([pt_file])
    assert stamps.changed() == []
    before = stamp(pt_file)
    torch.save(_state(seed=1), pt_file)  # same names and shapes: same size
    assert os.path.getsize(pt_file) == before.size
    assert stamps.changed() == [pt_file]


def test_source_files_of_a_sharded_folder(tmp_path):
    save_file({"a": torch.ones(2)}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({"b": torch.ones(2)}, str(tmp_path / "model-00002-of-00002.safetensors"))
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("x")
    names = [os.path.basename(p) for p in source_files(str(tmp_path))]
    assert names == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                     "model.safetensors.index.json"]
    assert source_files(str(tmp_path / "model.safetensors.index.json")) == source_files(str(tmp_path))


@pytest.mark.parametrize("shorter", [True, False], ids=["truncated", "same-size"])
def test_read_after_rewrite_is_refused(pt_file, shorter):
    doc = load_document(pt_file)
    kept = doc.read_private([doc.entry("layer0.weight")])[0]
    expected = kept.clone()
    doc.tensor("layer0.weight").mul_(2)  # an edit: must survive the rewrite
    torch.save({"x": torch.zeros(3)} if shorter else _state(seed=1), pt_file)
    assert doc.files_changed() == [os.path.abspath(pt_file)]
    with pytest.raises(FileChangedError, match="changed on disk"):
        doc.tensor("layer1.weight")  # file-backed: touching it could be SIGBUS
    assert isinstance(FileChangedError("x"), UserError)
    # what was read lives in private memory: the old values, with the edit
    assert torch.equal(doc.tensor("layer0.weight"), expected * 2)
    with pytest.raises(FileChangedError):
        doc.check_files()


def test_keep_working_after_a_truncating_rewrite(pt_file):
    doc = load_document(pt_file)
    doc.read_private([doc.entry("layer2.weight")])
    torch.save({"x": torch.zeros(3)}, pt_file)
    lost = doc.detach_from_files()
    assert sorted(lost) == ["layer0.weight", "layer1.weight", "layer3.weight"]
    assert doc.files_changed() == []  # detached: the files are not read any more
    with pytest.raises(FileChangedError, match="never read"):
        doc.tensor("layer1.weight")
    assert doc.tensor("layer2.weight").shape == (4096,)
    with pytest.raises(FileChangedError, match="lost"):
        doc.check_files()  # a save would write placeholders: refused until they are deleted
    from app.core.edits.surgery import DeleteEdit
    for name in lost:
        DeleteEdit(name).apply(doc)
    doc.check_files()
    assert doc.container["layer2.weight"] is doc.tensor("layer2.weight")


def test_lazy_safetensors_read_refused_after_rewrite(tmp_path):
    path = str(tmp_path / "m.safetensors")
    save_file(_state(), path)
    doc = load_document(path)
    first = doc.read_private([doc.entry("layer0.weight")])[0].clone()
    assert not doc.file_backed(doc.tensor("layer0.weight"))  # safetensors maps the file too
    other = str(tmp_path / "other.safetensors")
    save_file({"x": torch.zeros(3)}, other)
    with open(path, "r+b") as f:  # rewritten in place (save_file itself replaces the inode)
        f.truncate(0)
        f.write(open(other, "rb").read())
    with pytest.raises(FileChangedError):
        doc.entry("layer3.weight").tensor()  # the raw lazy read path is guarded too
    assert torch.equal(doc.tensor("layer0.weight"), first)


def test_privatize_keeps_tensor_objects_and_ties(tmp_path):
    w = torch.randn(8, 4)
    path = str(tmp_path / "tied.pt")
    torch.save({"emb.weight": w, "head.weight": w, "p": torch.nn.Parameter(torch.ones(3))}, path)
    doc = load_document(path)
    a, b, p = doc.tensor("emb.weight"), doc.tensor("head.weight"), doc.tensor("p")
    assert doc.file_backed(a)
    assert doc.privatize(list(doc.tensors.values())) > 0
    assert doc.tensor("emb.weight") is a and doc.tensor("p") is p
    assert isinstance(p, torch.nn.Parameter) and p.requires_grad
    assert not doc.file_backed(a) and a.data_ptr() == b.data_ptr()
    assert torch.equal(a, w)


def test_restamp_after_saving_over_the_file(pt_file):
    doc = load_document(pt_file)
    tmp = pt_file + ".new"
    torch.save(_state(seed=2), tmp)
    os.replace(tmp, pt_file)  # what an atomic save in place does
    assert doc.files_changed()
    assert doc.files.rewritten() == []  # the inode we map is intact: reading stays safe
    assert torch.equal(doc.tensor("layer3.weight"), _state()["layer3.weight"])
    doc.check_files()
    assert doc.detach_from_files() == []  # nothing is lost to a replacement
    doc.restamp(pt_file + '.elsewhere')  # a Save As elsewhere: still the old file's data
    assert doc.files.changed()
    doc.restamp(pt_file)
    assert doc.files.changed() == []


def test_apply_cli_refuses_instead_of_sigbus(tmp_path):
    """Without any window: a read of a truncated mmapped file is refused, the process lives."""
    path = tmp_path / "ckpt.pt"
    torch.save(_state(n=1 << 16), path)
    code = textwrap.dedent(f"""
        import torch
        from app.core.formats import load_document
        from app.core.edits.values import FillEdit
        doc = load_document({str(path)!r})
        torch.save({{"x": torch.zeros(2)}}, {str(path)!r})
        try:
            FillEdit(["layer3.weight"], 0.0).apply(doc)
        except Exception as exc:
            print("refused:", type(exc).__name__, exc)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "refused: FileChangedError" in out.stdout
