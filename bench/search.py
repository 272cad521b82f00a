"""Search section: top-10 query latency over 1k-1M stored embeddings for each way to store and scan them.

Methods, all timed per query on the same vectors in this process:

* numpy fp32 - the engine itself: ``app.engine.search.top_k_rows`` over a memory-mapped float32
  matrix laid out as the store writes it (with the BLAS library's default threads, and with one);
* numpy fp16 and int8 (per-row scale) stored rows, scanned in cache-sized blocks upcast to float32;
* FAISS ``IndexFlatIP`` (1 thread and the library default), ``IndexScalarQuantizer`` fp16 and 8-bit;
* FAISS ``IndexIVFFlat`` (approximate; nlist = sqrt(N), nprobe 8 and 32) from 100k rows up.

Next to them: this machine's memory read bandwidth (numpy sum over a large array, best of several)
and the time a scan of each size and dtype would take at that bandwidth, and what the SQLite store
adds per photo (a real ``EmbeddingStore`` of 10k rows). Latency is measured on clustered unit
vectors (photo-like: groups of ~50 similar photos around a shared offset, as CLIP embeddings sit in a
cone); recall@10 against the engine's exact answers on those and on uniform random unit vectors,
the hard case for quantised and approximate search (no structure to exploit, small score gaps).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    fill_store,
    fmt_ms,
    last_level_cache_bytes,
    md_table,
    new_figure,
    save_figure,
    time_calls,
)

logger = logging.getLogger(__name__)

K = 10
CLIP_DIM = 512  # CLIP ViT-B/32's embedding size, the paper's teacher
SIZES = {True: (1_000, 10_000, 100_000), False: (1_000, 10_000, 100_000, 1_000_000)}
APPROX_MIN_ROWS = 100_000
NPROBES = (8, 32)
CLUSTER_SIZE = 50  # photos per cluster in the clustered distribution
STORE_ROWS = 10_000  # rows of the real store built to measure SQLite's bytes per photo

Search = Callable[[np.ndarray], np.ndarray]  # (D,) query -> (k,) row numbers, best first


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------


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
        out[s : s + step] = block @ queries  # (np.dot with out= skips BLAS: 10x slower)
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


# ------------------------------------------------------------------------------------------------
# machine limits
# ------------------------------------------------------------------------------------------------


def read_bandwidth(nbytes: int, repeats: int = 5, threads: int | None = None) -> dict[str, float]:
    """Memory read bandwidth in GB/s (1e9 B/s) over an ``nbytes`` float32 array, best of ``repeats``,
    on one thread and split over ``threads`` (default: all cores) threads.

    Each figure is the fastest of the read-only kernels, each thread running one BLAS thread: numpy's
    ``sum`` (pairwise, slower per byte than a plain stream) and BLAS sgemv of the array seen as
    (rows, 256) against a vector (a pure stream, the kernel closest to what an exact search does);
    the all-threads figure also tries sgemv split by the BLAS library's own threads.
    Measured with ``sum`` alone, the engine's search beat the "limit" by 1.3x at 1M x 512.
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


# ------------------------------------------------------------------------------------------------
# methods
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# the section
# ------------------------------------------------------------------------------------------------


def _embed_dim_of(model: Path | None) -> int | None:
    if model is None or not Path(model).is_dir():
        return None
    from bench.common import read_model_info

    return read_model_info(model).embed_dim


def run(quick: bool, work_dir: Path, model: Path | None = None) -> dict[str, Any]:
    """Latency, recall and memory of every method at every size, for the model's dimension and 512."""
    import faiss

    model_dim = _embed_dim_of(model)
    dims = sorted({model_dim or CLIP_DIM, CLIP_DIM})
    sizes = SIZES[quick]
    n_queries = 30 if quick else 50
    budget = 0.3 if quick else 1.0
    default_threads = faiss.omp_get_max_threads()
    logger.info("search: memory bandwidth")
    bandwidth = read_bandwidth((256 if quick else 1024) * 2**20, repeats=3 if quick else 7)
    out: dict[str, Any] = {
        "k": K,
        "dims": dims,
        "model_dim": model_dim,
        "sizes": list(sizes),
        "queries": n_queries,
        "bandwidth": bandwidth,
        "default_threads": default_threads,
        "nprobes": list(NPROBES),
        "rows": [],
        "approximate": [],
        "store": store_bytes_per_photo(work_dir, dims[0]),
        "last_level_cache_bytes": last_level_cache_bytes(),
    }
    for dim in dims:
        for n in sizes:
            rows, approx = _measure_size(n, dim, n_queries, budget, default_threads, work_dir)
            out["rows"] += rows
            if approx is not None:
                out["approximate"].append(approx)
    return out


