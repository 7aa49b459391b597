"""Pooled statistics of many tensors: batched concatenation gives the figures of one tensor."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from app.core import stats_pooled
from app.core.errors import Cancelled
from app.core.stats import compute_stats, compute_stats_many


def close(a, b):
    return a == b or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9,
                                                                         abs_tol=1e-12))


def same(a, b):
    assert (a.numel, a.nan, a.inf, a.zeros) == (b.numel, b.nan, b.inf, b.zeros)
    for f in ("min", "max", "mean", "std", "l2"):
        assert close(getattr(a, f), getattr(b, f)), f
    assert np.array_equal(a.counts, b.counts)


def test_many_small_tensors_pool_like_one(monkeypatch):
    monkeypatch.setattr(stats_pooled, "BATCH", 50)  # several batches, and tensors bigger than one
    torch.manual_seed(0)
    ts = [torch.randn(int(n)) for n in torch.randint(0, 40, (300,))] + [torch.randn(200)]
    ts[7][0] = float("nan")
    ts[9][1] = float("inf")
    same(compute_stats_many(ts), compute_stats(torch.cat(ts)))


def test_mixed_dtypes_and_odd_layouts_pool_in_float64():
    torch.manual_seed(1)
    plain32 = torch.randn(30)
    half = torch.randn(20).to(torch.bfloat16)
    ints = torch.arange(-5, 5, dtype=torch.int32)
    strided = torch.randn(6, 8).t()           # not contiguous: the per-tensor path
    expanded = torch.randn(3, 1).expand(3, 4)  # stride 0: weighted
    ts = [plain32, half, ints, strided, expanded]
    want = compute_stats(torch.cat([t.reshape(-1).to(torch.float64) for t in ts]))
    got = compute_stats_many(ts)
    assert got.dtype == "float64"
    same(got, want)


def test_parameters_pool_without_recording_a_graph():
    p = torch.nn.Parameter(torch.randn(5))
    q = torch.nn.Parameter(torch.randn(7))
    s = compute_stats_many([p, q])
    same(s, compute_stats(torch.cat([p.detach(), q.detach()])))


def test_pooling_is_cancellable_and_reports_progress():
    ts = [torch.randn(10) for _ in range(50)]
    seen = []
    compute_stats_many(ts, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] > 0
    with pytest.raises(Cancelled):
        compute_stats_many(ts, cancelled=lambda: True)
