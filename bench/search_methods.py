"""The ways bench.search stores embeddings and answers a query (numpy fp32/fp16/int8, FAISS flat,
scalar-quantised and IVF), each ready to time one query at a time and to answer all at once for recall."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.search_vectors import K, blocked_scores, quantize_int8, top_k_of_scores

Search = Callable[[np.ndarray], np.ndarray]  # (D,) query -> (k,) row numbers, best first


@dataclass
class Prepared:
    """A method ready to answer: one query at a time (timed) and all at once (for recall)."""

    search: Search
    batch: Callable[[np.ndarray], np.ndarray]  # (Q, D) queries -> (Q, K) rows


@dataclass
class Method:
    """One way to store embeddings and answer a query; ``prepare(matrix)`` builds what it searches."""

    key: str
    name: str
    bytes_per_row: Callable[[int], float]  # dim -> bytes stored per photo
    prepare: Callable[[np.ndarray], Prepared]
    faiss_threads: int | None = 1
    blas_threads: int | None = None  # None: the BLAS library's default


def _per_query(search: Search) -> Prepared:
    return Prepared(search, lambda queries: np.stack([search(q) for q in queries]))


def _faiss(index: Any) -> Prepared:
    return Prepared(lambda q: index.search(q[None], K)[1][0], lambda queries: index.search(queries, K)[1])


def _engine_numpy(matrix: np.ndarray) -> Prepared:
    """The engine's own search: ``top_k_rows`` on a Snapshot of the matrix, as ``store.snapshot()`` makes."""
    from app.engine.search import top_k_rows
    from app.engine.store import Snapshot

    n = matrix.shape[0]
    snap = Snapshot(
        matrix=matrix, photo_ids=np.arange(n, dtype=np.int64), dead_rows=np.empty(0, dtype=np.int64), live=n
    )
    return _per_query(lambda q: top_k_rows(snap, q, K)[0])


def _numpy_quantised(stored: np.ndarray, scales: np.ndarray | None = None) -> Prepared:
    return Prepared(
        lambda q: top_k_of_scores(blocked_scores(stored, q, scales), K),
        lambda queries: top_k_of_scores(blocked_scores(stored, np.ascontiguousarray(queries.T), scales), K),
    )


def _numpy_fp16(matrix: np.ndarray) -> Prepared:
    return _numpy_quantised(np.asarray(matrix).astype(np.float16))


def _numpy_int8(matrix: np.ndarray) -> Prepared:
    return _numpy_quantised(*quantize_int8(np.asarray(matrix)))


def _faiss_flat(matrix: np.ndarray) -> Prepared:
    import faiss

    index = faiss.IndexFlatIP(matrix.shape[1])
    index.add(np.ascontiguousarray(matrix))
    return _faiss(index)


def _faiss_sq(kind: str) -> Callable[[np.ndarray], Prepared]:
    def prepare(matrix: np.ndarray) -> Prepared:
        import faiss

        qtype = {"fp16": faiss.ScalarQuantizer.QT_fp16, "8bit": faiss.ScalarQuantizer.QT_8bit}[kind]
        index = faiss.IndexScalarQuantizer(matrix.shape[1], qtype, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(matrix[:: max(1, len(matrix) // 100_000)]))  # per-dimension ranges
        index.add(np.ascontiguousarray(matrix))
        return _faiss(index)

    return prepare


def ivf_nlist(n: int) -> int:
    return max(1, round(math.sqrt(n)))


def build_ivf(matrix: np.ndarray) -> tuple[Any, float]:
    """FAISS IndexIVFFlat (inner product) with sqrt(N) lists, k-means of 10 iterations on 40 rows per
    list; returns (index, build seconds)."""
    import faiss

    n, dim = matrix.shape
    nlist = ivf_nlist(n)
    t0 = time.perf_counter()
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    rng = np.random.default_rng(2)
    sample = matrix[np.sort(rng.choice(n, size=min(n, 40 * nlist), replace=False))]
    index.train(np.ascontiguousarray(sample))
    index.add(np.ascontiguousarray(matrix))
    return index, time.perf_counter() - t0


def methods(default_threads: int) -> list[Method]:
    fp32, fp16, int8 = (lambda d: 4 * d), (lambda d: 2 * d), (lambda d: d + 4)
    return [
        Method(
            "numpy_fp32",
            "numpy fp32 (the engine: top_k_rows on the memory-mapped matrix)",
            fp32,
            _engine_numpy,
        ),
        Method("numpy_fp32_1t", "numpy fp32, 1 BLAS thread", fp32, _engine_numpy, blas_threads=1),
        Method("numpy_fp16", "numpy fp16 rows (blocked upcast)", fp16, _numpy_fp16),
        Method("numpy_int8", "numpy int8 rows, per-row scale (blocked upcast)", int8, _numpy_int8),
        Method("faiss_flat_1t", "FAISS IndexFlatIP, 1 thread", fp32, _faiss_flat),
        Method(
            "faiss_flat_default",
            f"FAISS IndexFlatIP, {default_threads} threads",
            fp32,
            _faiss_flat,
            faiss_threads=default_threads,
        ),
        Method("faiss_sq_fp16", "FAISS ScalarQuantizer fp16, 1 thread", fp16, _faiss_sq("fp16")),
        Method("faiss_sq_8bit", "FAISS ScalarQuantizer 8-bit, 1 thread", (lambda d: d), _faiss_sq("8bit")),
    ]


class _Threads:
    """Set FAISS's OpenMP and the BLAS pool's thread counts for a block, then restore them."""

    def __init__(self, faiss_threads: int | None, blas_threads: int | None):
        self.faiss_threads, self.blas_threads = faiss_threads, blas_threads

    def __enter__(self) -> None:
        import faiss
        from threadpoolctl import threadpool_limits

        self._faiss_before = faiss.omp_get_max_threads()
        if self.faiss_threads:
            faiss.omp_set_num_threads(self.faiss_threads)
        self._blas = threadpool_limits(self.blas_threads, user_api="blas") if self.blas_threads else None

    def __exit__(self, *exc: object) -> None:
        import faiss

        faiss.omp_set_num_threads(self._faiss_before)
        if self._blas is not None:
            self._blas.restore_original_limits()
