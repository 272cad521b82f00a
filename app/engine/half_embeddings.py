"""Half-size embedding rows: float16, or int8 with one float32 scale per row, and top-K kernels over them.

Three kernels, chosen by what is installed (figures: ``python -m bench.half_search``, 1M x 128;
bench/results/half_search_native*.json):
- ``native`` (desktops after ``make setup``, float16 and int8): app/engine/native/half_topk.c through
  :mod:`app.engine.native_half_topk`, decoding in registers while it streams the rows once, several
  shards per core; the int8 kernel, and the float16 one where FAISS is not installed.
- ``faiss`` (desktop, float16 only): FAISS's fp16 scalar quantizer decodes with F16C/NEON inside its
  inner-product loop and keeps the top K in its own heap, several shards per core; about half
  float32's time or less, and measured a little faster than the native kernel, so float16's default.
  It holds its own copy of the codes (built once per matrix, cached while the matrix lives).
- ``numpy`` (everywhere, phones included: they ship no native build): numpy has no half or int8
  matrix-vector product, so it upcasts a block of rows at a time into a cache-sized float32 buffer and multiplies it with BLAS, one
  block stream per thread. numpy's float16 -> float32 cast is slow (~0.5 GB/s), so this is the
  correct fallback, not a fast one.
"""
from __future__ import annotations

import logging
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from app.engine.native_half_topk import SHARDS_PER_CORE, dead_bitmap, native_kernel

logger = logging.getLogger(__name__)

SMALL_SHARD_BYTES = 1 << 24  # float16 codes below 16 MiB (64k x 128) are searched by one FAISS shard
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


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401  (desktop only: no wheel for the phones)
    except ImportError:
        return False
    return True


