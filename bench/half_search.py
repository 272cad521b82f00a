"""Half-size embeddings at scale: float16 / int8 top-10 against float32 and the machine's streaming limit.

    python -m bench.half_search [--rows 1000000] [--dim 128] [--out bench/results/half_search.json]

On clustered synthetic unit vectors (bench.search's), each kernel answers the same queries: float32
as the engine's search does it (one BLAS product over the matrix, then the top 10), float16 and int8
(per-row scale) through ``app.engine.half_embeddings.top_k_half`` on every core, float16 with each backend
(``faiss`` where installed: the desktop default; ``numpy``: the fallback). Reported per kernel:
p50 ms, bytes read, the time to stream those bytes at the bandwidth measured in the same run
(``bench.search.read_bandwidth``), and recall@10 against float32's exact answers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

QUERIES = 20
K = 10


def measure(rows: int, dim: int) -> dict[str, Any]:
    from app.engine.half_embeddings import encode_rows, faiss_available, top_k_half
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

    kernels = {"float32": (float32_top, matrix.nbytes)}
    half = encode_rows(matrix, "float16")
    if faiss_available():
        kernels["float16"] = (lambda q: top_k_half(half, q, K, backend="faiss")[0], half.nbytes)
    kernels["float16 numpy"] = (lambda q: top_k_half(half, q, K, backend="numpy")[0], half.nbytes)
    int8 = encode_rows(matrix, "int8")
    kernels["int8"] = (lambda q: top_k_half(int8, q, K)[0], int8.nbytes)
    out: dict[str, Any] = {"rows": rows, "dim": dim, "queries": QUERIES, "bandwidth": bandwidth, "kernels": {}}
    for name, (fn, nbytes) in kernels.items():
        timing = time_calls(fn, list(queries), warmup=2, budget_s=3.0, min_repeats=10, max_repeats=60)
        found = np.stack([fn(q) for q in queries])
        limit = scan_limit_ms(nbytes, gbps)
        out["kernels"][name] = {**timing, "bytes": nbytes, "stream_limit_ms": limit,
                                "vs_stream_limit": timing["p50_ms"] / limit, "recall_at_10": neighbour_recall(found, truth)}
    base = out["kernels"]["float32"]["p50_ms"]
    for entry in out["kernels"].values():
        entry["vs_float32"] = entry["p50_ms"] / base
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.half_search", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    from bench.common import OtherCpu, atomic_write_json, machine_facts

    with OtherCpu() as other:
        result = measure(args.rows, args.dim)
    result["other_cpu"] = other.as_dict()
    if args.out:
        atomic_write_json(args.out, {"command": "python -m bench.half_search " + " ".join(argv or sys.argv[1:]),
                                     "machine": machine_facts(None, False), "result": result})
    print(json.dumps({"other_cpu": result["other_cpu"], "gbps": result["bandwidth"]["gbps_all_threads"]}))
    for name, e in result["kernels"].items():
        print(f"{name:13s} p50 {e['p50_ms']:8.2f} ms  {e['bytes'] / 1e6:7.0f} MB  stream limit {e['stream_limit_ms']:6.2f} ms "
              f"({e['vs_stream_limit']:.2f}x)  vs float32 {e['vs_float32']:.2f}x  recall@10 {e['recall_at_10']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
