"""The expression sandbox (issue 9): an allowlist, no in-place change of any kind, bounded
integers and allocations, chunked evaluation identical to whole evaluation, cancel and restore.
Every hole found by the attack on the old blocklist has a case here."""
from __future__ import annotations

import json

import pytest
import torch

from app.core.model.document import Document
from app.core.edits.values import ExprEdit
from app.core.errors import Cancelled, UserError
from app.core.expressions.expr import InPlaceChange, compile_expr, evaluate


def doc_of(**tensors):
    return Document.from_object(dict(tensors))


# -- in place: refused before it writes, and the tensor is unchanged ---------------------------

INPLACE = [
    "torch.nn.functional.relu(w, True)",
    "torch.nn.functional.hardtanh(w, -.5, .5, True)",
    "torch.nn.functional.dropout(w, .5, True, True)",
    "torch.nn.functional.alpha_dropout(w, .5, True, True)",
    "torch.nn.functional.threshold(w, 0., 1., True)",
    "torch.nn.functional.elu(w, 1.0, True)",
    "torch.nn.functional.leaky_relu(w, 0.1, True)",
    "torch.nn.functional.relu6(w, True)",
    "torch.nn.functional.relu(w.view(-1), True)",       # through a view of w
    "torch.nn.functional.relu(w.detach(), True) * 0",   # through a detached alias
]


@pytest.mark.parametrize("text", INPLACE)
def test_positional_inplace_arguments_are_refused_and_change_nothing(text):
    w = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    before = w.clone()
    with pytest.raises(UserError, match="in place"):
        evaluate(text, w)
    assert torch.equal(w, before)


@pytest.mark.parametrize("text", INPLACE[:3])
def test_inplace_expression_edit_leaves_the_document_unchanged(text):
    doc = doc_of(a=torch.randn(40, 30, generator=torch.Generator().manual_seed(2)))
    before = doc.tensor("a").clone()
    for chunk in (1 << 20, 64):  # whole and chunked evaluation
        edit = ExprEdit(["a"], text, mask="w > 0")
        edit.chunk_elements = chunk
        with pytest.raises(UserError, match="in place"):
            edit.apply(doc)
        assert torch.equal(doc.tensor("a"), before)


def test_the_version_counter_is_a_backstop_the_guard_does_not_need():
    # A sparse tensor has no plain storage for the guard to protect: the version check catches it.
    s = torch.tensor([[0.0, -1.0], [2.0, 0.0]]).to_sparse()
    with pytest.raises(InPlaceChange, match="changed w in place"):
        evaluate("torch.nn.functional.relu(w, True)", s)


def test_out_and_inplace_keywords_and_underscore_methods_are_refused():
    for text in ["torch.add(w, 1, out=w)", "torch.nn.functional.relu(w, inplace=True)",
                 "w.add_(1)", "w.detach().mul_(0)", "w.zero_()", "w.set_(w)", "w.data",
                 "torch.nn.functional.relu(w, **{'inplace': True})"]:
        with pytest.raises(UserError):
            compile_expr(text)


# -- no strings as values, no attributes outside the allowlist ---------------------------------

@pytest.mark.parametrize("text", [
    '"{0.os.environ[SECRET]}".format(torch)',
    "'x'.center(4*10**9)",
    "'a' + 'b'",
    "'abc' * 1000",
    "torch.os.environ",
    "torch.load('f')",
    "torch.save(w, 'f')",
    "torch.hub",
    "torch.nn.init.zeros_(w)",
    "torch.manual_seed(0)",
    "torch.set_default_dtype(torch.float64)",
    "torch.from_file('/etc/passwd')",
    "torch.frombuffer(w, dtype=torch.uint8)",
    "w.__class__",
    "w.untyped_storage()",
    "w.numpy()",
    "w.tolist()",
    "w.grad",
    "w.register_hook(w)",
    "torch.abs",                       # a function must be called, not passed around
    "torch",
    "open('f')",
    "__import__('os')",
    "[x for x in w]",
    "lambda: 1",
    "(w := 1)",
    "f'{w}'",
])
def test_names_outside_the_allowlist_are_refused(text):
    with pytest.raises(UserError, match=r"^expression `"):
        compile_expr(text)


def test_uninitialised_memory_is_refused():
    for text in ["torch.empty(3)", "torch.empty_like(w)", "w.new_empty(3)",
                 "torch.empty_strided((2,), (1,))"]:
        with pytest.raises(UserError, match="not allowed"):
            evaluate(text, torch.ones(3))


# -- bounded time and memory -------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "(10**4096)**4096", "w.numel()**w.numel()**w.numel()", "2 ** 10 ** 10", "1 << 10**9",
    "(2**4000) * (2**4000)", "w.shape[0] ** 100000",
])
def test_huge_integer_arithmetic_is_refused(text):
    with pytest.raises(UserError, match="too large|over 2\\*\\*"):
        evaluate(text, torch.ones(2000))


