"""How far float32 arithmetic (single_figures) may take the figures from float64, and the cases
it hands to float64 because it could not keep that bound."""
import math

import pytest
import torch

from app.core.compare.single_figures import sumsq_rel_error
from app.core.compare.tensor_diff import CHUNK, compare_tensors


def reference(a: torch.Tensor, b: torch.Tensor) -> dict:
    A, B = a.flatten().double(), b.flatten().double()
    d = A - B
    na, nb, nd = A.square().sum().sqrt(), B.square().sum().sqrt(), d.square().sum().sqrt()
    return {"n_diff": int((A != B).sum()), "max_abs": float(d.abs().max()),
            "rel_l2": float(nd / nb), "cosine": float(1 - (nd ** 2 - (na - nb) ** 2) / (2 * na * nb)),
            "a2": float(na ** 2), "b2": float(nb ** 2), "d2": float(nd ** 2)}


def rel_err(got: float, want: float) -> float:
    return abs(got - want) / abs(want)


def test_norms_of_random_fine_tunes_agree_with_float64_to_1e_6():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1 << 22, generator=g)  # 64 chunks, some 1e5 squares per BLAS lane
    b = a + 1e-3 * torch.randn(a.shape, generator=g)
    d, want = compare_tensors(a, b), reference(a, b)
    assert (d.n_diff, d.max_abs) == (want["n_diff"], want["max_abs"])
    assert rel_err(d.rel_l2, want["rel_l2"]) < 1e-6
    assert abs(d.cosine - want["cosine"]) < 1e-12  # 1 - cos ~ 5e-7: its error ~1e-7 of that


def test_one_huge_square_among_small_ones_stays_within_the_float32_bound():
    """The worst case of a float32 sum: a term 2**24 times the others first, so each later one
    is half an ulp of the running sum and rounds away (in its BLAS lane)."""
    a = torch.ones(CHUNK)
    a[0] = 2.0 ** 12
    b = a.clone()
    b[1:] = 2.0  # d = -1 at each later place
    b[0] = 2.0 ** 12 + 2.0 ** 0
    d, want = compare_tensors(a, b), reference(a, b)
    assert (d.n_diff, d.max_abs) == (want["n_diff"], want["max_abs"])
    bound = sumsq_rel_error(CHUNK)  # 3.9e-3: any summation order; measured MKL: 2.4e-4
    assert rel_err(d.rel_l2, want["rel_l2"]) <= bound
    assert abs(d.cosine - want["cosine"]) <= 2 * bound


def test_cancellation_near_equal_large_values_keeps_rel_l2_and_cosine():
    """b = a + one ulp at 1e4: the differences are exact (Sterbenz), cos is 1 - 1e-17 or so.
    Measured: rel_l2 off by 1.9e-6 (b2's float32 sums of 2**18 like squares), cosine by 4e-15
    (|a| - |b| from the float32 norms)."""
    g = torch.Generator().manual_seed(1)
    a = 1e4 + torch.rand(1 << 18, generator=g)
    b = torch.nextafter(a, torch.tensor(math.inf))
    d, want = compare_tensors(a, b), reference(a, b)
    assert (d.n_diff, d.max_abs) == (want["n_diff"], want["max_abs"])
    assert rel_err(d.rel_l2, want["rel_l2"]) <= sumsq_rel_error(CHUNK)
    assert abs(d.cosine - want["cosine"]) < 1e-12


@pytest.mark.parametrize("scale", [1e19, 1e-25, 1e38])
def test_squares_beyond_float32_range_are_left_to_float64(scale):
    """Squares that overflow (1e19, and a - b itself at 1e38) or underflow (1e-25) in float32:
    those chunks take the float64 path, so the figures stay float64-exact."""
    g = torch.Generator().manual_seed(2)
    a = (torch.rand(1 << 17, generator=g) + 1) * scale
    b = -a if scale == 1e38 else a * (1 + 1e-3 * torch.randn(a.shape, generator=g))
    d, want = compare_tensors(a, b), reference(a, b)
    assert (d.n_diff, d.max_abs) == (want["n_diff"], want["max_abs"])
    assert d.rel_l2 == pytest.approx(want["rel_l2"], rel=1e-12)
    assert d.cosine == pytest.approx(want["cosine"], rel=1e-12, abs=1e-15)


def test_max_is_exact_where_float32_rounds_two_chunks_to_the_same_top():
    """|a - b| rounded to float32 is 2**24 + 2 in chunk 0 (exact) and chunk 5 (exactly
    2**24 + 2.9, rounded down): the exact largest is the later one."""
    n = 6 * CHUNK
    a, b = torch.zeros(n), torch.zeros(n)
    a[10], b[10] = 2.0 ** 24 + 2, 0.0
    a[5 * CHUNK + 3], b[5 * CHUNK + 3] = 2.0 ** 24 + 4, 1.1
    d = compare_tensors(a, b, threads=2)
    assert d.max_abs == reference(a, b)["max_abs"] == (2.0 ** 24 + 4) - float(torch.tensor(1.1))
    a[5 * CHUNK + 3], b[5 * CHUNK + 3] = 1.1, -(2.0 ** 24 + 4)  # now |b| > |a|, rounded up
    a[10] = b[10] = 0.0
    d = compare_tensors(a, b)
    assert d.max_abs == reference(a, b)["max_abs"] == float(torch.tensor(1.1)) + 2.0 ** 24 + 4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_signed_zeros_are_equal_and_half_floats_compare_exactly(dtype):
    """Counts and max exact (half floats are exact in float32); measured rel_l2 off by 1.8e-6
    (bfloat16) and 2.4e-6 (float16): few distinct squares, so their roundings add up."""
    assert compare_tensors(torch.tensor([0.0, 1.0]), torch.tensor([-0.0, 1.0])).equal
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1 << 17, generator=g)
    a, b = x.to(dtype), (x + 1e-2 * torch.randn(x.shape, generator=g)).to(dtype)
    d, want = compare_tensors(a, b), reference(a, b)
    assert (d.n_diff, d.max_abs) == (want["n_diff"], want["max_abs"])
    assert rel_err(d.rel_l2, want["rel_l2"]) <= sumsq_rel_error(CHUNK)
