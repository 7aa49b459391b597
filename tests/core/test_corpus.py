"""Every file of the generated corpus of broken and hostile checkpoints (tests/corpus/generate.py)
through ``inspect`` in-process: exit 0 or 2, one ``error:`` line on failure, no traceback, no
hang (a timeout per case), and no payload ever runs.

Root reads any folder: the unreadable folder is then inspected by a child process that lost the
capabilities to bypass file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH). It stays root,
so the interpreter and the project (under /root, 0700) stay readable, while the folder, root's
own with mode 000, does not."""
import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.__main__ import main
from tests.corpus.generate import CASES, OPENS, SAYS

ROOT = Path(__file__).resolve().parents[2]
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2
NOT_DROPPED = 77  # the child could still read the folder: no test, a skip
CHILD = """import os, sys
try:
    os.listdir(sys.argv[1])
except PermissionError:
    from app.__main__ import main
    sys.exit(main(["inspect", sys.argv[1], "--json"]))
sys.exit(%d)
""" % NOT_DROPPED


def _without_dac() -> None:
    """In the child, before exec: an exec'd root process gets its bounding set's capabilities."""
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if _prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            os._exit(NOT_DROPPED)


_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _inspect_without_privileges(path: Path) -> tuple[int, str, str]:
    if _prctl is None:
        pytest.skip("dropping root's capabilities needs Linux")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, text=True,
                          capture_output=True, timeout=100, preexec_fn=_without_dac,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode == NOT_DROPPED:
        pytest.skip("root's capabilities to read any folder could not be dropped")
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(CASES))
def test_inspect_gives_one_line_or_opens(name, tmp_path, capsys):
    as_root = name == "unreadable_folder" and os.geteuid() == 0
    marker = tmp_path / "MARKER"
    path = CASES[name](tmp_path, marker)
    try:
        if as_root:
            rc, out, err = _inspect_without_privileges(path)
        else:
            rc = main(["inspect", str(path), "--json"])
            out, err = capsys.readouterr()
    finally:
        if name == "unreadable_folder":
            path.chmod(0o755)
    assert not marker.exists(), "a payload ran"
    assert "PWNED" not in out + err, "archive code ran"
    assert "Traceback" not in err
    if name in OPENS:
        assert rc == 0, err
    assert rc in (0, 2), (rc, err)
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "internal error" not in lines[0], lines[0]
        assert not re.search(r"\b(Index|Key|Type|Attribute|Assertion|Recursion|Name)Error\b",
                             lines[0]), f"a reader's blind spot: {lines[0]}"
        assert str(path) in lines[0] or name == "shard_is_fifo", lines[0]
        if name in SAYS:
            assert SAYS[name] in lines[0], lines[0]
    else:
        assert err.strip() == "" or "error:" not in err
