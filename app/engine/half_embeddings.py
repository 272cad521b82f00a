"""Half-size embedding rows: float16, or int8 with one float32 scale per row, and a top-K kernel over them.

Not yet wired into the store (issue 14 owns the matrix file format this session): the codec and the
kernel are here so that a store hook only has to keep ``codes`` (and ``scales``) instead of the
float32 matrix. numpy has no half or int8 matrix-vector product, so the kernel upcasts a block of
rows at a time into a float32 buffer that stays in cache and multiplies it with BLAS, one block
stream per thread; figures against float32 and the machine's streaming bandwidth come from
``python -m bench.half_search``.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

BLOCK_BYTES = 1 << 18  # float32 bytes of one upcast block: 256 KiB, inside L2 on phones and desktops


@dataclass(frozen=True)
class HalfRows:
    """Stored embeddings: ``codes`` (N, D) float16 or int8; ``scales`` (N,) float32 for int8, else None."""

    codes: np.ndarray
    scales: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + (self.scales.nbytes if self.scales is not None else 0)


def encode_rows(matrix: np.ndarray, kind: str) -> HalfRows:
    """(N, D) float32 unit rows -> ``kind`` "float16" or "int8" (symmetric, per-row scale max|x| / 127)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if kind == "float16":
        return HalfRows(matrix.astype(np.float16))
    if kind != "int8":
        raise ValueError(f"unknown embedding codec {kind!r}; expected 'float16' or 'int8'")
    scales = np.abs(matrix).max(axis=1) / np.float32(127)
    scales[scales == 0] = 1.0
    return HalfRows(np.rint(matrix / scales[:, None]).astype(np.int8), scales.astype(np.float32))


def decode_rows(rows: HalfRows) -> np.ndarray:
    """The float32 rows the codes stand for, (N, D)."""
    out = rows.codes.astype(np.float32)
    return out * rows.scales[:, None] if rows.scales is not None else out


def half_scores(rows: HalfRows, query: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Dot products of every stored row with ``query`` (D,) -> (N,) float32, ``workers`` threads
    (default: every core), each upcasting its blocks into its own float32 buffer."""
    codes = rows.codes
    n, dim = codes.shape
    q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
    if q.shape[0] != dim:
        raise ValueError(f"query of size {q.shape[0]} does not fit embeddings of size {dim}")
    out = np.empty(n, dtype=np.float32)
    step = max(64, BLOCK_BYTES // (4 * dim))
    workers = max(1, min(workers or os.cpu_count() or 1, -(-n // step)))
    spans = np.array_split(np.arange(0, n, step), workers)

    def stream(starts: np.ndarray) -> None:
        buf = np.empty((step, dim), dtype=np.float32)
        for s in starts:
            block = buf[: min(step, n - s)]
            block[...] = codes[s : s + step]  # the upcast: numpy releases the GIL for it and for the product
            out[s : s + step] = block @ q
            if rows.scales is not None:
                out[s : s + step] *= rows.scales[s : s + step]

    if workers == 1:
        stream(spans[0])
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(stream, spans))
    return out


def top_k_half(rows: HalfRows, query: np.ndarray, k: int, dead_rows: np.ndarray | None = None,
               workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Like ``search.top_k_rows`` over half-size rows: (rows (k',), scores (k',)) best first, ties by row."""
    scores = half_scores(rows, query, workers)
    if dead_rows is not None and len(dead_rows):
        scores[dead_rows] = -np.inf
    n = len(scores)
    k = min(int(k), n - (len(dead_rows) if dead_rows is not None else 0))
    if k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    top = top[np.lexsort((top, -scores[top]))]
    return top.astype(np.int64), scores[top]
