"""The Qt-free comparison: chunking, dtypes, laziness, progress and cancel."""
import pytest
import torch
from safetensors.torch import save_file

from app.core.compare.diff import diff_documents, match_names, parse_rename
from app.core.compare.tensor_diff import chunk_keys, compare_tensors
from app.core.errors import Cancelled, UserError
from app.core.formats import load_document

#: float32 / bfloat16 / float16 norms are float32 dot products per chunk (single_figures): on
#: these small random tensors they agree with float64 to 1e-6 (bounds: test_diff_accuracy.py)
SINGLE_REL = 1e-6


def rel_of(dtype: torch.dtype) -> float:
    return SINGLE_REL if dtype in (torch.float32, torch.bfloat16, torch.float16) else 1e-12


def by_hand(a: torch.Tensor, b: torch.Tensor) -> dict:
    A, B = a.double().flatten(), b.double().flatten()
    return {"max_abs": (A - B).abs().max().item(), "rel_l2": ((A - B).norm() / B.norm()).item(),
            "cosine": (A @ B / (A.norm() * B.norm())).item(), "n_diff": int((A != B).sum())}


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 21])
def test_figures_do_not_depend_on_chunking_or_strides(chunk):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 5, 4, generator=g)
    b = a.clone()
    b[0, 0, 0] += 1
    b[5, 4, 3] -= 2
    b[2] *= 1.01
    a_t = a.transpose(0, 2)  # non-contiguous views of the same values
    b_t = b.transpose(0, 2).contiguous()
    d = compare_tensors(a_t, b_t, chunk=chunk)
    want = by_hand(a_t, b_t)
    assert d.n_diff == want["n_diff"] and d.numel == 120
    assert d.max_abs == want["max_abs"]  # exact, though float32 arithmetic found it
    assert d.rel_l2 == pytest.approx(want["rel_l2"], rel=SINGLE_REL)
    assert d.cosine == pytest.approx(want["cosine"], rel=SINGLE_REL)
    a64, b64 = a_t.double(), b_t.double()
    d = compare_tensors(a64, b64, chunk=chunk)
    want = by_hand(a64, b64)
    assert d.rel_l2 == pytest.approx(want["rel_l2"], rel=1e-12)
    assert d.cosine == pytest.approx(want["cosine"], rel=1e-12)


def test_chunk_keys_cover_every_element_once():
    t = torch.arange(3 * 5 * 7).reshape(3, 5, 7)
    for n in (1, 4, 7, 35, 36, 1000):
        pieces = [t[k].reshape(-1) if k else t.reshape(-1) for k in chunk_keys((3, 5, 7), n)]
        assert torch.equal(torch.cat(pieces), t.reshape(-1))
    assert list(chunk_keys((), 4)) == [()]
    assert list(chunk_keys((0, 3), 4)) == [()]


def test_ints_bools_and_mixed_dtypes():
    big = torch.tensor([2**62, 1, -5])
    d = compare_tensors(big, big.clone().index_put_((torch.tensor([0]),), torch.tensor(2**62 + 1)))
    assert d.n_diff == 1  # compared as int64, not rounded through float64
    assert compare_tensors(torch.tensor([True, False]), torch.tensor([True, True])).n_diff == 1
    x = torch.randn(100)
    assert compare_tensors(x, x.double()).equal
    assert compare_tensors(x.half(), x.float()).n_diff > 0


def test_infinities_and_tolerance():
    inf = float("inf")
    a = torch.tensor([inf, -inf, 1.0, float("nan")])
    assert compare_tensors(a, a.clone()).equal
    d = compare_tensors(a, torch.tensor([inf, inf, 1.0, 0.0]), atol=1e9)
    assert d.n_diff == 2 and d.nan_a == 1  # a non-finite mismatch is never within tolerance
    d = compare_tensors(torch.tensor([1.0, 2.0]), torch.tensor([1.1, 2.0]), rtol=0.1)
    assert d.equal and d.max_abs == pytest.approx(0.1)


def test_zero_norms():
    d = compare_tensors(torch.ones(3), torch.zeros(3))
    assert d.rel_l2 is None and d.cosine == 0.0
    assert d.as_json("x")["rel_l2"] is None
    d = compare_tensors(torch.zeros(0), torch.zeros(0))
    assert d.equal and d.numel == 0


def test_progress_and_cancel():
    a, b = torch.zeros(1000), torch.ones(1000)
    seen = []
    compare_tensors(a, b, chunk=100, progress=seen.append)
    assert sum(seen) == 1000 and len(seen) == 10
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 3
    with pytest.raises(Cancelled):
        compare_tensors(a, b, chunk=100, cancelled=cancelled)
    assert len(calls) == 4