@pytest.mark.parametrize("text", [
    "torch.ones(10**12)", "torch.zeros(10**5, 10**5)", "torch.arange(10**11)",
    "w.repeat(10**4, 10**4)", "torch.outer(torch.ones(10**6), torch.ones(10**6))",
    "torch.full((10**6, 10**6), 1.0)", "w.expand(10**7, 4, 4) + 1",
    "torch.nn.functional.one_hot(torch.arange(4), 10**9)",
])
def test_allocations_beyond_the_bound_are_refused_before_they_happen(text):
    with pytest.raises(UserError, match="more than an expression on this tensor may use"):
        evaluate(text, torch.ones(4, 4))


def test_sequences_cannot_be_multiplied():
    for text in ["(1,) * 10**9", "[w] * 10**9", "w.shape * 10**9"]:
        with pytest.raises(UserError, match="arithmetic on a"):
            evaluate(text, torch.ones(2))


def test_the_documented_expressions_still_work():
    w = torch.tensor([-6.0, 1.0, 7.0, 0.001])
    cases = {
        "w * 0.5 + 1": w * 0.5 + 1,
        "torch.where(w.abs() < 5, 0, w)": torch.where(w.abs() < 5, 0, w),
        "w.abs() >= 5": w.abs() >= 5,
        "w.abs() < 0.01": w.abs() < 0.01,
        "w.clamp(min=-1.0, max=None)": w.clamp(min=-1.0),
        "torch.nn.functional.gelu(w, approximate='tanh')":
            torch.nn.functional.gelu(w, approximate="tanh"),
        "w - w.mean()": w - w.mean(),
        "0 < w < 5": (0 < w) & (w < 5),
        "w > 0 and w < 5": (w > 0) & (w < 5),
        "torch.sign(w) * torch.sqrt(w.abs())": torch.sign(w) * torch.sqrt(w.abs()),
        "torch.max(w, 0).values": w.max(0).values,
        "w[w > 0].sum() + torch.pi": w[w > 0].sum() + torch.pi,
        "w.to(torch.float64)": w.double(),
        "torch.full_like(w, w.mean())": torch.full_like(w, float(w.mean())),
        "w.numel() ** 2": 16,
    }
    for text, expected in cases.items():
        got = evaluate(text, w)
        assert (got == expected) if not isinstance(got, torch.Tensor) else torch.equal(got, expected), text


# -- chunks ------------------------------------------------------------------------------------

CHUNK_CASES = [
    ("w * 0.5 + 1", None, None, torch.float32),
    ("torch.where(w.abs() < 1, 0, w)", None, None, torch.float32),
    ("w * 0", "w.abs() >= 1", None, torch.float32),
    ("torch.sqrt(w.abs()) * torch.sign(w) + w.clamp(-1, 1) / 3", "w > -0.5", "[:, 1:17]",
     torch.float32),
    ("torch.round(w * 3)", "w != 0", None, torch.int8),
    ("w.float() / 3", None, "[2:9]", torch.bfloat16),
    ("w.double() ** 2 - w.abs()", "(w > 0) | (w < -1)", "[..., 0]", torch.float64),
]


@pytest.mark.parametrize("expr, mask, index, dtype", CHUNK_CASES)
def test_chunked_evaluation_is_bit_identical_to_whole(expr, mask, index, dtype):
    g = torch.Generator().manual_seed(7)
    base = torch.randn(37, 23, generator=g) * 2
    if not dtype.is_floating_point:
        base = base.round().clamp(-40, 40)
    results = []
    for chunk in (1 << 20, 50, 7, 1):
        doc = doc_of(t=base.to(dtype).clone())
        edit = ExprEdit(["t"], expr, index=index, mask=mask)
        edit.chunk_elements = chunk
        region = doc.tensor("t")[edit.idx]
        units = [("t", doc.tensor("t"))]
        assert edit._chunkable(units) == (chunk < region.numel())
        edit.apply(doc)
        results.append(doc.tensor("t").clone())
        edit.revert(doc)
        assert torch.equal(doc.tensor("t"), base.to(dtype))
    for r in results[1:]:
        assert torch.equal(r.view(torch.uint8) if r.dtype == torch.bfloat16 else r,
                           results[0].view(torch.uint8) if r.dtype == torch.bfloat16 else results[0])


def test_chunked_transcendental_functions_agree_to_the_last_bit_or_two():
    # ATen computes exp/tanh/gelu with SIMD code and the ragged end of each loop with scalar code,
    # which can differ in the last bit; where a loop ends depends on the thread split even
    # without chunks, so only closeness is a property of these functions.
    base = torch.randn(97, 61, generator=torch.Generator().manual_seed(8)) * 2
    results = []
    for chunk in (1 << 20, 4096, 64):
        doc = doc_of(t=base.clone())
        edit = ExprEdit(["t"], "torch.nn.functional.gelu(w) + torch.tanh(w) + torch.exp(w) / 3",
                        mask="w > -0.5")
        edit.chunk_elements = chunk
        edit.apply(doc)
        results.append(doc.tensor("t").clone())
    for r in results[1:]:
        torch.testing.assert_close(r, results[0], rtol=2e-7, atol=0)


