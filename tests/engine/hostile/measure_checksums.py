"""What the per-row checksums cost: indexing (commit_batch) and opening the index, with and without them.

    python tests/engine/hostile/measure_checksums.py [--rows 10000,100000,1000000] [--dims 128,512]

Runs both variants side by side in one process, on the same data, and prints one table. "without"
replaces the checksum function by one that returns zeros (what the store did before): the rest of the
store's work is identical. Not a test; figures depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from app.engine import store as store_module
from app.engine.scanner import ScannedFile, ScanPlan
from app.engine.store import EmbeddingStore, IndexedPhoto

BATCH = 256


def _no_checksums(rows: np.ndarray) -> np.ndarray:
    return np.zeros(len(rows), dtype=np.int64)


def _no_verification(self: EmbeddingStore) -> None:
    return None


def _fill(data_dir: Path, n: int, dim: int) -> float:
    """Seconds spent in commit_batch to index n photos of dimension dim, in batches of BATCH."""
    rng = np.random.default_rng(0)
    spent = 0.0
    with EmbeddingStore(data_dir) as store:
        store.bind_model("measure", dim)
        store.apply_plan(ScanPlan(new=[ScannedFile(f"/g/{i}.jpg", 100, i) for i in range(n)]))
        last = 0
        while chunk := store.pending_after(last, BATCH):
            last = chunk[-1][0]
            emb = rng.normal(size=(len(chunk), dim)).astype(np.float32)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            batch = [IndexedPhoto(pid, e, size, mtime, b"f" * 16) for (pid, _, size, mtime), e in zip(chunk, emb)]
            t = time.perf_counter()
            store.commit_batch(batch)
            spent += time.perf_counter() - t
    return spent


def _open(data_dir: Path, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        EmbeddingStore(data_dir).close()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="10000,100000,1000000")
    p.add_argument("--dims", default="128,512")
    p.add_argument("--repeats", type=int, default=3, help="runs of each variant up to 100k rows (best kept)")
    args = p.parse_args(argv)
    real, real_verify = store_module.row_checksums, EmbeddingStore._verify_rows
    print(f"{'rows':>9} {'dim':>4} | {'index s: with':>13} {'without':>8} {'overhead':>8} | "
          f"{'open ms: with':>13} {'without':>8} {'overhead':>9}")
    for dim in map(int, args.dims.split(",")):
        for n in map(int, args.rows.split(",")):
            if n * dim * 4 > 2 * 1024**3:
                continue
            res: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
            for _ in range(args.repeats if n <= 100_000 else 1):  # alternated, best of each: load noise
                for variant, fn, verify in (("with", real, real_verify),
                                            ("without", _no_checksums, _no_verification)):
                    store_module.row_checksums, EmbeddingStore._verify_rows = fn, verify
                    try:
                        with tempfile.TemporaryDirectory() as tmp:
                            res[variant].append((_fill(Path(tmp), n, dim), _open(Path(tmp))))
                    finally:
                        store_module.row_checksums, EmbeddingStore._verify_rows = real, real_verify
            (iw, ow), (io_, oo) = ((min(t for t, _ in res[v]), min(o for _, o in res[v])) for v in ("with", "without"))
            print(f"{n:>9} {dim:>4} | {iw:>13.2f} {io_:>8.2f} {100 * (iw / io_ - 1):>7.1f}% | "
                  f"{1000 * ow:>13.1f} {1000 * oo:>8.1f} {1000 * (ow - oo):>+7.1f}ms")
    for dim in map(int, args.dims.split(",")):
        block = np.random.default_rng(0).normal(size=(BATCH, dim)).astype(np.float32)
        t = time.perf_counter()
        for _ in range(1000):
            real(block)
        per_photo = (time.perf_counter() - t) / 1000 / BATCH
        print(f"checksum computed at commit, dim {dim}: {per_photo * 1e9:.0f} ns per photo "
              f"(commit_batch times above are dominated by fdatasync, hence their noise)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
