"""Soak (issue 9): random actions in the real window on a real training checkpoint — no
exception, no Qt warning, no old document kept alive, bounded RSS growth. CI runs the short,
seeded form; ``-m slow`` runs the long one (PARAMEDIT_SOAK_SECONDS, default 180)."""
from __future__ import annotations

import os

import pytest

from tests.qt.soak import Soak, rss_mib, soak_checkpoint


def _soak(window, tmp_path, steps=None, seconds=None, seed=0):
    path = soak_checkpoint(str(tmp_path / "train.pt"))
    window.prompts.answer(save_changes="discard")
    soak = Soak(window, path, str(tmp_path), seed=seed)
    soak.open()
    soak.run(steps=30)  # warm-up: caches, allocator pools, first paints
    start = rss_mib()
    soak.run(steps=steps, seconds=seconds)
    for _ in range(3):  # the old documents of several reopenings must be gone
        soak.reopen()
    growth = rss_mib() - start
    assert soak.errors == []
    assert soak.leaked_documents() == 0
    file_mib = os.path.getsize(path) / 1024 ** 2
    assert growth < 4 * file_mib + 64, f"RSS grew {growth:.0f} MiB ({soak.counts})"
    return soak


@pytest.mark.qt_log_level_fail("WARNING")
def test_soak_short(qtbot, window, tmp_path):
    soak = _soak(window, tmp_path, steps=110, seed=1)
    assert soak.counts.get("edit", 0) > 10 and soak.counts.get("reopen", 0) >= 1


@pytest.mark.slow
@pytest.mark.qt_log_level_fail("WARNING")
def test_soak_long(qtbot, window, tmp_path):
    _soak(window, tmp_path, seconds=float(os.environ.get("PARAMEDIT_SOAK_SECONDS", 180)), seed=2)
