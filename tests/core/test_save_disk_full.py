"""A full disk: the save says "No space left on device" in one line, the file on disk is
unchanged, no temporary and no new folder is left. On a real 1 MiB tmpfs where mounting is
allowed; else with RLIMIT_FSIZE in a forked child (the kernel's EFBIG, a real failed write)."""
import json
import os
import resource
import signal
import subprocess
import uuid

import pytest
import torch

from app.core.model.document import Document
from app.core.errors import UserError
from app.core.formats.save import save_document


def big() -> dict:
    return {f"w{i}": torch.randn(256, 256) for i in range(8)}  # 2 MiB


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                              capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a small tmpfs: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=20)


@pytest.mark.parametrize("name", ["a.pt", "a.safetensors"])
def test_disk_full_says_so_and_keeps_the_file(small_disk, name):
    path = small_disk / name
    torch.save({"x": torch.ones(3)}, path) if name.endswith(".pt") else path.write_bytes(b"old")
    before = path.read_bytes()
    with pytest.raises(UserError) as info:
        save_document(Document.from_object(big()), str(path))
    message = str(info.value)
    assert "No space left on device" in message and "\n" not in message
    assert "enforce fail" not in message
    assert path.read_bytes() == before
    assert os.listdir(small_disk) == [name]


def test_sharded_save_as_on_full_disk_leaves_no_folder(small_disk):
    with pytest.raises(UserError, match="No space left on device"):
        save_document(Document.from_object(big()), str(small_disk / "new" / "ck"),
                      shard_size=256 * 1024)
    assert os.listdir(small_disk) == []


def test_apply_on_full_disk_prints_one_error_line(small_disk, tmp_path, capsys):
    from app.__main__ import main
    src, recipe = tmp_path / "in.pt", tmp_path / "r.json"
    torch.save(big(), src)
    recipe.write_text(json.dumps({"version": 1, "steps": [
        {"op": "fill", "target": "w0", "value": 1.0}]}))
    out = small_disk / "out.pt"
    assert main(["apply", str(recipe), str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "No space left on device" in err[0]
    assert os.listdir(small_disk) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_file_size_limit_is_one_line_and_keeps_the_file(tmp_path):
    """Without a mount: the kernel refuses writes past RLIMIT_FSIZE (EFBIG) in a child."""
    path = tmp_path / "a.pt"
    torch.save({"x": torch.ones(3)}, path)
    before = path.read_bytes()
    report = tmp_path / f"report-{uuid.uuid4().hex}"
    pid = os.fork()
    if pid == 0:
        try:
            signal.alarm(60)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, resource.RLIM_INFINITY))
            try:
                save_document(Document.from_object(big()), str(path))
                text = "saved"
            except UserError as exc:
                text = "UserError: " + str(exc)
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
            report.write_text(text)
            os._exit(0)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    text = report.read_text()
    report.unlink()
    assert text.startswith("UserError: cannot save") and "File too large" in text
    assert "\n" not in text and "enforce fail" not in text
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.pt"]