def _measure_size(
    n: int, dim: int, n_queries: int, budget: float, default_threads: int, work_dir: Path
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Every method at one size: (rows of the latency/recall table, the IVF entry or None below
    APPROX_MIN_ROWS)."""
    data, queries = synthetic_embeddings(n, dim, n_queries, "clustered")
    path = work_dir / f"embeddings-{n}x{dim}.f32"  # the store's layout: rows of little-endian float32
    data.astype("<f4").tofile(path)
    del data
    matrix = np.memmap(path, dtype="<f4", mode="r", shape=(n, dim))
    hard = synthetic_embeddings(n, dim, n_queries, "uniform", seed=1)
    sets = {
        "clustered": (matrix, queries, exact_answers(matrix, queries)),
        "uniform": (*hard, exact_answers(*hard)),
    }
    rows = []
    for m in methods(default_threads):
        logger.info("search: %d x %d, %s", n, dim, m.name)
        row: dict[str, Any] = {
            "key": m.key,
            "method": m.name,
            "n": n,
            "dim": dim,
            "bytes_per_photo": m.bytes_per_row(dim),
            "scanned_bytes": n * m.bytes_per_row(dim),
            "faiss_threads": m.faiss_threads,
            "blas_threads": m.blas_threads,
        }
        with _Threads(m.faiss_threads, m.blas_threads):
            for kind, (stored, qs, truth) in sets.items():
                t0 = time.perf_counter()
                prepared = m.prepare(stored)
                if kind == "clustered":  # latency on the photo-like vectors
                    row["build_s"] = time.perf_counter() - t0
                    row.update(time_calls(prepared.search, qs, budget_s=budget, max_repeats=200))
                row[f"recall_{kind}"] = neighbour_recall(prepared.batch(qs), truth)
                del prepared  # free each method's copy before the next one builds its own
        rows.append(row)
    approx = _measure_ivf(sets, budget) if n >= APPROX_MIN_ROWS else None
    del matrix, sets
    path.unlink()
    return rows, approx


def _measure_ivf(sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], budget: float) -> dict[str, Any]:
    n, dim = sets["clustered"][0].shape
    out: dict[str, Any] = {"n": n, "dim": dim, "nlist": ivf_nlist(n), "by_nprobe": {}}
    for kind, (stored, queries, truth) in sets.items():
        logger.info("search: %d x %d, FAISS IVF-Flat on %s vectors", n, dim, kind)
        with _Threads(1, None):
            index, out[f"build_s_{kind}"] = build_ivf(stored)
            for nprobe in NPROBES:
                index.nprobe = nprobe
                prepared = _faiss(index)
                entry = out["by_nprobe"].setdefault(str(nprobe), {})
                if kind == "clustered":
                    entry.update(time_calls(prepared.search, queries, budget_s=budget, max_repeats=200))
                entry[f"recall_{kind}"] = neighbour_recall(prepared.batch(queries), truth)
    return out


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------


def _size_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


def _rows_for(result: dict[str, Any], dim: int) -> dict[str, dict[int, dict[str, Any]]]:
    table: dict[str, dict[int, dict[str, Any]]] = {}
    for r in result["rows"]:
        if r["dim"] == dim:
            table.setdefault(r["key"], {})[r["n"]] = r
    return table


def _label(by_n: dict[int, dict[str, Any]], field: str = "method") -> Any:
    return next(iter(by_n.values()))[field]


def to_markdown(result: dict[str, Any]) -> str:
    sizes, bw = result["sizes"], result["bandwidth"]
    gbps = max(bw["gbps_1_thread"], bw["gbps_all_threads"])
    parts = []
    for dim in result["dims"]:
        table = _rows_for(result, dim)
        head = ["method"] + [f"{_size_label(n)}" for n in sizes] + ["bytes/photo"]
        rows = [
            [_label(by_n)]
            + [fmt_ms(by_n[n]["p50_ms"]) if n in by_n else "-" for n in sizes]
            + [f"{_label(by_n, 'bytes_per_photo'):.0f}"]
            for by_n in table.values()
        ]
        for label, per_row in (("fp32", 4 * dim), ("int8", dim + 4)):
            rows.append(
                [f"*read limit, {label} rows at {gbps:.1f} GB/s*"]
                + [fmt_ms(scan_limit_ms(n * per_row, gbps)) for n in sizes]
                + [""]
            )
        ivf = [a for a in result["approximate"] if a["dim"] == dim]
        for nprobe in result["nprobes"]:
            by_n = {a["n"]: a["by_nprobe"][str(nprobe)] for a in ivf}
            rows.append(
                [f"FAISS IVF-Flat, nprobe {nprobe}, 1 thread (approximate)"]
                + [fmt_ms(by_n[n]["p50_ms"]) if n in by_n else "-" for n in sizes]
                + [f"{4 * dim + 8}"]
            )
        note = " (the model's)" if dim == result.get("model_dim") else " (CLIP ViT-B/32's)"
        parts.append(
            f"### Search latency, {dim}-d embeddings{note}: p50 ms per top-{result['k']} query over N "
            f"stored photos\n\n" + md_table(head, rows)
        )
        rec_rows = [
            [_label(by_n)]
            + [
                f"{by_n[n]['recall_clustered']:.3f} / {by_n[n]['recall_uniform']:.3f}" if n in by_n else "-"
                for n in sizes
            ]
            for by_n in table.values()
        ]
        for nprobe in result["nprobes"]:
            by_n = {a["n"]: a["by_nprobe"][str(nprobe)] for a in ivf}
            rec_rows.append(
                [f"FAISS IVF-Flat, nprobe {nprobe}"]
                + [
                    f"{by_n[n]['recall_clustered']:.3f} / {by_n[n]['recall_uniform']:.3f}"
                    if n in by_n
                    else "-"
                    for n in sizes
                ]
            )
        parts.append(
            f"### Recall@{result['k']} against the engine's exact fp32 answers, {dim}-d "
            f"(clustered / uniform vectors)\n\n"
            + md_table(["method"] + [_size_label(n) for n in sizes], rec_rows)
        )
    if result["approximate"]:
        parts.append(
            "### FAISS IVF-Flat build time (k-means training + adding every row, 1 thread)\n\n"
            + md_table(
                ["N x D", "lists", "build s (clustered)", "build s (uniform)"],
                [
                    [
                        f"{_size_label(a['n'])} x {a['dim']}",
                        a["nlist"],
                        f"{a['build_s_clustered']:.2f}",
                        f"{a['build_s_uniform']:.2f}",
                    ]
                    for a in result["approximate"]
                ],
            )
        )
    llc = result.get("last_level_cache_bytes")
    if llc:
        parts.append(
            f"Read limits assume the rows stream from RAM; sizes whose rows fit in the {llc / 2**20:.0f} MiB "
            "last-level cache can beat them."
        )
    parts.append(_memory_markdown(result))
    parts.append(_findings(result))
    return "\n\n".join(parts)


def _memory_markdown(result: dict[str, Any]) -> str:
    st = result["store"]
    sql = st["sqlite_bytes_per_photo"]
    rows = []
    for dim in result["dims"]:
        for label, emb in (
            ("fp32 (the engine's store)", 4 * dim),
            ("fp16", 2 * dim),
            ("int8 + fp32 scale", dim + 4),
        ):
            per = emb + sql
            rows.append(
                [
                    f"{dim}-d {label}",
                    f"{emb:.0f}",
                    f"{sql:.0f}",
                    f"{per:.0f}",
                    f"{per * 1e5 / 1e6:.1f}",
                    f"{per * 1e6 / 1e6:.0f}",
                ]
            )
    return (
        f"### Memory per stored photo (SQLite row measured on a real store of {st['photos']:,} photos, "
        f"{st['path_chars']}-character paths)\n\n"
        + md_table(
            ["embedding", "embedding B", "SQLite B", "total B", "100k photos MB", "1M photos MB"], rows
        )
    )


def _bound_word(ms: float, limit_ms: float) -> str:
    """How a search time compares with the time to stream its rows at the measured bandwidth."""
    if ms < 0.9 * limit_ms:
        return "faster than the bandwidth measured, which therefore underestimates this machine's"
    if ms <= 1.25 * limit_ms:
        return "memory-bound, at the machine's read bandwidth within measurement noise"
    return "slower than streaming the rows: compute, not memory, sets its speed"


def _findings(result: dict[str, Any]) -> str:
    bw = result["bandwidth"]
    gbps = max(bw["gbps_1_thread"], bw["gbps_all_threads"])
    n, dim = max(result["sizes"]), max(result["dims"])
    table = _rows_for(result, dim)
    engine, engine_1t, fp16, int8, flat1, flatn, sq16, sq8 = (
        table[key][n]
        for key in (
            "numpy_fp32",
            "numpy_fp32_1t",
            "numpy_fp16",
            "numpy_int8",
            "faiss_flat_1t",
            "faiss_flat_default",
            "faiss_sq_fp16",
            "faiss_sq_8bit",
        )
    )
    lines = [
        (
            f"- Read bandwidth {bw['gbps_1_thread']:.1f} GB/s on one thread, {bw['gbps_all_threads']:.1f} "
            f"GB/s on {bw['threads']} (the fastest read-only kernel): streaming {n:,} x {dim} fp32 rows "
            f"({engine['scanned_bytes'] / 1e6:.0f} MB) at that rate takes "
            f"{scan_limit_ms(engine['scanned_bytes'], gbps):.1f} ms. The engine's numpy search takes "
            f"{engine['p50_ms']:.1f} ms, reading {engine['scanned_bytes'] / engine['p50_ms'] / 1e6:.1f} GB/s "
            f"({scan_limit_ms(engine['scanned_bytes'], gbps) / engine['p50_ms']:.2f}x the measured bandwidth: "
            f"{_bound_word(engine['p50_ms'], scan_limit_ms(engine['scanned_bytes'], gbps))}), "
            f"{engine_1t['p50_ms']:.1f} ms on one BLAS thread."
        ),
        (
            f"- FAISS IndexFlatIP at {n:,} x {dim}: {flat1['p50_ms']:.1f} ms on 1 thread "
            f"({engine['p50_ms'] / flat1['p50_ms']:.2f}x the engine's speed), {flatn['p50_ms']:.1f} ms on "
            f"{flatn['faiss_threads']} threads; it keeps its own copy of every embedding."
        ),
        (
            f"- Quantised rows: fp16 halves and int8 quarters the bytes per photo. numpy has no fast half or "
            f"int8 product, so its blocked upcast takes {fp16['p50_ms']:.1f} / {int8['p50_ms']:.1f} ms; "
            "FAISS's "
            f"SIMD scalar quantizer {sq16['p50_ms']:.1f} / {sq8['p50_ms']:.1f} ms. Recall@10 vs exact: fp16 "
            f"{fp16['recall_clustered']:.3f}, int8 per-row {int8['recall_clustered']:.3f} (uniform vectors "
            f"{int8['recall_uniform']:.3f}), FAISS 8-bit {sq8['recall_clustered']:.3f}."
        ),
    ]
    approx = [a for a in result["approximate"] if a["n"] == n and a["dim"] == dim]
    if approx:
        a = approx[0]
        lo, hi = (a["by_nprobe"][str(p)] for p in result["nprobes"][:2])
        lines.append(
            f"- Approximate IVF-Flat ({a['nlist']} lists) at {n:,} x {dim}: nprobe {result['nprobes'][0]} "
            f"{lo['p50_ms']:.2f} ms at recall {lo['recall_clustered']:.3f}, nprobe {result['nprobes'][1]} "
            f"{hi['p50_ms']:.2f} ms at recall {hi['recall_clustered']:.3f} on clustered vectors; on uniform "
            f"random vectors (the hard case) recall falls to {lo['recall_uniform']:.3f} / "
            f"{hi['recall_uniform']:.3f}. Building it took {a['build_s_clustered']:.1f} s."
        )
    st = result["store"]
    lines.append(
        f"- The SQLite row (path, size, mtime, fingerprint, state, indexes) costs "
        f"{st['sqlite_bytes_per_photo']:.0f} bytes per photo, next to {4 * dim} bytes of a {dim}-d "
        f"fp32 embedding."
    )
    return "Findings (this run):\n\n" + "\n".join(lines)


def plot(result: dict[str, Any], out_dir: Path) -> list[Path]:
    dims = result["dims"]
    fig, axes = new_figure(len(dims), 6.0, 4.5)
    axes = np.atleast_1d(axes)
    bw = result["bandwidth"]
    gbps = max(bw["gbps_1_thread"], bw["gbps_all_threads"])
    for ax, dim in zip(axes, dims):
        for by_n in _rows_for(result, dim).values():
            ns = sorted(by_n)
            ax.plot(
                ns,
                [by_n[n]["p50_ms"] for n in ns],
                marker="o",
                label=_label(by_n).split(" (")[0],
                linewidth=1.2,
            )
        ivf = sorted((a for a in result["approximate"] if a["dim"] == dim), key=lambda a: a["n"])
        for nprobe in result["nprobes"][-1:]:
            if ivf:
                ax.plot(
                    [a["n"] for a in ivf],
                    [a["by_nprobe"][str(nprobe)]["p50_ms"] for a in ivf],
                    marker="s",
                    linestyle=":",
                    label=f"FAISS IVF-Flat nprobe {nprobe} (approx.)",
                )
        ns = np.asarray(result["sizes"], dtype=float)
        ax.plot(ns, [scan_limit_ms(n * 4 * dim, gbps) for n in ns], "k--", label="read limit, fp32 rows")
        ax.plot(ns, [scan_limit_ms(n * (dim + 4), gbps) for n in ns], "k:", label="read limit, int8 rows")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("stored photos")
        ax.set_ylabel(f"p50 latency of a top-{result['k']} query (ms)")
        ax.set_title(f"{dim}-d embeddings")
        ax.grid(True, which="both", alpha=0.3)
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return [save_figure(fig, out_dir / "search_latency.png")]
