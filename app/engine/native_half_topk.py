"""The native top-K kernel over half-size rows (app/engine/native/half_topk.c), loaded with ctypes.

One pass over the codes decodes each row in registers (F16C / int8 widening), scores it against every
query and keeps the top K in a small heap: memory-bound where FAISS's fp16 scalar quantizer and numpy's
upcast are compute-bound (figures: ``python -m bench.half_search``, bench/results/half_search_native.json).
The library is built by ``make setup`` on desktops; where it is missing (no C compiler, the phones, which
never ship a desktop build) :func:`native_kernel` is None and the engine keeps its other kernels.
ctypes releases the GIL during a call, so shards of one matrix run side by side on a thread pool.
"""
from __future__ import annotations

import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import ctypes

logger = logging.getLogger(__name__)

LIBRARY = Path(__file__).resolve().parent / "native" / "libhalf_topk.so"  # `make setup` writes it; git ignores it
SMALL_SHARD_BYTES = 1 << 22  # codes below 4 MiB (16k x 128 float16) are scanned on the calling thread
# Shards (and pool threads) per core for a larger matrix, FAISS's kernel's too: on a shared machine a
# preempted thread holds back only its slice (1M x 128 float16 at ~75% other load, p50 / best of 40:
# 2 threads 53-59 / 39-44 ms, 8 threads 51-52 / 14-22 ms; the same CPU time per query)
SHARDS_PER_CORE = 4

# C signatures, "p" a pointer and "i" an int64 (ctypes is imported only where a library is found: the
# phones, which never have one, need not carry it)
_SIGNATURES = {"half_topk_f16": "piiiipiippp", "half_topk_i8": "ppiiiipiippp"}


def dead_bitmap(dead_rows: np.ndarray, n: int) -> np.ndarray:
    """Rows ``dead_rows`` (numbers below ``n``) as a bitmap: bit r % 8 of byte r // 8 (FAISS's and the kernel's)."""
    bitmap = np.zeros((n + 7) // 8, dtype=np.uint8)
    dead = np.asarray(dead_rows, dtype=np.int64)
    np.bitwise_or.at(bitmap, dead >> 3, (1 << (dead & 7)).astype(np.uint8))
    return bitmap


class NativeHalfTopK:
    """The loaded library and one persistent pool with a thread per shard (SHARDS_PER_CORE per core; ``workers``
    cores, default every core)."""

    def __init__(self, library: ctypes.CDLL, workers: int | None = None):
        import ctypes

        self._lib = library
        for name, signature in _SIGNATURES.items():
            getattr(library, name).argtypes = [ctypes.c_void_p if c == "p" else ctypes.c_int64 for c in signature]
            getattr(library, name).restype = ctypes.c_int
        self.simd = bool(library.half_topk_simd())
        self.workers = max(1, workers or os.cpu_count() or 1)
        threads = SHARDS_PER_CORE * self.workers
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="half-topk") if self.workers > 1 else None

    @property
    def name(self) -> str:
        """What runs: "native avx2+f16c" or "native portable"."""
        return "native avx2+f16c" if self.simd else "native portable"

    def use_portable(self, on: bool) -> None:
        """Run the portable loop (what aarch64 builds run) even where AVX2 + F16C are there: for tests."""
        self._lib.half_topk_use_portable(int(on))
        self.simd = bool(self._lib.half_topk_simd())

    def top_k(self, codes: np.ndarray, scales: np.ndarray | None, queries: np.ndarray, k: int,
              dead_rows: np.ndarray | None = None, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best rows of ``codes`` (N, D) float16, or int8 scaled by ``scales`` (N,), for each of
        ``queries`` (Q, D): (rows (Q, k'), scores (Q, k') float32) best first, ties by row, k' = min(k, live
        rows). A query with fewer finite scores than k' pads its tail with row -1 and score -inf. ``workers``
        caps the cores a large matrix is searched on (SHARDS_PER_CORE threads each); default every core."""
        if codes.ndim != 2 or codes.dtype not in (np.float16, np.int8) or (codes.dtype == np.int8) != (scales is not None):
            raise ValueError(f"the native kernel takes (N, D) float16, or int8 with scales, not {codes.dtype} {codes.shape}")
        n, dim = codes.shape
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != dim:
            raise ValueError(f"queries of shape {q.shape} do not fit embeddings of size {dim}")
        if codes.strides[1] != codes.itemsize or codes.strides[0] % codes.itemsize or codes.strides[0] < 0:
            codes = np.ascontiguousarray(codes)  # a row-strided view is read in place; anything else is copied
        stride = codes.strides[0] // codes.itemsize if n > 1 else dim
        if scales is not None:
            scales = np.ascontiguousarray(scales, dtype=np.float32)
            if scales.shape != (n,):
                raise ValueError(f"{scales.shape} scales for {n} int8 rows")
        dead = np.asarray(dead_rows if dead_rows is not None else (), dtype=np.int64)
        k = min(int(k), n - len(dead))
        if k <= 0 or len(q) == 0:
            return np.empty((len(q), 0), dtype=np.int64), np.empty((len(q), 0), dtype=np.float32)
        bitmap = dead_bitmap(dead, n) if len(dead) else None
        cores = min(workers or self.workers, self.workers)
        shards = 1 if self._pool is None or cores == 1 or codes.nbytes < SMALL_SHARD_BYTES else SHARDS_PER_CORE * cores
        bounds = np.linspace(0, n, shards + 1).astype(np.int64)

        def scan(i: int) -> tuple[np.ndarray, np.ndarray]:
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            kk = max(1, min(k, hi - lo))
            scores = np.empty((len(q), kk), dtype=np.float32)
            rows = np.empty((len(q), kk), dtype=np.int64)
            common = (stride, lo, hi, dim, q.ctypes.data, len(q), kk,
                      bitmap.ctypes.data if bitmap is not None else None, scores.ctypes.data, rows.ctypes.data)
            if scales is None:
                rc = self._lib.half_topk_f16(codes.ctypes.data, *common)
            else:
                rc = self._lib.half_topk_i8(codes.ctypes.data, scales.ctypes.data, *common)
            if rc != 0:
                raise ValueError(f"half_topk rejected rows [{lo}, {hi}) of {codes.shape} with k={kk}")
            return rows, scores

        parts = list(self._pool.map(scan, range(shards))) if shards > 1 else [scan(0)]
        rows = np.concatenate([p[0] for p in parts], axis=1)
        scores = np.concatenate([p[1] for p in parts], axis=1)
        order = np.lexsort((rows, -scores), axis=1)[:, :k] if shards > 1 else np.arange(k)[None, :]
        return np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1)


@functools.cache
def native_kernel(library: Path = LIBRARY) -> NativeHalfTopK | None:
    """The kernel over the built library, or None where it is missing or does not load (then logged once)."""
    if not library.is_file():
        logger.debug("no %s (built by `make setup`): half-size search uses FAISS or numpy", library)
        return None
    import ctypes

    try:
        kernel = NativeHalfTopK(ctypes.CDLL(str(library)))
    except (OSError, AttributeError) as err:  # a library for another machine, or an older build
        logger.warning("cannot load %s (%s): half-size search uses FAISS or numpy", library, err)
        return None
    logger.info("half-size search kernel: %s on %d cores", kernel.name, kernel.workers)
    return kernel
