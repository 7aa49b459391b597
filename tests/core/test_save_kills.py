"""Saves killed at every step: a real child process SIGKILLs itself after step k of a save, for
every k; the place saved to then loads as entirely old or entirely new, bit-exactly, and the
next save there removes what the killed one left."""
import os
import signal

import pytest
import torch

from app.core.formats import save as core_save
from app.core.model.document import Document
from app.core.formats import load_document
from app.core.formats.save import save_document

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def state(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {f"layer{i}.weight": torch.randn(16, 16, generator=g) for i in range(5)}


def bits(t: torch.Tensor) -> bytes:
    return t.contiguous().view(torch.uint8).numpy().tobytes()


def same(path: str, expected: dict) -> bool:
    doc = load_document(path)
    try:
        return list(doc.tensors) == list(expected) and all(
            bits(doc.tensor(n)) == bits(t) for n, t in expected.items())
    finally:
        doc.close()


def save_killed_at(k: int, new: dict, path: str, **kw) -> bool:
    """Save ``new`` in a forked child that SIGKILLs itself at step ``k``; True when it was killed."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            signal.alarm(60)  # a hung child fails the test (SIGALRM), never hangs it
            count = {"n": 0}

            def hook(_name):
                count["n"] += 1
                if count["n"] == k:
                    os.kill(os.getpid(), signal.SIGKILL)
            core_save.STEP_HOOK = hook
            save_document(Document.from_object(new), path, **kw)
            os._exit(0)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "the child's save failed"
    return False


def leftovers(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


def test_sharded_resave_killed_at_every_step_loads_old_or_new(tmp_path):
    folder = str(tmp_path / "ck")
    old, new = state(0), state(1)
    seen = {"old": 0, "new": 0}
    k = 1
    while True:
        save_document(Document.from_object(old), folder, shard_size=2048)  # 3 shards
        killed = save_killed_at(k, new, folder, shard_size=2048)
        is_old, is_new = same(folder, old), same(folder, new)
        assert is_old or is_new, f"killed at step {k}: neither old nor new"
        seen["old" if is_old else "new"] += 1
        if not killed:
            break
        # the next save to that place removes what the killed one left
        save_document(Document.from_object(old), folder, shard_size=2048)
        assert leftovers(folder) == []
        assert sorted(os.listdir(folder)) == sorted(["model.safetensors.index.json",
                                                     *_weight_files(folder)])
        k += 1
    assert k > 10 and seen["old"] > 3 and seen["new"] > 1  # every step was visited


def _weight_files(folder) -> set:
    import json
    with open(os.path.join(folder, "model.safetensors.index.json")) as f:
        return set(json.load(f)["weight_map"].values())


@pytest.mark.parametrize("name", ["a.pt", "a.safetensors"])
def test_single_file_killed_at_every_step(tmp_path, name):
    path = str(tmp_path / name)
    old, new = state(0), state(1)
    k = 1
    while True:
        save_document(Document.from_object(old), path)
        killed = save_killed_at(k, new, path)
        assert same(path, old) or same(path, new)
        if not killed:
            assert same(path, new)
            break
        save_document(Document.from_object(old), path)
        assert os.listdir(tmp_path) == [name]  # the killed save's temporary is gone
        k += 1
    assert k >= 4


def test_leftover_temp_of_a_live_save_is_kept(tmp_path):
    """A temporary that a running save holds (locked) is not someone's leftover."""
    import fcntl
    path = str(tmp_path / "a.pt")
    live = tmp_path / ".a.pt.abcd1234.tmp"
    dead = tmp_path / ".a.pt.dead5678.tmp"
    live.write_bytes(b"x")
    dead.write_bytes(b"y")
    with open(live, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        save_document(Document.from_object(state(0)), path)
        assert sorted(os.listdir(tmp_path)) == [".a.pt.abcd1234.tmp", "a.pt"]


class Exploding(torch.Tensor):
    def contiguous(self, *a, **k):
        raise RuntimeError("disk on fire")


def test_failed_or_cancelled_sharded_save_as_leaves_no_new_folder(tmp_path):
    from app.core.errors import Cancelled
    bad = {**state(0), "zz": torch.ones(4).as_subclass(Exploding)}
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_document(Document.from_object(bad), str(tmp_path / "new" / "ck"), shard_size=2048)
    with pytest.raises(Cancelled):
        save_document(Document.from_object(state(0)), str(tmp_path / "other"), shard_size=2048,
                      cancelled=lambda: True)
    assert os.listdir(tmp_path) == []
    (tmp_path / "kept").mkdir()  # a folder that existed stays, empty or not
    with pytest.raises(RuntimeError):
        save_document(Document.from_object(bad), str(tmp_path / "kept"), shard_size=2048)
    assert os.listdir(tmp_path) == ["kept"] and os.listdir(tmp_path / "kept") == []


def test_killed_first_sharded_save_is_cleaned_by_the_next(tmp_path):
    """A Save As into a new folder killed after its shards landed (no index yet): the next save
    there removes the unnamed shards it wrote and the temporaries."""
    folder = str(tmp_path / "ck")
    for k in range(1, 30):
        if not save_killed_at(k, state(1), folder, shard_size=2048):
            break
        save_document(Document.from_object(state(0)), folder, shard_size=2048)
        assert same(folder, state(0))
        assert sorted(os.listdir(folder)) == sorted(["model.safetensors.index.json",
                                                     *_weight_files(folder)])
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


def test_a_second_save_to_a_folder_being_saved_is_refused(tmp_path):
    import fcntl
    from app.core.errors import UserError
    folder = tmp_path / "ck"
    save_document(Document.from_object(state(0)), str(folder), shard_size=2048)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a save in progress holds
        with pytest.raises(UserError, match="another save"):
            save_document(Document.from_object(state(1)), str(folder), shard_size=2048)
    finally:
        os.close(fd)
    assert same(str(folder), state(0))
