"""Statistics equal torch's for every dtype; chunked, cancellable, with progress."""
import math

import numpy as np
import pytest
import torch

from app.core.errors import Cancelled
from app.core.stats import compute_stats, compute_stats_many, preview_stats


def reference(t):
    f = t.double().flatten()
    finite = f[torch.isfinite(f)]
    return {"min": finite.min().item(), "max": finite.max().item(), "mean": finite.mean().item(),
            "std": finite.std().item(), "l2": finite.norm().item(),
            "nan": int(torch.isnan(f).sum()), "inf": int(torch.isinf(f).sum()),
            "zeros": int((f == 0).sum())}


def check(t, **kw):
    s = compute_stats(t, **kw)
    ref = reference(t)
    for k in ("min", "max", "mean", "std", "l2"):
        assert math.isclose(getattr(s, k), ref[k], rel_tol=1e-6, abs_tol=1e-9), (k, getattr(s, k), ref[k])
    for k in ("nan", "inf", "zeros"):
        assert getattr(s, k) == ref[k], k
    assert s.counts.sum() == s.finite == t.numel() - ref["nan"] - ref["inf"]
    assert len(s.edges) == len(s.counts) + 1
    return s


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_float_dtypes_with_nan_inf_zeros(dtype):
    g = torch.Generator().manual_seed(0)
    t = (torch.randn(300, 70, generator=g) * 3 + 1).to(dtype)
    t[0, :5] = float("nan")
    t[1, 3] = float("inf")
    t[2, 4] = -float("inf")
    t[5, :11] = 0
    s = check(t, chunk=1000)  # many chunks, some with NaN, most without
    assert (s.nan, s.inf, s.zeros) == (5, 2, 11)


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int32, torch.int64])
def test_integer_dtypes(dtype):
    t = torch.arange(-50, 200).clamp(min=0 if dtype == torch.uint8 else -128, max=127).to(dtype)
    s = check(t, bins=10)
    assert s.counts.sum() == t.numel()


def test_bool_histogram_has_two_bins():
    t = torch.tensor([True, False, True, True])
    s = compute_stats(t)
    assert list(s.counts) == [1, 3] and s.zeros == 1 and s.mean == 0.75


def test_zero_dim_and_empty_and_constant():
    s = compute_stats(torch.tensor(2.5))
    # one element: torch's std (Bessel) is NaN; it is reported as unknown
    assert (s.numel, s.min, s.max, s.std, list(s.counts.nonzero()[0].shape)) == (1, 2.5, 2.5, None, [1])
    e = compute_stats(torch.zeros(0, 3))
    assert e.numel == 0 and e.min is None and e.counts.size == 0
    c = compute_stats(torch.full((10,), 7.0))
    assert c.counts.sum() == 10 and c.edges[0] < 7 < c.edges[-1]


def test_all_nan():
    s = compute_stats(torch.full((5,), float("nan")))
    assert s.nan == 5 and s.min is None and s.counts.size == 0


def test_non_contiguous_view_equals_contiguous():
    t = torch.randn(64, 33).t()
    a, b = compute_stats(t, chunk=100), compute_stats(t.contiguous())
    assert a.as_dict() == pytest.approx(b.as_dict()) and (a.counts == b.counts).all()


def test_chunked_equals_single_pass_histogram():
    t = torch.randn(10_000, generator=torch.Generator().manual_seed(3))
    a, b = compute_stats(t, chunk=97), compute_stats(t, chunk=1 << 20)
    np.testing.assert_array_equal(a.counts, b.counts)
    ref = np.histogram(t.numpy(), bins=100, range=(float(t.min()), float(t.max())))[0]
    assert np.abs(a.counts - ref).max() <= 2  # histc and numpy differ only at bin edges


def test_progress_reaches_total_and_cancel_stops():
    t = torch.randn(10_000)
    seen = []
    compute_stats(t, chunk=1000, progress=lambda d, n: seen.append((d, n)))
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 3
    with pytest.raises(Cancelled):
        compute_stats(t, chunk=1000, cancelled=cancelled)
    assert len(calls) == 4


def test_pooled_stats_of_several_tensors():
    a, b = torch.randn(100), torch.randn(30, 3) + 5
    s = compute_stats_many([a, b])
    ref = reference(torch.cat([a, b.flatten()]))
    assert s.numel == 190 and s.mean == pytest.approx(ref["mean"]) and s.std == pytest.approx(ref["std"])


def test_preview_is_marked_approximate_and_close():
    t = torch.randn(3_000_000, generator=torch.Generator().manual_seed(5))
    p = preview_stats(t)
    assert p.approximate and p.sampled < t.numel() and p.numel == t.numel()
    assert abs(p.mean) < 0.01 and abs(p.std - 1) < 0.01
    small = preview_stats(torch.randn(100))
    assert not small.approximate
