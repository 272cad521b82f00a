"""Tests for bench.search: synthetic embeddings, the search methods and their recall, memory bandwidth."""

from __future__ import annotations

import numpy as np
import pytest

from bench import search


@pytest.mark.parametrize("kind", ["uniform", "clustered"])
def test_synthetic_embeddings_are_unit_vectors(kind):
    data, queries = search.synthetic_embeddings(2000, 64, 20, kind)
    assert data.shape == (2000, 64) and queries.shape == (20, 64) and data.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(data, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)


def test_clustered_queries_have_clear_neighbours():
    top = {}
    for kind in ("uniform", "clustered"):
        data, queries = search.synthetic_embeddings(5000, 64, 20, kind)
        top[kind] = float(np.mean(np.max(queries @ data.T, axis=1)))
    assert top["clustered"] > top["uniform"] + 0.2
    with pytest.raises(ValueError, match="unknown embedding distribution 'gaussian'"):
        search.synthetic_embeddings(10, 4, 1, "gaussian")


def test_quantised_scores_match_float_scores():
    data, queries = search.synthetic_embeddings(3000, 96, 8, "clustered")
    exact = data @ queries.T
    codes, scales = search.quantize_int8(data)
    assert codes.dtype == np.int8 and np.abs(codes).max() == 127
    np.testing.assert_allclose(codes * scales[:, None], data, atol=float(scales.max()) / 2 + 1e-7)
    int8 = search.blocked_scores(codes, np.ascontiguousarray(queries.T), scales)
    half = search.blocked_scores(data.astype(np.float16), np.ascontiguousarray(queries.T))
    np.testing.assert_allclose(int8, exact, atol=0.02)
    np.testing.assert_allclose(half, exact, atol=2e-3)
    np.testing.assert_allclose(
        search.blocked_scores(codes, queries[0], scales), int8[:, 0], rtol=1e-5, atol=1e-6
    )


def test_top_k_recall_and_the_engines_answers():
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.2], dtype=np.float32)
    np.testing.assert_array_equal(search.top_k_of_scores(scores, 3), [1, 3, 2])
    np.testing.assert_array_equal(
        search.top_k_of_scores(np.stack([scores, -scores], axis=1), 2), [[1, 3], [0, 4]]
    )
    assert search.neighbour_recall(np.array([[1, 2, 3]]), np.array([[3, 2, 1]])) == 1.0
    assert search.neighbour_recall(np.array([[1, 2], [5, 6]]), np.array([[1, 9], [7, 8]])) == 0.25
    with pytest.raises(ValueError, match="1 result lists for 2 queries"):
        search.neighbour_recall(np.array([[1]]), np.array([[1], [2]]))

    data, queries = search.synthetic_embeddings(5000, 32, 10, "clustered")
    truth = search.exact_answers(data, queries)
    for key in ("numpy_fp32", "numpy_fp16", "faiss_flat_1t"):
        method = next(m for m in search.methods(2) if m.key == key)
        prepared = method.prepare(data)
        assert search.neighbour_recall(prepared.batch(queries), truth) >= (1.0 if key == "numpy_fp32" else 0.98)
        np.testing.assert_array_equal(prepared.search(queries[0])[:5], prepared.batch(queries[:1])[0][:5])


def test_bandwidth_and_read_limit():
    bw = search.read_bandwidth(8 * 2**20, repeats=2, threads=2)
    assert bw["gbps_1_thread"] > 0 and bw["gbps_all_threads"] > 0 and bw["bytes"] == 8 * 2**20
    for kernel in ("sum", "sgemv", "sgemv_blas_threads"):  # each figure is the fastest kernel's
        assert 0 < bw["by_kernel"][kernel]["all_threads"] <= bw["gbps_all_threads"]
    for kernel in ("sum", "sgemv"):
        assert 0 < bw["by_kernel"][kernel]["1_thread"] <= bw["gbps_1_thread"]
    assert search.scan_limit_ms(2_000_000_000, 10.0) == pytest.approx(200.0)


def test_the_scan_limit_uses_the_best_of_the_probes_before_and_after_the_scans():
    """A probe taken at a busy moment must not set a limit the scans then beat (a fresh-clone CI run failed so)."""
    busy = {"bytes": 8, "repeats": 3, "threads": 2, "gbps_1_thread": 10.0, "gbps_all_threads": 24.0, "by_kernel": {}}
    idle = {**busy, "gbps_1_thread": 12.0, "gbps_all_threads": 29.0}
    merged = search.best_bandwidth(busy, idle)
    assert (merged["gbps_1_thread"], merged["gbps_all_threads"]) == (12.0, 29.0)
    assert merged["probes"] == [busy, idle] and search.best_bandwidth(idle, busy)["gbps_all_threads"] == 29.0