def test_non_elementwise_expressions_are_evaluated_whole():
    for text in ["w - w.mean()", "w.t().t()", "torch.randn_like(w)", "w.flip(0)", "w[0] * 0 + w"]:
        edit = ExprEdit(["t"], text)
        edit.chunk_elements = 4
        assert not edit._chunkable([("t", torch.zeros(8, 8))]), text
    doc = doc_of(t=torch.arange(64.0).reshape(8, 8))
    edit = ExprEdit(["t"], "w - w.mean()")
    edit.chunk_elements = 4
    edit.apply(doc)
    assert torch.equal(doc.tensor("t"), torch.arange(64.0).reshape(8, 8) - 31.5)


def test_a_failure_in_a_late_chunk_restores_the_written_chunks():
    start = torch.zeros(100, dtype=torch.int8)
    start[-1] = 100  # only the last chunk overflows int8 when doubled
    doc = doc_of(t=start.clone())
    edit = ExprEdit(["t"], "w * 2 + 1")
    edit.chunk_elements = 10
    with pytest.raises(UserError, match="outside what int8 holds"):
        edit.apply(doc)
    assert torch.equal(doc.tensor("t"), start)


def test_cancel_between_chunks_restores_and_progress_counts_elements():
    start = torch.randn(1000, generator=torch.Generator().manual_seed(3))
    doc = doc_of(t=start.clone())
    edit = ExprEdit(["t"], "w * 10", mask="w > 0")
    edit.chunk_elements = 100
    seen = []
    with pytest.raises(Cancelled):
        edit.apply(doc, progress=lambda d, n: seen.append((d, n)), cancelled=lambda: len(seen) >= 3)
    assert seen[:3] == [(100, 1000), (200, 1000), (300, 1000)]
    assert torch.equal(doc.tensor("t"), start)
    seen.clear()
    edit.apply(doc, progress=lambda d, n: seen.append((d, n)))
    assert seen[-1] == (1000, 1000)
    assert torch.equal(doc.tensor("t"), torch.where(start > 0, start * 10, start))
    edit.revert(doc)
    assert torch.equal(doc.tensor("t"), start)


def test_cancel_stops_a_whole_evaluation_too():
    doc = doc_of(t=torch.ones(10, 10))
    with pytest.raises(Cancelled):
        ExprEdit(["t"], "w - w.mean()").apply(doc, cancelled=lambda: True)
    assert torch.equal(doc.tensor("t"), torch.ones(10, 10))


# -- the recipe attack through the real command line -------------------------------------------

@pytest.mark.parametrize("expr", [
    'torch.tensor(list("{0.os.environ[PARAMEDIT_SECRET]}".format(torch).encode())) * 0 + w',
    'w + len("{0.os.environ[PARAMEDIT_SECRET]}".format(torch))',
    "w * 0 + torch.nn.functional.relu(w, True)",
])
def test_apply_refuses_a_hostile_recipe_and_writes_nothing(tmp_path, monkeypatch, capsys, expr):
    from app.__main__ import main
    monkeypatch.setenv("PARAMEDIT_SECRET", "hunter2-very-secret")
    src = tmp_path / "m.pt"
    torch.save({"w": torch.ones(4)}, src)
    data = src.read_bytes()
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"version": 1, "steps": [
        {"op": "expr", "target": "w", "expr": expr}]}))
    out = tmp_path / "out.pt"
    assert main(["apply", str(recipe), str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "hunter2" not in err
    assert not out.exists() and src.read_bytes() == data
    assert not any(b"hunter2" in p.read_bytes() for p in tmp_path.iterdir() if p.is_file())


def test_list_indices_are_evaluated_whole_and_match_plain_torch():
    base = torch.randn(40, 6, generator=torch.Generator().manual_seed(9))
    doc = doc_of(t=base.clone())
    edit = ExprEdit(["t"], "w * 3", index="[[0, 5, 39], 1:4]", mask="w > 0")
    edit.chunk_elements = 2
    assert not edit._chunkable([("t", doc.tensor("t"))])
    edit.apply(doc)
    expected = base.clone()
    region = expected[[0, 5, 39], 1:4]
    expected[[0, 5, 39], 1:4] = torch.where(region > 0, region * 3, region)
    assert torch.equal(doc.tensor("t"), expected)


def test_results_stay_on_the_tensors_device():
    for text in ["w.to('meta')", "w.to(w.device, torch.float64) if False else w.to('meta', torch.float64)",
                 "torch.ones(3, device='meta')", "torch.tensor([1.0], device='meta')",
                 "w.to(dtype=torch.float64, device='meta')"]:
        doc = doc_of(t=torch.ones(3))
        with pytest.raises(UserError, match="dtype only|device= is not allowed"):
            ExprEdit(["t"], text).apply(doc)
        assert torch.equal(doc.tensor("t"), torch.ones(3))
    doc = doc_of(t=torch.ones(3))
    ExprEdit(["t"], "w.to(torch.float64) * 2").apply(doc)
    assert torch.equal(doc.tensor("t"), torch.full((3,), 2.0))
