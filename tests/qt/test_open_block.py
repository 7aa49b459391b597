"""Issues 9 and 15: what opening a file costs the GUI thread. The work around a new document is
done where the document is read (its summary, the cyclic collector kept off it), a replaced one is
freed on a worker, the checksum check lists tensors in its own thread, a large document's first
tensor is read in a worker, and a task's progress reaches the GUI thread spaced out."""
from __future__ import annotations

import gc
import threading
import weakref

import torch
from PySide6.QtCore import QThreadPool

from app.core.model.tensor_entry import TensorEntry
from app.qt.workers import Task
from tests.core.test_verify_names import flip_record
from tests.helpers.qt import wait_for_document


def _on_gui_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _checkpoint(path, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {f"layer{i}.weight": torch.randn(4, 4, generator=g) for i in range(n)}
    torch.save(sd, str(path))
    return str(path), sd


def test_progress_reaches_the_gui_thread_spaced_out(qtbot):
    """A reader reporting per record sent 200k queued slot calls for 100k tensors."""
    steps, reports = 20_000, []

    def work(progress, _cancelled):
        for i in range(1, steps + 1):
            progress(i, steps)
    task = Task(work)
    task.signals.progress.connect(lambda done, total: reports.append((done, total)))
    with qtbot.waitSignal(task.signals.done, timeout=30_000):
        task.start()
    assert 0 < len(reports) < 1000  # a hundredth of the way each, or 40 ms apart
    assert reports[-1] == (steps, steps)  # the last report always goes


def test_the_summary_is_worked_out_where_the_file_is_read(qtbot, window, tmp_path, monkeypatch):
    from app.core import document_summary as summary_module
    path, _ = _checkpoint(tmp_path / "m.pt")
    threads = []
    plain = summary_module.human_count

    def counting(n):
        threads.append(_on_gui_thread())
        return plain(n)
    monkeypatch.setattr(summary_module, "human_count", counting)
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    assert threads == [False]  # once, in the loading worker; the status bar read it
    assert window.summary_label.text().startswith("3 tensors")


def test_a_replaced_document_is_freed_on_a_worker(qtbot, window, tmp_path):
    first, _ = _checkpoint(tmp_path / "a.pt")
    second, _ = _checkpoint(tmp_path / "b.pt", seed=1)
    window.open_path(first)
    doc = wait_for_document(qtbot, window, first)
    freed = []
    weakref.finalize(doc.tensors["layer1.weight"], lambda: freed.append(_on_gui_thread()))
    weakref.finalize(doc.root, lambda: freed.append(_on_gui_thread()))
    old = weakref.ref(doc)
    del doc
    window.open_path(second)
    wait_for_document(qtbot, window, second)
    qtbot.waitUntil(lambda: old() is None)
    assert freed == [False, False]


def test_a_document_given_by_the_caller_is_left_whole(qtbot, window, tmp_path):
    from app.core.model.document import Document
    path, _ = _checkpoint(tmp_path / "a.pt")
    given = Document.from_object({"w": torch.ones(3), "b": torch.zeros(2)})
    window.open_document(given, "given")
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    QThreadPool.globalInstance().waitForDone(10_000)
    assert list(given.tensors) == ["w", "b"] and given.root.find("w") is not None
    assert torch.equal(given.tensors["w"].tensor(), torch.ones(3))


def test_an_opened_document_is_kept_out_of_the_cyclic_collector(qtbot, window, tmp_path):
    path, _ = _checkpoint(tmp_path / "many.pt", n=500)
    before = gc.get_freeze_count()
    window.open_path(path)
    doc = wait_for_document(qtbot, window, path)
    assert gc.get_freeze_count() - before >= len(doc.tensors)


def _reads_on(monkeypatch) -> list[bool]:
    from app.core.model.document import Document
    reads = []
    plain = Document.read_private

    def read_private(self, entries, cancelled=None):
        reads.append(_on_gui_thread())
        return plain(self, entries, cancelled)
    monkeypatch.setattr(Document, "read_private", read_private)
    return reads


def test_a_large_documents_tensor_is_read_at_once(qtbot, window, tmp_path, monkeypatch):
    """The tensors sharing its storage are indexed: no pass over the document's 6000 tensors
    (0.4 s at 100k), so no worker either (the rule sent documents over 5000 tensors to one)."""
    path, sd = _checkpoint(tmp_path / "m.pt", n=6000)
    reads = _reads_on(monkeypatch)
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    qtbot.waitUntil(lambda: window.tensor_view.name == "layer0.weight")
    assert reads == [True]


def test_after_a_structural_edit_the_read_goes_to_a_worker(qtbot, window, tmp_path,
                                                           monkeypatch):
    """The index is found anew after a rename (a pass over every tensor): not on the GUI thread."""
    path, sd = _checkpoint(tmp_path / "m.pt")
    window.open_path(path)
    doc = wait_for_document(qtbot, window, path)
    qtbot.waitUntil(lambda: window.tensor_view.name == "layer0.weight")
    doc.rename_tensor("layer2.weight", "renamed.weight")
    reads = _reads_on(monkeypatch)
    window.controller.select_node(doc.node("layer1.weight"))
    qtbot.waitUntil(lambda: window.tensor_view.name == "layer1.weight")
    assert reads == [False]


def test_the_checksum_check_lists_tensors_in_its_own_thread(qtbot, window, tmp_path,
                                                            monkeypatch):
    path, sd = _checkpoint(tmp_path / "damaged.pt")
    member = flip_record(path, "layer2.weight", sd)
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    flows = window.verify_flows
    qtbot.waitUntil(lambda: flows.last is not None and not flows.is_checking, timeout=10_000)
    on_gui = []
    plain = TensorEntry.tensor

    def tensor(self):
        on_gui.append(_on_gui_thread())
        return plain(self)
    monkeypatch.setattr(TensorEntry, "tensor", tensor)
    flows.last = None
    flows.verify()
    assert on_gui == []  # verify() itself, on the GUI thread, read no tensor
    qtbot.waitUntil(lambda: flows.last is not None and not flows.is_checking, timeout=10_000)
    assert flows.last[1] == {"layer2.weight": f"{member}: CRC mismatch"}
    assert on_gui and not any(on_gui)


def test_the_gui_thread_wins_the_gil_back_from_busy_workers_soon(window):
    """Behind a worker running Python, each Qt call of a slot waited up to 5 ms for the GIL."""
    import sys
    assert sys.getswitchinterval() <= 0.001 + 1e-9


def test_an_opened_files_tree_is_shown_before_its_first_tensor(qtbot, window, tmp_path):
    """Two short stretches of the GUI thread (the tree, then the first tensor's grid and
    statistics), with a turn of the event loop between them (its timers: the stall probe), not
    one long one: the first tensor waits for a timer, not for a queued call, which Qt delivers
    before the loop turns."""
    from PySide6.QtCore import QCoreApplication
    path, _ = _checkpoint(tmp_path / "m.pt")
    seen = []

    def on_document(_doc):
        QCoreApplication.sendPostedEvents()  # every queued call, as before the loop turns
        seen.append(window.tensor_view.name)
    window.controller.documentChanged.connect(on_document)
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    qtbot.waitUntil(lambda: window.tensor_view.name == "layer0.weight")
    assert seen == [""]


def test_a_tensor_chosen_before_the_first_is_shown_stays_chosen(qtbot, window, tmp_path):
    path, _ = _checkpoint(tmp_path / "m.pt")
    window.controller.documentChanged.connect(lambda _doc: window.select_name("layer2.weight"))
    window.open_path(path)
    wait_for_document(qtbot, window, path)
    qtbot.waitUntil(lambda: window.tensor_view.name == "layer2.weight")
    qtbot.wait(50)
    assert window.tensor_view.name == "layer2.weight"
    assert window.tree_panel.current_node().full_name == "layer2.weight"


def test_workers_yield_the_cpu_to_the_gui_thread(qtbot):
    """When the GUI thread and a worker both want a core, the GUI thread gets it first."""
    import os
    import sys
    import pytest
    if not sys.platform.startswith("linux"):
        pytest.skip("a thread's own nice value is Linux's")
    seen = []
    task = Task(lambda _p, _c: seen.append(os.getpriority(os.PRIO_PROCESS,
                                                           threading.get_native_id())))
    with qtbot.waitSignal(task.signals.done, timeout=10_000):
        task.start()
    assert seen and seen[0] > os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_a_tasks_outcome_and_done_arrive_in_one_delivery(qtbot):
    """A worker paused between two emits (it yields the CPU and the GIL sooner now) let the GUI
    thread run a ``finished`` slot, and whatever the test or the window did next, before ``done``:
    both now come in one queued call."""
    from PySide6.QtCore import QEvent, QObject

    class Deliveries(QObject):
        count = 0

        def eventFilter(self, _obj, event):  # noqa: N802 (Qt's name)
            if event.type() == QEvent.MetaCall:
                self.count += 1
            return False
    task = Task(lambda _p, _c: 42)
    deliveries = Deliveries()
    task.signals.installEventFilter(deliveries)
    seen = []
    task.signals.finished.connect(lambda r: seen.append(("finished", r, deliveries.count)))
    task.signals.done.connect(lambda: seen.append(("done", deliveries.count)))
    with qtbot.waitSignal(task.signals.done, timeout=10_000):
        task.start()
    assert seen == [("finished", 42, 1), ("done", 1)]
