"""Every file of the generated corpus of broken and hostile checkpoints (tests/corpus/generate.py)
through ``inspect`` in-process: exit 0 or 2, one ``error:`` line on failure, no traceback, no
hang (a timeout per case), and no payload ever runs."""
import os
import re

import pytest

from app.__main__ import main
from tests.corpus.generate import CASES, OPENS, SAYS


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(CASES))
def test_inspect_gives_one_line_or_opens(name, tmp_path, capsys):
    if name == "unreadable_folder" and os.geteuid() == 0:
        pytest.skip("root reads any folder")
    marker = tmp_path / "MARKER"
    path = CASES[name](tmp_path, marker)
    try:
        rc = main(["inspect", str(path), "--json"])
    finally:
        if name == "unreadable_folder":
            path.chmod(0o755)
    out, err = capsys.readouterr()
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
