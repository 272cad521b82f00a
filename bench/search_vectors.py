"""Synthetic stored embeddings, int8 quantisation, blocked scoring, exact top-k and neighbour recall:
the vectors bench.search times its methods on and the reference their answers are checked against."""

from __future__ import annotations

import math

import numpy as np

K = 10
CLUSTER_SIZE = 50  # photos per cluster in the clustered distribution


def _normalized(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def synthetic_embeddings(
    n: int, dim: int, n_queries: int, kind: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) stored and (n_queries, dim) query unit vectors, float32.

    ``uniform``: independent random directions. ``clustered``: x = 0.5 s + c_j + 0.6 e, normalised,
    with s a direction shared by all (the cone CLIP embeddings sit in), c_j the unit centre of the
    photo's group of ~CLUSTER_SIZE and e a random vector of norm ~1; queries are built the same way
    around a random group's centre with noise of norm ~1, so a query's own group scores highest.
    """
    if kind not in ("uniform", "clustered"):
        raise ValueError(f"unknown embedding distribution {kind!r}; use 'uniform' or 'clustered'")
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    chunk = 65_536
    if kind == "uniform":
        for s in range(0, n, chunk):
            out[s : s + chunk] = _normalized(rng.standard_normal((min(chunk, n - s), dim), dtype=np.float32))
        return out, _normalized(rng.standard_normal((n_queries, dim), dtype=np.float32))
    shared = _normalized(rng.standard_normal((1, dim), dtype=np.float32))[0]
    centres = _normalized(rng.standard_normal((max(1, n // CLUSTER_SIZE), dim), dtype=np.float32))
    noise_scale = np.float32(1 / math.sqrt(dim))
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = centres[rng.integers(0, len(centres), m)] + 0.5 * shared
        x += (0.6 * noise_scale) * rng.standard_normal((m, dim), dtype=np.float32)
        out[s : s + m] = _normalized(x)
    q = centres[rng.integers(0, len(centres), n_queries)] + 0.5 * shared
    q += noise_scale * rng.standard_normal((n_queries, dim), dtype=np.float32)
    return out, _normalized(q)


def quantize_int8(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int8: (N, D) float -> codes (N, D) int8, scales (N,) float32; x ~ codes * scale."""
    scales = np.abs(matrix).max(axis=1).astype(np.float32) / np.float32(127)
    scales[scales == 0] = 1.0
    codes = np.empty(matrix.shape, dtype=np.int8)
    for s in range(0, len(matrix), 65_536):
        codes[s : s + 65_536] = np.rint(matrix[s : s + 65_536] / scales[s : s + 65_536, None])
    return codes, scales


def _block_rows(dim: int) -> int:
    return max(64, (1 << 17) // dim)  # a 512 KB float32 block: stays in L2 while it is multiplied


def blocked_scores(stored: np.ndarray, queries: np.ndarray, scales: np.ndarray | None = None) -> np.ndarray:
    """Dot products of fp16 or int8 rows with float32 queries, (D,) -> (N,) or (D, Q) -> (N, Q).

    numpy has no fast half or int8 matrix product: each block of rows is upcast into one reused
    float32 buffer, then multiplied; the per-row ``scales`` (int8) are applied at the end.
    """
    n, dim = stored.shape
    out = np.empty((n, *queries.shape[1:]), dtype=np.float32)
    step = _block_rows(dim) if queries.ndim == 1 else 16 * _block_rows(dim)  # a batch amortises bigger blocks
    buf = np.empty((step, dim), dtype=np.float32)
    for s in range(0, n, step):
        block = buf[: min(step, n - s)]
        block[...] = stored[s : s + step]
        out[s : s + step] = block @ queries  # (np.dot with out= skips BLAS and is several times slower)
    if scales is not None:
        out *= scales.reshape(-1, *([1] * (queries.ndim - 1)))
    return out


def top_k_of_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` highest scores, best first: (N,) -> (k,), or (N, Q) -> (Q, k)."""
    if scores.ndim == 2:
        return np.stack([top_k_of_scores(np.ascontiguousarray(col), k) for col in scores.T])
    k = min(k, len(scores))
    rows = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return rows[np.argsort(-scores[rows], kind="stable")]


def exact_answers(matrix: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """Exact top-k rows of every query (Q, D) -> (Q, k): float32 matrix products a block at a time,
    independent of the engine's code (the reference its answers are checked against)."""
    step = 65_536
    scores = np.concatenate(
        [np.asarray(matrix[s : s + step]) @ queries.T for s in range(0, len(matrix), step)]
    )
    return top_k_of_scores(scores, k)


def neighbour_recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Nearest-neighbour recall (the ANN kind, not compression.evaluate's retrieval recall@K): mean
    over queries of |found ∩ truth| / |truth|; both (Q, k) row numbers."""
    if found.shape[0] != truth.shape[0]:
        raise ValueError(f"{found.shape[0]} result lists for {truth.shape[0]} queries")
    hits = [len(np.intersect1d(f, t)) / len(t) for f, t in zip(found, truth)]
    return float(np.mean(hits))
