"""The native half-size top-K kernel: built by `make native` (part of `make setup`), chosen by the engine,
and ranking like float32 within float16 rounding; the engine's old kernels where the library is absent."""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from app.engine import half_embeddings, native_half_topk
from app.engine.half_embeddings import HalfRows, decode_rows, default_backend, encode_rows, top_k_half
from app.engine.native_half_topk import native_kernel

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kernel():
    """The library as `make setup` builds it (skipped only where this machine has no C compiler)."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler: the engine keeps FAISS/numpy (tested below)")
    subprocess.run(["make", "-s", "native"], cwd=REPO, check=True, capture_output=True, timeout=120)
    native_kernel.cache_clear()
    loaded = native_kernel()
    assert loaded is not None, f"make native did not give a loadable {native_half_topk.LIBRARY}"
    return loaded


@pytest.fixture(params=["simd", "portable"])
def each_path(request, kernel):
    """The kernel once as this CPU runs it, once with the portable loop (aarch64's, the phones' ISA)."""
    kernel.use_portable(request.param == "portable")
    yield kernel
    kernel.use_portable(False)


def _unit_rows(n, d, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _exact_top(rows: HalfRows, queries: np.ndarray, k: int, dead=()) -> tuple[np.ndarray, np.ndarray]:
    """numpy's answer over the decoded rows: (Q, k) rows and scores, ties by row."""
    scores = queries @ decode_rows(rows).T
    scores[~np.isfinite(scores)] = -np.inf
    scores[:, list(dead)] = -np.inf
    top = np.stack([np.lexsort((np.arange(scores.shape[1]), -s))[:k] for s in scores])
    return top, np.take_along_axis(scores, top, 1)


def test_make_setup_builds_the_kernel_the_engine_chooses(kernel, monkeypatch):
    """int8 always; float16 where FAISS is not installed (FAISS's fp16 kernel measured faster where it is)."""
    assert kernel.name == ("native avx2+f16c" if kernel.simd else "native portable")
    for kind, faiss in (("int8", True), ("float16", False)):
        monkeypatch.setattr(half_embeddings, "faiss_available", lambda f=faiss: f)
        rows = encode_rows(_unit_rows(100, 16), kind)
        assert default_backend(rows) == "native"
        top, _ = top_k_half(rows, decode_rows(rows)[3], 5)  # the engine's default path
        assert top[0] == 3
    monkeypatch.setattr(half_embeddings, "faiss_available", lambda: True)
    assert default_backend(encode_rows(_unit_rows(100, 16), "float16")) == "faiss"


@pytest.mark.parametrize("kind", ["float16", "int8"])
@pytest.mark.parametrize("dim", [128, 37, 5])
def test_native_top_k_equals_numpy_and_float32s_own(each_path, kind, dim, monkeypatch):
    monkeypatch.setattr(native_half_topk, "SMALL_SHARD_BYTES", 0)  # several shards, merged
    x = _unit_rows(9001, dim, seed=dim)
    rows, queries = encode_rows(x, kind), x[[0, 4500, 9000]]  # several queries in one pass
    top, scores = each_path.top_k(rows.codes, rows.scales, queries, 10)
    want, want_scores = _exact_top(rows, queries, 10)
    np.testing.assert_array_equal(top, want)
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-5)
    fp32 = np.argsort(-(queries @ x.T), axis=1)[:, :10]
    for got, exact in zip(top, fp32):
        assert len(set(got) & set(exact)) >= (9 if kind == "float16" else 8)  # float32's top 10, rounding aside


def test_dead_and_damaged_rows_never_rank_and_ties_go_to_the_lower_row(each_path):
    x = _unit_rows(300, 24, seed=3)
    x[[10, 20, 30]] = x[7]  # four equal rows
    x[50] = np.nan
    rows = encode_rows(x, "float16")
    dead = np.array([20, 123])
    top, scores = top_k_half(rows, x[7], 6, dead_rows=dead, backend="native")
    want, want_scores = _exact_top(rows, x[7][None], 6, dead)
    np.testing.assert_array_equal(top, want[0])
    assert list(top[:3]) == [7, 10, 30] and 50 not in top
    np.testing.assert_allclose(scores, want_scores[0], rtol=0, atol=1e-6)


def test_k_above_the_rows_empty_matrices_and_no_queries(kernel, monkeypatch):
    monkeypatch.setattr(native_half_topk, "SMALL_SHARD_BYTES", 0)  # more shards than rows: some scan nothing
    rows = encode_rows(_unit_rows(7, 9), "int8")
    top, scores = top_k_half(rows, decode_rows(rows)[2], 50, backend="native")
    np.testing.assert_array_equal(top, _exact_top(rows, decode_rows(rows)[2][None], 7)[0][0])
    assert len(top_k_half(rows, decode_rows(rows)[2], 50, dead_rows=np.array([1, 2]), backend="native")[0]) == 5
    empty = encode_rows(np.zeros((0, 9), np.float32), "float16")
    assert top_k_half(empty, np.ones(9), 5, backend="native")[0].shape == (0,)
    top, scores = kernel.top_k(rows.codes, rows.scales, np.zeros((0, 9), np.float32), 3)
    assert top.shape == scores.shape == (0, 0)


def test_strided_and_fortran_codes_give_the_contiguous_answer(kernel):
    x = _unit_rows(2000, 40, seed=4)
    codes = encode_rows(x, "float16").codes
    q = x[[1, 2]]
    want = kernel.top_k(np.ascontiguousarray(codes[::2]), None, q, 10)
    for view in (codes[::2], np.asfortranarray(codes[::2])):  # read in place; copied
        got = kernel.top_k(view, None, q, 10)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_wrong_inputs_are_refused_by_name(kernel):
    rows = encode_rows(_unit_rows(10, 8), "int8")
    with pytest.raises(ValueError, match="float16, or int8 with scales"):
        kernel.top_k(rows.codes, None, np.ones((1, 8), np.float32), 3)
    with pytest.raises(ValueError, match="do not fit embeddings of size 8"):
        kernel.top_k(rows.codes, rows.scales, np.ones((1, 7), np.float32), 3)
    with pytest.raises(ValueError, match="float16, or int8"):
        kernel.top_k(np.ones((3, 8), np.float32), None, np.ones((1, 8), np.float32), 3)


def test_without_the_library_the_engine_keeps_faiss_or_numpy(tmp_path, monkeypatch):
    assert native_kernel(tmp_path / "libhalf_topk.so") is None  # never built (the phones)
    (tmp_path / "broken.so").write_bytes(b"not a shared library")
    assert native_kernel(tmp_path / "broken.so") is None  # built for another machine
    monkeypatch.setattr(half_embeddings, "native_kernel", lambda: None)
    x = _unit_rows(500, 16, seed=5)
    half, int8 = encode_rows(x, "float16"), encode_rows(x, "int8")
    assert default_backend(half) == ("faiss" if half_embeddings.faiss_available() else "numpy")
    assert default_backend(int8) == "numpy"
    for rows in (half, int8):
        np.testing.assert_array_equal(top_k_half(rows, x[9], 5)[0], _exact_top(rows, x[9][None], 5)[0][0])
    with pytest.raises(ValueError, match="make setup"):
        top_k_half(half, x[9], 5, backend="native")
