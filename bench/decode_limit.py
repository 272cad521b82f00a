"""The physical reference for indexing: the fastest scaled JPEG decode of the same files on every core.

Each photo is read and decoded exactly as the engine's indexer does it (``read_photo_bytes`` +
``decode_rgb`` at the smallest DCT scale that covers the model's input), with nothing else: no
preprocessing, no encoder, no store. Both ways of using every core are timed, one thread per core
(Pillow releases the GIL while libjpeg decodes) and one process per core, and the faster one is the
limit that indexing is measured against (``bench.indexing``: photos/s end to end / this).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)


def decode_one(path: str, model_size: int) -> tuple[int, int]:
    """Read and draft-decode one photo as the indexer does; its decoded size."""
    from app.engine.decode import DecodeLimits, decode_rgb, read_photo_bytes

    limits = DecodeLimits()
    data, _, _ = read_photo_bytes(path, limits)
    return decode_rgb(data, path, limits, model_size).size


def _timed_pass(pool: Executor, paths: list[str], model_size: int) -> float:
    t0 = time.perf_counter()
    list(pool.map(decode_one, paths, [model_size] * len(paths)))
    return time.perf_counter() - t0


def decode_limit(paths: list[str], model_size: int, workers: int, repeats: int = 2) -> dict[str, Any]:
    """Photos/s of the fastest of ``repeats`` passes over ``paths`` with ``workers`` threads, and with
    ``workers`` processes (started and warmed before timing); the better of the two is ``photos_per_s``."""
    out: dict[str, Any] = {"photos": len(paths), "model_size": model_size, "workers": workers}
    for kind, make in (("threads", ThreadPoolExecutor), ("processes", ProcessPoolExecutor)):
        with make(workers) as pool:
            list(pool.map(decode_one, paths[:workers], [model_size] * workers))  # start and warm every worker
            best = min(_timed_pass(pool, paths, model_size) for _ in range(repeats))
        out[f"{kind}_photos_per_s"] = len(paths) / best
    out["photos_per_s"] = max(out["threads_photos_per_s"], out["processes_photos_per_s"])
    out["fastest"] = "threads" if out["threads_photos_per_s"] >= out["processes_photos_per_s"] else "processes"
    logger.info("decode limit at %d px: %.1f photos/s (%s)", model_size, out["photos_per_s"], out["fastest"])
    return out
