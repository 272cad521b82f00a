"""Exact top-K search over the stored embeddings: one matrix-vector product, dead rows masked.

Chosen by measurement (``python -m bench``, section "search"; figures in bench/results/, idle 2-core
x86): numpy on the store's memory-mapped matrix. FAISS ``IndexFlatIP`` on one thread was no faster
(128-d: 1.37 vs 1.34 ms at 100k rows, 19.6 vs 18.8 ms at 1M; 512-d at 1M: 78 vs 47 ms) and with
its 2 OpenMP threads at best on par (17.3 ms at 1M x 128, 96 ms at 1M x 512), needs its own copy of every embedding (+51 MB at 100k x 128, +205 MB at
512-d) rebuilt after each compaction, and has no wheel for the phones; at 10k rows both take well
under a millisecond, less than encoding the query. Both are exact; a query costs one pass over the
matrix (memory-bandwidth bound: 43.7 GB/s at 1M x 512).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from app.engine.half_embeddings import HalfRows, top_k_half
from app.engine.store import Snapshot

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchResult:
    """One hit: the photo's path, its cosine similarity to the query, and its id in the store."""

    path: str
    score: float
    photo_id: int


SMALL_PRODUCT = 1 << 23  # matrix elements (32 MiB float32) up to which the product stays on the calling thread


def scores_of(matrix: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(N,) float32 dot products of every row with ``q``.

    Up to :data:`SMALL_PRODUCT` elements (a phone gallery: 10k x 128 is 1.3M) numpy's own loop on this
    thread: BLAS would split a product this small over its thread pool, whose workers have gone to
    sleep between queries; waking one on a busy core costs a scheduler slice (24 ms p50 for a 0.1 ms
    product at 10k x 128 on this 2-core machine under load, against 0.3 ms here). Larger matrices
    take the multi-threaded BLAS product, where the wake-up is paid once against a long read.
    """
    if matrix.size <= SMALL_PRODUCT:
        return np.einsum("ij,j->i", matrix, q)
    return blas_product(matrix, q)


def blas_product(matrix: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.asarray(matrix @ q)


def top_k_rows(snapshot: Snapshot, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ``k`` highest dot products with ``query`` (D,), best first; ties by row number.

    Returns (rows (k',), scores (k',) float32) with k' = min(k, live rows). Dead rows never appear.
    The matrix is read in place: the only allocation is the (N,) score vector.
    """
    matrix = snapshot.matrix
    n = matrix.shape[0]
    k = min(int(k), snapshot.live)
    if n == 0 or k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    if q.shape[0] != matrix.shape[1]:
        raise ValueError(f"query of size {q.shape[0]} does not fit embeddings of size {matrix.shape[1]}")
    if matrix.dtype == np.float16:  # a float16 index: the half-size kernel (FAISS where installed)
        return top_k_half(HalfRows(matrix), q, k, snapshot.dead_rows)
    scores = scores_of(matrix, q)
    scores[~np.isfinite(scores)] = -np.inf  # a damaged row (NaN, inf) never ranks
    if len(snapshot.dead_rows):
        scores[snapshot.dead_rows] = -np.inf
    rows = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    rows = rows[np.lexsort((rows, -scores[rows]))]
    return rows.astype(np.int64), scores[rows]