class FaissHalfIndex:
    """float16 codes copied into FAISS fp16 scalar-quantizer shards searched side by side, one thread each."""

    def __init__(self, codes: np.ndarray, workers: int | None = None):
        import faiss

        if codes.dtype != np.float16 or codes.ndim != 2:
            raise ValueError(f"the FAISS kernel takes (N, D) float16 codes, not {codes.dtype} {codes.shape}")
        self._faiss = faiss
        n, dim = codes.shape
        self.n, self.dim = n, dim
        # A large matrix: SHARDS_PER_CORE shards, each on its own thread, so that a thread preempted on a
        # shared machine holds back only its slice of the query (1M x 128 under load, p50: 2 shards 40-56 ms,
        # 4: 35-37, 8: 20-23 on 2 cores). A small one (a phone-sized gallery) stays on the calling thread:
        # a pool worker asleep between queries waits a scheduler slice to wake on a busy core.
        cores = workers or os.cpu_count() or 1
        shards = 1 if codes.nbytes < SMALL_SHARD_BYTES else max(1, min(SHARDS_PER_CORE * cores, n // 4096 or 1))
        self.bounds = np.linspace(0, n, shards + 1).astype(np.int64)
        self.shards = []
        for lo, hi in zip(self.bounds[:-1], self.bounds[1:]):
            index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
            block = np.ascontiguousarray(codes[lo:hi]).view(np.uint8).reshape(-1)
            faiss.copy_array_to_vector(block, index.codes)
            index.ntotal = int(hi - lo)
            self.shards.append(index)
        self._pool = ThreadPoolExecutor(len(self.shards)) if len(self.shards) > 1 else None

    def top_k(self, query: np.ndarray, k: int, dead_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != self.dim:
            raise ValueError(f"query of size {q.shape[1]} does not fit embeddings of size {self.dim}")
        dead = np.asarray(dead_rows if dead_rows is not None else (), dtype=np.int64)

        def search(i: int) -> tuple[np.ndarray, np.ndarray]:
            lo, hi = int(self.bounds[i]), int(self.bounds[i + 1])
            index, params, keep = self.shards[i], None, None
            local = dead[(dead >= lo) & (dead < hi)] - lo
            if len(local):  # dead rows never enter the heap: a bitmap of them, negated
                keep = dead_bitmap(local, hi - lo)
                bitmap = self._faiss.IDSelectorBitmap(hi - lo, self._faiss.swig_ptr(keep))
                params = self._faiss.SearchParameters()
                params.sel = self._faiss.IDSelectorNot(bitmap)
            scores, ids = index.search(q, min(k, hi - lo), params=params)
            ok = ids[0] >= 0
            return ids[0][ok] + lo, scores[0][ok]

        parts = list(self._pool.map(search, range(len(self.shards)))) if self._pool else [search(0)]
        rows = np.concatenate([p[0] for p in parts]).astype(np.int64)
        scores = np.concatenate([p[1] for p in parts]).astype(np.float32)
        finite = np.isfinite(scores)
        rows, scores = rows[finite], scores[finite]
        order = np.lexsort((rows, -scores))[:k]
        return rows[order], scores[order]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)


_cache_lock = threading.Lock()
_cache: tuple[weakref.ref, int, FaissHalfIndex] | None = None  # (codes, workers, index) of the last search


def _faiss_index_for(codes: np.ndarray, workers: int | None) -> FaissHalfIndex:
    """The FAISS shards for ``codes``, rebuilt only when another array (or worker count) is searched."""
    global _cache
    with _cache_lock:
        if _cache is not None and _cache[0]() is codes and _cache[1] == workers:
            return _cache[2]
        if _cache is not None:
            _cache[2].close()
            _cache = None
        index = FaissHalfIndex(codes, workers)
        _cache = (weakref.ref(codes), workers, index)
        return index


def default_backend(rows: HalfRows) -> str:
    """The kernel that searches ``rows``. float16: "faiss" where FAISS is installed (measured faster than the
    native kernel at 1M x 128 both idle, 10.8 vs 11.4 ms, and under load, 13.5 vs 23.2 ms:
    bench/results/half_search_native*.json), else "native" where its library loads, else "numpy".
    int8: "native", else "numpy"."""
    if rows.scales is None and rows.codes.dtype == np.float16 and faiss_available():
        return "faiss"
    return "native" if native_kernel() is not None else "numpy"


def search_kernel(dtype: str) -> str:
    """What searches an index of ``dtype`` rows here, as `python -m app.engine status` reports it:
    "numpy BLAS" for float32; for float16 / int8 the native kernel's name, "faiss" or "numpy"."""
    if dtype == "float32":
        return "numpy BLAS"
    backend = default_backend(HalfRows(np.empty((0, 1), dtype), np.empty(0, np.float32) if dtype == "int8" else None))
    kernel = native_kernel() if backend == "native" else None
    return kernel.name if kernel is not None else backend


def top_k_half(rows: HalfRows, query: np.ndarray, k: int, dead_rows: np.ndarray | None = None,
               workers: int | None = None, backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Like ``search.top_k_rows`` over half-size rows: (rows (k',), scores (k',)) best first, ties by row.

    ``backend``: "native", "faiss", "numpy" or None (:func:`default_backend`). Non-finite scores never rank.
    """
    backend = backend or default_backend(rows)
    if backend == "native":
        kernel = native_kernel()
        if kernel is None:
            raise ValueError("the native half-size kernel is not built: run `make setup`")
        q = np.asarray(query, dtype=np.float32).reshape(1, -1)
        top, scores = kernel.top_k(rows.codes, rows.scales, q, k, dead_rows, workers)
        found = top[0] >= 0  # fewer finite scores than k
        return top[0][found], scores[0][found]
    if backend == "faiss":
        n_dead = len(dead_rows) if dead_rows is not None else 0
        k = min(int(k), rows.codes.shape[0] - n_dead)
        if k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        return _faiss_index_for(rows.codes, workers).top_k(query, k, dead_rows)
    if backend != "numpy":
        raise ValueError(f"unknown half-size search backend {backend!r}; expected 'native', 'faiss' or 'numpy'")
    scores = half_scores(rows, query, workers)
    scores[~np.isfinite(scores)] = -np.inf
    if dead_rows is not None and len(dead_rows):
        scores[dead_rows] = -np.inf
    n = len(scores)
    k = min(int(k), n - (len(dead_rows) if dead_rows is not None else 0))
    if k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    top = top[np.lexsort((top, -scores[top]))]
    return top.astype(np.int64), scores[top]
