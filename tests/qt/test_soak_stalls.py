"""Issue 9: what the soak's longest GUI stalls were made of runs off the GUI thread — the
statistics of a 1024 x 1024 weight (selected, or selected again on reopening), and writing the
recent-files list to disk (QSettings syncs: a lock file and fdatasyncs) when a file opens."""
from __future__ import annotations

import threading

import pytest
import torch
from PySide6.QtCore import QSettings, QThreadPool

from app.qt import recent_files
from app.qt.recent_files import RecentFiles
from app.qt.views import stats_workers
from app.qt.views.stats_panel import StatsPanel


@pytest.fixture
def panel(qtbot):
    p = StatsPanel()
    qtbot.addWidget(p)
    p.show()
    yield p
    p.clear()
    QThreadPool.globalInstance().waitForDone(30_000)


def _recording(monkeypatch, module, names, seen):
    for name in names:
        plain = getattr(module, name)

        def record(*args, plain=plain, **kwargs):
            seen.append(threading.get_ident())
            return plain(*args, **kwargs)
        monkeypatch.setattr(module, name, record)


def test_a_big_weights_statistics_are_computed_off_the_gui_thread(panel, qtbot, monkeypatch):
    seen: list[int] = []
    _recording(monkeypatch, stats_workers,
               ("compute_stats", "preview_stats", "plan_view", "distinct_elements"), seen)
    weight = torch.randn(1024, 1024, generator=torch.Generator().manual_seed(0))
    gui = threading.get_ident()
    with qtbot.waitSignal(panel.statsReady, timeout=60_000) as ready:
        panel.show_tensors("fc.weight", [weight])
    assert ready.args[0].numel == weight.numel() and not ready.args[0].approximate
    computed = [t for t in seen if t != gui]
    assert computed and seen.count(gui) <= 1  # counting the elements is all the GUI thread does


def test_a_small_tensors_statistics_are_still_shown_at_once(panel):
    t = torch.randn(256, 256, generator=torch.Generator().manual_seed(1))
    panel.show_tensors("small", [t])
    assert panel.current_stats is not None and not panel.current_stats.approximate


class _Recording(QSettings):
    writers: list[int] = []

    def setValue(self, key, value):  # noqa: N802 (Qt's name)
        self.writers.append(threading.get_ident())
        super().setValue(key, value)

    def remove(self, key):
        self.writers.append(threading.get_ident())
        super().remove(key)


def test_the_recent_list_is_written_off_the_gui_thread(qtbot, monkeypatch):
    writers: list[int] = []
    monkeypatch.setattr(_Recording, "writers", writers)
    monkeypatch.setattr(recent_files, "settings", lambda: _Recording("paramedit", "paramedit"))
    recent = RecentFiles()
    for name in ("a.pt", "b.pt", "c.pt"):
        recent.add(f"/models/{name}")
    assert recent.paths()[:3] == ["/models/c.pt", "/models/b.pt", "/models/a.pt"]  # at once
    assert QThreadPool.globalInstance().waitForDone(30_000)
    assert writers and threading.get_ident() not in writers
    stored = QSettings("paramedit", "paramedit").value(RecentFiles.KEY)
    assert list(stored)[:3] == ["/models/c.pt", "/models/b.pt", "/models/a.pt"]  # the last wins
    recent.clear()
    assert recent.paths() == []
    assert QThreadPool.globalInstance().waitForDone(30_000)
    assert QSettings("paramedit", "paramedit").value(RecentFiles.KEY) is None
    assert RecentFiles().paths() == []
