"""The robust range, integer-aligned bins and counts over a chosen range (app.core.stats_range)."""
import numpy as np
import pytest
import torch

from app.core import stats_range as sr
from app.core.errors import Cancelled


def outliers(n=50_000):
    t = torch.randn(n, generator=torch.Generator().manual_seed(0)) * 0.02
    t[:3] = torch.tensor([250.0, -180.0, 90.0])
    return t


def test_percentiles_of_a_small_tensor_are_exact_and_ignore_the_outliers():
    t = outliers()
    sample = sr.value_sample([t])
    assert sample.exact and sample.total == t.numel()
    lo, hi = sr.percentile_range(sample)
    ref = np.quantile(t.numpy().astype(np.float64), [0.001, 0.999])
    assert lo == pytest.approx(ref[0], abs=2e-4) and hi == pytest.approx(ref[1], abs=2e-4)
    assert sr.outliers_dominate((float(t.min()), float(t.max())), (lo, hi))
    clean = torch.randn(10_000)
    s = sr.value_sample([clean])
    assert not sr.outliers_dominate((float(clean.min()), float(clean.max())),
                                    sr.percentile_range(s))


def test_a_big_tensor_is_sampled_in_bounded_size_and_counts_estimated():
    t = torch.randn(400_000, generator=torch.Generator().manual_seed(1))
    sample = sr.value_sample([t], want=1 << 14)
    assert not sample.exact and sample.values.numel() <= 1 << 15
    assert sample.total == pytest.approx(t.numel(), rel=1e-6)
    edges = sr.float_edges(-1.0, 1.0, 20)
    est = sr.sample_histogram(sample, edges)
    exact = sr.range_histogram([t], edges)
    assert est.approximate and not exact.approximate
    assert exact.counts.sum() + exact.below + exact.above == t.numel()
    ref = np.histogram(t.numpy(), edges)[0]
    assert np.abs(exact.counts - ref).sum() <= 1e-4 * t.numel()  # float32 binning at the edges
    assert (sr.range_histogram([t.double()], edges).counts == ref).all()  # float64: exact
    assert exact.below == int((t < -1).sum()) and exact.above == int((t > 1).sum())
    assert abs(est.counts.sum() - exact.counts.sum()) < 0.02 * t.numel()
    top = sr.range_histogram([torch.tensor([0.0, 0.5, 1.0, 1.5, float("inf"), float("nan")])],
                             sr.float_edges(0.0, 1.0, 2))
    assert list(top.counts) == [1, 2] and (top.below, top.above) == (0, 1)  # top edge inclusive


def test_integer_edges_hold_whole_integers():
    e = sr.integer_edges(-115, 102, 100)  # int8-like: one bin per integer
    assert len(e) == 102 + 115 + 2 and e[0] == -115.5 and (np.diff(e) == 1).all()
    wide = sr.integer_edges(0, 9999, 100)  # many integers: 100 bins of 100 integers
    assert len(wide) - 1 == 100 and (np.diff(wide) == 100).all() and wide[0] == -0.5
    assert list(sr.view_edges("bool", 0, 1, 100)) == [-0.5, 0.5, 1.5]


def test_integer_counts_have_no_comb():
    t = (torch.randn(8192, generator=torch.Generator().manual_seed(2)) * 30).round()
    t = t.clamp(-128, 127).to(torch.int8)
    edges = sr.view_edges("int8", int(t.min()), int(t.max()), 100)
    counts = sr.range_histogram([t], edges).counts
    ref = np.bincount(t.numpy().astype(np.int64) - int(t.min()))
    assert (counts == ref).all()
    middle = counts[abs(edges[:-1] + 0.5) < 20]
    assert (middle > 0).all()  # dense values: no empty bins between full ones


def test_pooled_sparse_and_expanded_tensors_are_weighted():
    dense = torch.arange(10.0)
    expanded = torch.tensor([5.0]).expand(1000)
    sparse = torch.zeros(50).to_sparse()
    sample = sr.value_sample([dense, expanded, sparse])
    assert sample.exact and sample.total == 1060
    counts = sr.range_histogram([dense, expanded, sparse], sr.integer_edges(0, 9, 10))
    assert counts.counts[5] == 1001 and counts.counts[0] == 51


def test_range_histogram_is_cancellable():
    with pytest.raises(Cancelled):
        sr.range_histogram([torch.zeros(10)], sr.float_edges(0, 1, 4), cancelled=lambda: True)


def test_no_finite_values_give_no_range():
    s = sr.value_sample([torch.full((5,), float("nan"))])
    assert sr.percentile_range(s) is None and not sr.outliers_dominate((0.0, 1.0), None)