def test_rename_rules_and_collisions():
    pairs, only_a, only_b = match_names(["module.a", "module.b", "c"], ["a", "b", "d"],
                                        [parse_rename("module")])
    assert pairs == [("a", "module.a", "a"), ("b", "module.b", "b")]
    assert only_a == ["c"] and only_b == ["d"]
    rule = parse_rename("^(enc)oder\\.=\\1.")
    assert rule.apply("encoder.x") == "enc.x"
    assert parse_rename("a=b=c").repl == "b=c"  # split at the first '='
    with pytest.raises(UserError, match="both become"):
        match_names(["x.a", "a"], [], [parse_rename("^x\\.=")])
    with pytest.raises(UserError):
        parse_rename("=x")


def test_lazy_documents_keep_no_tensor_and_ties_compare_once(tmp_path):
    g = torch.Generator().manual_seed(0)
    sd = {f"l{i}.weight": torch.randn(64, 64, generator=g) for i in range(4)}
    save_file(sd, str(tmp_path / "a.safetensors"))
    sd["l2.weight"][0, 0] = 9
    save_file(sd, str(tmp_path / "b.safetensors"))
    doc_a = load_document(str(tmp_path / "a.safetensors"))
    doc_b = load_document(str(tmp_path / "b.safetensors"))
    steps = []
    res = diff_documents(doc_a, doc_b, progress=lambda d, t: steps.append((d, t)))
    assert res.changed == ["l2.weight"] and steps[-1] == (4 * 4096, 4 * 4096)
    assert not any(e.is_loaded for e in [*doc_a.tensors.values(), *doc_b.tensors.values()])
    with pytest.raises(Cancelled):
        diff_documents(doc_a, doc_b, cancelled=lambda: True)

    from app.core.model.document import Document
    w = torch.randn(8, 8)
    tied = Document.from_object({"embed": w, "head": w})
    other = Document.from_object({"embed": w.clone(), "head": w.clone()})
    seen = []
    res = diff_documents(tied, tied, progress=lambda d, t: seen.append(d))
    assert res.equal == ["embed", "head"] and seen[-1] == 128
    res = diff_documents(tied, other)
    assert res.equal == ["embed", "head"]


def test_float8_complex_and_conjugate_views():
    x = torch.randn(100, generator=torch.Generator().manual_seed(4))
    for dt in (torch.float8_e4m3fn, torch.float8_e5m2):
        a = x.to(dt)
        b = a.clone()
        b[3] = torch.tensor(1.5).to(dt)
        assert compare_tensors(a, a.clone()).equal and compare_tensors(a, b).n_diff == 1
    z = torch.randn(5, dtype=torch.complex64, generator=torch.Generator().manual_seed(1))
    assert compare_tensors(z.conj(), z.conj().clone()).equal  # a lazy conjugate view
    assert compare_tensors(z, z.conj()).n_diff == 5


def _plain_reference(a: torch.Tensor, b: torch.Tensor) -> dict:
    """The section 5 figures the obvious way: whole tensors in float64, NaN equal to NaN."""
    work = torch.complex128 if a.is_complex() else torch.float64
    A, B = a.flatten().to(work), b.flatten().to(work)
    same = (A == B) | (A.isnan() & B.isnan())
    fin = A.isfinite() & B.isfinite()
    A, B = torch.where(fin, A, 0), torch.where(fin, B, 0)
    d = (A - B).abs()
    na, nb, nd = A.abs().square().sum(), B.abs().square().sum(), d.square().sum()
    cos = 1 - (nd - (na.sqrt() - nb.sqrt()) ** 2) / (2 * na.sqrt() * nb.sqrt())
    return {"n_diff": int((~same).sum()), "max_abs": float(d.max()),
            "rel_l2": float(nd.sqrt() / nb.sqrt()), "cosine": float(cos)}


def _figures(d) -> tuple:
    return (d.n_diff, d.nan_a, d.nan_b, d.max_abs, d.rel_l2, d.cosine)


@pytest.mark.parametrize("n", [63, 64, 65, 129, 640, 1000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64, torch.int32,
                                   torch.complex64])
