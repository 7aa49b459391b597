"""Issue 15: the work a new document starts in the background (the checksum pass, freeing the
replaced document) waits until the GUI thread is done with its first burst of work on it: beside
it, each of the GUI thread's turns waited for the GIL (0.1-0.2 s without a tick at 100k)."""
from __future__ import annotations

import weakref

import torch

from app.core import formats
from tests.helpers.qt import wait_for_document


def _checkpoint(path, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.save({f"layer{i}.weight": torch.randn(4, 4, generator=g) for i in range(3)}, str(path))
    return str(path)


def test_the_check_after_opening_waits_before_reading(qtbot, window, tmp_path, monkeypatch):
    path = _checkpoint(tmp_path / "m.pt")
    calls = []
    plain = formats.verify_document
    monkeypatch.setattr(formats, "verify_document", lambda *a, **k: calls.append(1) or plain(*a, **k))
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    qtbot.wait(300)
    assert calls == [] and window.verify_flows.is_checking
    qtbot.waitUntil(lambda: not window.verify_flows.is_checking, timeout=10_000)
    assert calls == [1] and window.verify_flows.last == ([], {})


def test_the_status_bar_shows_the_check_only_once_it_reads(qtbot, window, tmp_path):
    """While the check waits for the window to settle, "Verifying checksums" and its busy bar
    stay out of the status bar (a screenshot right after opening showed them for nothing); a
    check the user asks for shows at once."""
    path = _checkpoint(tmp_path / "m.pt")
    window.show()
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    flows = window.verify_flows
    qtbot.wait(300)
    assert flows.is_checking and flows.label.isHidden() and flows.progress_bar.isHidden()
    qtbot.waitUntil(lambda: not flows.is_checking, timeout=10_000)
    flows.verify()
    assert not flows.label.isHidden() and not flows.cancel_button.isHidden()
    qtbot.waitUntil(lambda: not flows.is_checking, timeout=10_000)
    assert flows.label.isHidden()


def test_a_replaced_document_is_freed_after_the_new_one_settled(qtbot, window, tmp_path):
    first, second = _checkpoint(tmp_path / "a.pt"), _checkpoint(tmp_path / "b.pt", seed=1)
    window.open_path(first)
    doc = wait_for_document(qtbot, window, first)
    old = weakref.ref(doc)
    del doc
    window.open_path(second)
    wait_for_document(qtbot, window, second)
    qtbot.wait(300)
    assert old() is not None and window.controller.is_releasing
    qtbot.waitUntil(lambda: old() is None and not window.controller.is_releasing, timeout=10_000)
