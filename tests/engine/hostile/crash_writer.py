"""A writer that never stops: adds, re-encodes, deletes and compacts in a loop, to be killed at a random instant.

``python crash_writer.py DATA_DIR`` - every embedding is a pure function of its path (:func:`expected`),
so after a kill the test can check that every live row still holds its photo's own embedding.
"""
from __future__ import annotations

import hashlib
import sys

import numpy as np

DIM = 8


def expected(path: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def run(data_dir: str) -> None:
    from app.engine.scanner import ScannedFile, ScanPlan
    from app.engine.store import EmbeddingStore, IndexedPhoto

    with EmbeddingStore(data_dir) as store:
        store.bind_model("crash-writer", DIM)
        round_ = 0
        while True:
            round_ += 1
            new = [ScannedFile(f"/g/r{round_}-{i}.jpg", 10 + i, round_) for i in range(40)]
            known = store.known_photos()
            doomed = sorted(known)[: len(known) // 2]
            store.apply_plan(ScanPlan(new=new, deleted=[known[p].id for p in doomed]))
            while pending := store.pending_after(0, 8):
                store.commit_batch([IndexedPhoto(pid, expected(path), size, mtime, b"f" * 16)
                                    for pid, path, size, mtime in pending])
            store.compact(force=True)


if __name__ == "__main__":
    run(sys.argv[1])