def test_threads_give_bit_identical_figures_and_match_a_plain_reference(n, dtype):
    """Chunks shared by 1, 2 or 3 threads (any schedule) add up to the very same figures, and
    those are the plain whole-tensor float64 figures: counts and max exact, norms to 1e-12
    (float32 arithmetic for float32 / bfloat16: ``SINGLE_REL``)."""
    g = torch.Generator().manual_seed(n)
    a = (torch.randn(n, generator=g) * 3).to(dtype) if dtype != torch.complex64 else \
        torch.randn(n, dtype=dtype, generator=g)
    b = a.clone()
    b[n // 2:] += 1  # the first chunks are bit-equal, later ones differ
    b[n - 1] = 0
    if dtype.is_floating_point or dtype.is_complex:
        for t in (a, b):  # the same NaN / Inf on both sides: equal there, counted, left out
            t[3], t[n // 3] = float("nan"), float("inf")
        a[n - 2] = float("nan")  # NaN on one side only
    want = _plain_reference(a, b)
    runs = [_figures(compare_tensors(a, b, chunk=64, threads=t)) for t in (1, 2, 3, 2, 2)]
    assert all(r == runs[0] for r in runs[1:])
    d = compare_tensors(a, b, chunk=64, threads=2)
    assert (d.n_diff, d.max_abs) == (want["n_diff"], want["max_abs"])
    assert d.nan_a == int(a.isnan().sum()) and d.nan_b == int(b.isnan().sum())
    assert d.rel_l2 == pytest.approx(want["rel_l2"], rel=rel_of(dtype))
    assert d.cosine == pytest.approx(want["cosine"], rel=rel_of(dtype))
    assert _figures(compare_tensors(a, b, chunk=1 << 20)) == \
        pytest.approx(_figures(d), rel=rel_of(dtype))


def test_equal_chunks_before_a_difference_count_their_nans_and_complex_norms():
    a = torch.zeros(300)
    a[5] = float("nan")
    b = a.clone()
    b[250] = 1
    d = compare_tensors(a, b, chunk=100)  # chunk 0 is bit-equal, chunk 2 differs
    assert (d.n_diff, d.nan_a, d.nan_b) == (1, 1, 1)
    z = torch.randn(300, dtype=torch.complex64, generator=torch.Generator().manual_seed(2))
    w = z.clone()
    w[250] = 0
    assert _figures(compare_tensors(z, w, chunk=100)) == \
        pytest.approx(_figures(compare_tensors(z, w, chunk=1000)), rel=1e-12)


def test_threaded_progress_and_cancel_stay_on_the_calling_thread():
    import threading
    a, b = torch.zeros(10_000), torch.ones(10_000)
    me, seen, where = threading.get_ident(), [], set()

    def progress(n):
        seen.append(n)
        where.add(threading.get_ident())
    d = compare_tensors(a, b, chunk=100, threads=2, progress=progress)
    assert d.n_diff == 10_000 and sum(seen) == 10_000 and where == {me}
    polls = []

    def cancelled():  # True from the first poll: the helper may take every chunk after that
        polls.append(threading.get_ident())
        return True
    with pytest.raises(Cancelled):
        compare_tensors(a, b, chunk=100, threads=2, cancelled=cancelled)
    assert set(polls) == {me}


def test_map_chunks_returns_only_once_its_helpers_have_stopped():
    import time
    from app.core.compare.chunk_threads import map_chunks
    import threading
    calls, finished, results, me = [], [], [None] * 200, threading.get_ident()
    cancel = threading.Event()

    def make_job():
        def job(i):
            calls.append(i)
            if threading.get_ident() != me:
                cancel.wait(1)  # the helper is busy until the cancel (and a while after)
                time.sleep(0.005)
            finished.append(i)
            return i
        return job

    def cancelled():
        if len(calls) > 3:
            cancel.set()
        return cancel.is_set()
    with pytest.raises(Cancelled):
        map_chunks(range(200), make_job, [1] * 200, results, threads=2, cancelled=cancelled)
    assert sorted(finished) == sorted(calls) and len(calls) < 200  # no job left running
    n = len(calls)
    time.sleep(0.02)
    assert len(calls) == n  # and none started after
    results = [None] * 50
    map_chunks(range(50), make_job, [1] * 50, results, threads=2)
    assert results == list(range(50))


def test_a_second_thread_only_where_there_are_cores_to_spare(monkeypatch):
    from app.core.compare import chunk_threads
    for cpus, want in ((1, 1), (2, 1), (4, 2), (64, 2)):
        monkeypatch.setattr(chunk_threads.os, "sched_getaffinity", lambda _pid, n=cpus: set(range(n)))
        assert chunk_threads.default_threads() == want


def test_chunk_sizes_are_counted_without_views():
    from app.core.compare.tensor_diff import _key_numel
    for shape, n in (((3, 5, 7), 4), ((3, 5, 7), 36), ((10,), 3), ((), 4), ((0, 3), 4), ((7, 9), 20)):
        t = torch.zeros(shape)
        for k in chunk_keys(shape, n):
            assert _key_numel(t.shape, k) == (t[k] if k else t).numel()
