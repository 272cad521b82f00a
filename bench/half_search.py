"""Half-size embeddings at scale: float16 / int8 top-10 against float32 and the machine's streaming limit.

    python -m bench.half_search [--rows 1000000] [--dim 128] [--quick] [--out bench/results/half_search.json]

On clustered synthetic unit vectors (bench.search's), each kernel answers the same queries: float32
as the engine's search does it (one BLAS product over the matrix, then the top 10), float16 and int8
(per-row scale) through ``app.engine.half_embeddings.top_k_half`` on every core, with each backend:
``native`` (the C kernel, where ``make setup`` built it: the desktop default), ``faiss`` (float16, where
installed: the default without the native kernel) and ``numpy`` (the phones'). Reported per kernel:
p50 ms, CPU ms per query (all threads: what a loaded machine inflates least), bytes read, the time to
stream those bytes at the bandwidth measured in the same run (``bench.search.read_bandwidth``), and
recall@10 against float32's exact answers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

QUERIES = 20
K = 10
FULL_ROWS = 1_000_000
QUICK_ROWS = 250_000  # 64 MB of float16: still twice the last-level cache


def measure(rows: int, dim: int, quick: bool = False) -> dict[str, Any]:
    from app.engine.half_embeddings import encode_rows, faiss_available, top_k_half
    from app.engine.native_half_topk import native_kernel
    from bench.common import time_calls
    from bench.search import (
        exact_answers,
        neighbour_recall,
        read_bandwidth,
        scan_limit_ms,
        synthetic_embeddings,
    )

    matrix, queries = synthetic_embeddings(rows, dim, QUERIES, "clustered")
    truth = exact_answers(matrix, queries, K)
    bandwidth = read_bandwidth(matrix.nbytes)
    gbps = max(bandwidth["gbps_1_thread"], bandwidth["gbps_all_threads"])

    def float32_top(q: np.ndarray) -> np.ndarray:
        scores = matrix @ q
        top = np.argpartition(-scores, K - 1)[:K]
        return top[np.argsort(-scores[top], kind="stable")]

    def kernel(rows: Any, backend: str) -> Any:
        return lambda q: top_k_half(rows, q, K, backend=backend)[0]

    half, int8 = encode_rows(matrix, "float16"), encode_rows(matrix, "int8")
    native = native_kernel()
    kernels = {"float32": (float32_top, matrix.nbytes)}
    if native is not None:
        kernels["float16 native"] = (kernel(half, "native"), half.nbytes)
    if faiss_available():
        kernels["float16"] = (kernel(half, "faiss"), half.nbytes)
    kernels["float16 numpy"] = (kernel(half, "numpy"), half.nbytes)
    if native is not None:
        kernels["int8 native"] = (kernel(int8, "native"), int8.nbytes)
    kernels["int8"] = (kernel(int8, "numpy"), int8.nbytes)
    out: dict[str, Any] = {"rows": rows, "dim": dim, "queries": QUERIES, "bandwidth": bandwidth, "kernels": {},
                           "native_kernel": None if native is None else f"{native.name} on {native.workers} cores"}
    for name, (fn, nbytes) in kernels.items():
        timing = time_calls(fn, list(queries), warmup=2, budget_s=1.0 if quick else 3.0,
                            min_repeats=5 if quick else 10, max_repeats=60)
        cpu = time.process_time()
        found = np.stack([fn(q) for q in queries])
        cpu_ms = (time.process_time() - cpu) * 1e3 / len(queries)  # every thread's CPU: what load does not inflate
        limit = scan_limit_ms(nbytes, gbps)
        out["kernels"][name] = {**timing, "cpu_ms_per_query": cpu_ms, "bytes": nbytes, "stream_limit_ms": limit,
                                "vs_stream_limit": timing["p50_ms"] / limit, "recall_at_10": neighbour_recall(found, truth)}
    base = out["kernels"]["float32"]["p50_ms"]
    for entry in out["kernels"].values():
        entry["vs_float32"] = entry["p50_ms"] / base
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.half_search", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=None, help=f"default {FULL_ROWS:,}")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows (unless --rows), shorter timing")
    p.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    from bench.common import OtherCpu, atomic_write_json, machine_facts

    with OtherCpu() as other:
        result = measure(rows, args.dim, args.quick)
    result["other_cpu"] = other.as_dict()
    if args.out:
        atomic_write_json(args.out, {"command": "python -m bench.half_search " + " ".join(argv or sys.argv[1:]),
                                     "machine": machine_facts(None, args.quick), "result": result})
    print(json.dumps({"other_cpu": result["other_cpu"], "gbps": result["bandwidth"]["gbps_all_threads"],
                      "native_kernel": result["native_kernel"], "load_average": os.getloadavg()}))
    for name, e in result["kernels"].items():
        print(f"{name:14s} p50 {e['p50_ms']:8.2f} ms  {e['bytes'] / 1e6:7.0f} MB  stream limit {e['stream_limit_ms']:6.2f} ms "
              f"({e['vs_stream_limit']:.2f}x)  vs float32 {e['vs_float32']:.2f}x  recall@10 {e['recall_at_10']:.3f}  "
              f"CPU {e['cpu_ms_per_query']:.1f} ms/query")
    return 0


if __name__ == "__main__":
    sys.exit(main())
