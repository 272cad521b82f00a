"""What this machine allows a scan: memory read bandwidth, the time a scan of N bytes takes at that
bandwidth, and what the SQLite store adds per photo (bench.search reports them beside each method)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import fill_store
from bench.search_vectors import synthetic_embeddings

STORE_ROWS = 10_000  # rows of the real store built to measure SQLite's bytes per photo


def read_bandwidth(nbytes: int, repeats: int = 5, threads: int | None = None) -> dict[str, float]:
    """Memory read bandwidth in GB/s (1e9 B/s) over an ``nbytes`` float32 array, best of ``repeats``,
    on one thread and split over ``threads`` (default: all cores) threads.

    Each figure is the fastest of the read-only kernels, each thread running one BLAS thread: numpy's
    ``sum`` (pairwise, slower per byte than a plain stream) and BLAS sgemv of the array seen as
    (rows, 256) against a vector (a pure stream, the kernel closest to what an exact search does);
    the all-threads figure also tries sgemv split by the BLAS library's own threads.
    Measured with ``sum`` alone, the engine's search beat the "limit" (bench/results/search.json
    holds both), so ``sum`` alone understates what a stream can read.
    """
    import os

    from threadpoolctl import threadpool_limits

    threads = threads or os.cpu_count() or 1
    a = np.ones(nbytes // 4, dtype=np.float32)  # written once: every page is mapped before timing
    rows = a[: a.size // 256 * 256].reshape(-1, 256)
    vector = np.ones(256, dtype=np.float32)
    kernels: dict[str, Callable[[np.ndarray], Any]] = {
        "sum": lambda x: x.sum(),
        "sgemv": lambda x: x @ vector,
    }

    def best(nread: int, fn: Callable[..., Any], *args: Any) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(*args)
            times.append(time.perf_counter() - t0)
        return nread / min(times) / 1e9

    one: dict[str, float] = {}
    many: dict[str, float] = {}
    with threadpool_limits(1), ThreadPoolExecutor(threads) as pool:  # numpy and BLAS release the GIL
        for name, kernel in kernels.items():
            whole = a if name == "sum" else rows
            one[name] = best(whole.nbytes, kernel, whole)
            many[name] = best(whole.nbytes, lambda k, *parts: list(pool.map(k, parts)), kernel,
                              *np.array_split(whole, threads))
    with threadpool_limits(threads, user_api="blas"):  # the BLAS library's own threads, as the engine runs
        many["sgemv_blas_threads"] = best(rows.nbytes, kernels["sgemv"], rows)
    return {
        "bytes": int(a.nbytes),
        "repeats": repeats,
        "threads": threads,
        "gbps_1_thread": round(max(one.values()), 2),
        "gbps_all_threads": round(max(many.values()), 2),
        "by_kernel": {
            name: {"1_thread": round(one[name], 2) if name in one else None, "all_threads": round(many[name], 2)}
            for name in many
        },
    }


def scan_limit_ms(nbytes: int, gbps: float) -> float:
    """Time to read ``nbytes`` once at ``gbps`` GB/s, in ms: no exact search can be faster from DRAM."""
    return nbytes / (gbps * 1e9) * 1e3


def store_bytes_per_photo(work_dir: Path, dim: int, n: int = STORE_ROWS) -> dict[str, float]:
    """Build a real ``EmbeddingStore`` of ``n`` photos (phone-like paths) and measure its files per photo."""
    from app.engine.store import DB_NAME

    data = work_dir / f"store-{n}x{dim}"
    paths = [
        f"/storage/emulated/0/DCIM/Camera/IMG_2024{i // 1000 % 12 + 1:02d}{i % 28 + 1:02d}_{i:06d}.jpg"
        for i in range(n)
    ]
    fill_store(data, "bench-random", synthetic_embeddings(n, dim, 1, "uniform", seed=1)[0], paths)
    matrix = sum(p.stat().st_size for p in data.glob("embeddings-*"))
    sqlite = sum(p.stat().st_size for p in data.glob(DB_NAME + "*"))
    return {
        "photos": n,
        "dim": dim,
        "matrix_bytes_per_photo": matrix / n,
        "sqlite_bytes_per_photo": sqlite / n,
        "path_chars": len(paths[0]),
    }
