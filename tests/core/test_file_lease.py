"""Read leases: a rewrite of the open file waits for the reads in flight (no SIGBUS), a writer in
our own process is not held up, and reads refuse from the moment the lease breaks."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from app.core.model import file_lease
from app.core.model.file_stamps import FileStamps

pytestmark = pytest.mark.skipif(not file_lease.available(), reason="Linux file leases")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """In a child: without the lease the scenario dies of SIGBUS, which must not take pytest."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_a_rewrite_by_another_process_waits_for_the_read_in_flight(tmp_path):
    path = str(tmp_path / "open.pt")
    out = _run("""
        import subprocess, sys, time
        import torch, app
        from app.core.formats import load_document
        from app.core.model import file_lease
        from app.core.stats import compute_stats
        path = sys.argv[1]
        torch.save({"w": torch.randn(5_000_000)}, path)
        doc = load_document(path)
        w = doc.tensors["w"].tensor()
        broke = []
        assert file_lease.hold([path], broke.append) == [path]
        writer = subprocess.Popen(
            [sys.executable, "-c", "import sys, torch; print('opening', flush=True); "
             "torch.save({'w': torch.zeros(3)}, sys.argv[1])", path], stdout=subprocess.PIPE)
        with file_lease.reading():
            assert writer.stdout.readline().strip() == b"opening"
            for _ in range(20):  # reading the mapping while the writer truncates the file
                compute_stats(w)
                assert writer.poll() is None, "the writer got in while we read"
        while not broke:
            time.sleep(0.01)
        assert writer.wait(60) == 0
        print("ok", broke == [path])
    """, path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["ok", "True"]
    assert torch.load(path, weights_only=True)["w"].shape == (3,)  # the writer's save landed


def test_a_writer_in_this_very_process_is_not_held_up(tmp_path):
    """A notebook saving to the file the editor shows: its ``open`` holds the GIL, so only the
    lease-keeping child can let it through (else it waits the kernel's 45 s)."""
    path = str(tmp_path / "open.pt")
    out = _run("""
        import sys, torch, app
        from app.core.model import file_lease
        path = sys.argv[1]
        torch.save({"w": torch.ones(4)}, path)
        broke = []
        assert file_lease.hold([path], broke.append) == [path]
        torch.save({"w": torch.zeros(2)}, path)
        print("ok", broke == [path], file_lease.held())
    """, path, timeout=30)  # a hang detector: held up, the writer would wait the kernel's 45 s
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["ok", "True", "[]"]


def test_a_file_open_for_writing_elsewhere_is_not_leased(tmp_path):
    path = str(tmp_path / "busy.pt")
    torch.save({"w": torch.ones(4)}, path)
    with open(path, "r+b"):
        assert file_lease.hold([path], lambda p: None) == []
    assert path not in file_lease.held()


def test_held_leases_are_given_up_on_release(tmp_path):
    path = str(tmp_path / "a.pt")
    torch.save({"w": torch.ones(4)}, path)
    assert file_lease.hold([path], lambda p: None) == [path]
    file_lease.release([path])
    assert path not in file_lease.held()
    with open(path, "r+b"):  # nothing waits: the lease is gone
        pass


def test_a_breaking_file_counts_as_rewritten_before_a_byte_changed(tmp_path):
    path = str(tmp_path / "a.pt")
    torch.save({"w": torch.ones(4)}, path)
    stamps = FileStamps([path])
    assert stamps.rewritten() == [] and stamps.changed() == []
    stamps.breaking.add(path)
    assert stamps.rewritten() == [path] and stamps.changed() == [path]


_RACE = """
    import subprocess, sys, threading, time
    import torch, app
    from app.core.errors import UserError
    from app.core.model import file_lease
{setup}
    said = []
    def read():
        try:
            {call}
            said.append("finished first")
        except UserError as exc:
            said.append(f"refused: {{exc}}")
    reader = threading.Thread(target=read)
    reader.start()
    while len(file_lease.held()) < {leases}:
        time.sleep(0.001)
    writer = subprocess.run([sys.executable, "-I", "-S", "-c",
                             "import sys; open(sys.argv[1], 'wb').write(b'new')", {victim}])
    reader.join()
    print(said[0], writer.returncode)
"""


def _race(setup: str, call: str, leases: int, victim: str, *args: str):
    """A reader (``call``) in a thread of a child; once it holds ``leases`` leases, another
    process truncates ``victim``. Asserts the read was refused with one error, and the writer
    let through; without the lease the child dies of SIGBUS."""
    out = _run(_RACE.format(setup=textwrap.indent(textwrap.dedent(setup), "    "), call=call,
                            leases=leases, victim=victim), *args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("refused:") and "changed on disk" in out.stdout
    assert out.stdout.split()[-1] == "0"


def test_inspect_stats_stops_with_one_error_when_the_file_is_rewritten_meanwhile(tmp_path):
    """``inspect --stats`` reads every tensor of a file that another process then truncates:
    the writer waits for the tensor being read, the next read refuses; never SIGBUS."""
    _race("""
        from app.core.loading.open import open_document
        from app.core.report import inspect_json
        path = sys.argv[1]
        torch.save({f"w{i}": torch.randn(1_000_000) for i in range(40)}, path)
        doc = open_document(path)
    """, "inspect_json(doc, with_stats=True)", 1, "path", str(tmp_path / "open.pt"))


def test_diff_stops_with_one_error_when_a_file_is_rewritten_meanwhile(tmp_path):
    """``paramedit diff A B`` reads both files tensor by tensor; B truncated meanwhile: the
    pair being compared is finished, the next read refuses; never SIGBUS."""
    _race("""
        from app.core.compare.diff import open_and_diff
        a, b = sys.argv[1], sys.argv[2]
        state = {f"w{i}": torch.randn(10_000_000) for i in range(4)}
        torch.save(state, a)
        torch.save({k: v + 1 for k, v in state.items()}, b)
    """, "open_and_diff(a, b)", 2, "b", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"))


def test_apply_refuses_with_one_error_when_its_input_is_rewritten_meanwhile(tmp_path):
    """``apply`` reads its input while another process truncates it: the writer waits until the
    output is written or refused; the run ends with exit 0 or one error line, never SIGBUS."""
    src, out_path = str(tmp_path / "in.pt"), str(tmp_path / "out.pt")
    recipe = tmp_path / "r.json"
    recipe.write_text('{"version": 1, "steps": [{"op": "cast", "target": "*", "dtype": "float64"}]}')
    out = _run("""
        import subprocess, sys, threading, time
        import torch, app
        from app.core.model import file_lease
        from tests.cli import run_main
        recipe, src, dst = sys.argv[1:4]
        torch.save({f"w{i}": torch.randn(10_000_000) for i in range(4)}, src)
        done = []
        runner = threading.Thread(target=lambda: done.append(
            run_main("apply", recipe, src, "-o", dst)))
        runner.start()
        while not file_lease.held():
            time.sleep(0.001)
        writer = subprocess.run([sys.executable, "-I", "-S", "-c",
                                 "import sys; open(sys.argv[1], 'wb').write(b'new')", src])
        runner.join()
        proc = done[0]
        print(proc.returncode, writer.returncode, repr(proc.stderr.strip()))
    """, str(recipe), src, out_path)
    assert out.returncode == 0, out.stderr[-2000:]
    code, writer, err = out.stdout.split(" ", 2)
    assert writer == "0"
    assert (code, err.strip()) == ("0", "''") or (code == "2" and "changed on disk" in err)
