"""Indexing section: photos/s of the engine's real indexer on camera-sized JPEGs, and where the time goes.

A gallery of 4000x3000 JPEGs (quality 90, textured: multi-scale noise, grain, shapes; generated
here) is indexed end to end by ``SearchEngine.update`` (scan + read + decode + resize + encode +
store commit, decoding the next batch on one thread per core while this one is encoded) in a fresh
child process, whose resident memory is read after each batch and at its peak (``peak_rss_mb``).
Before that, in the same child, the physical reference (bench.decode_limit: the fastest scaled
decode of the same files on every core, nothing else running), which indexing is reported as a
fraction of; the same again through a 224-px input pipeline (bench.pooled_input) in a second child.
Then each stage is timed on its own (one thread, one photo after another), with the decode a 224-px
model (ViT-S/16, ViT-B/32) would need next to the model's own; and the encoder alone on
already-preprocessed tensors. Last, a re-scan of an unchanged gallery of
small files.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    current_rss_mb,
    display_path,
    peak_rss_mb,
    run_child,
    summarize_ms,
    time_calls,
)
from bench.gallery import JPEG_QUALITY, PHOTO_SIZE, REAL_MODEL_SIZE, write_gallery
from bench.indexing_report import plot, to_markdown

__all__ = [  # run, to_markdown and plot make the section; index_in_child is the child's target
    "JPEG_QUALITY",
    "PHOTO_SIZE",
    "REAL_MODEL_SIZE",
    "index_in_child",
    "measure_rescan",
    "plot",
    "run",
    "to_markdown",
    "write_gallery",
]

logger = logging.getLogger(__name__)

PHOTOS = {True: 12, False: 100}
RESCAN_FILES = {True: 2_000, False: 10_000}


# ------------------------------------------------------------------------------------------------
# the child: end to end, then stage by stage
# ------------------------------------------------------------------------------------------------


def index_in_child(
    started: float, model: str, gallery: str, data_dir: str, threads: int | None,
    input_size: int | None = None, stages: bool = True,
) -> dict[str, Any]:
    """Runs in a fresh process (see bench.common.run_child): the decode limit of ``gallery``, then index it
    with the engine (``input_size``: through bench.pooled_input at that size), then (``stages``) time each
    stage on the same photos. Returns JSON-ready figures."""
    from app.desktop.models import load_model
    from app.desktop.torch_runtime import default_index_threads
    from app.engine.engine import SearchEngine
    from app.engine.indexer import usable_cores
    from bench.decode_limit import decode_limit
    from bench.pooled_input import PooledInputEncoders

    workers = usable_cores()  # the engine's default: one decode thread per core
    rss_imports = current_rss_mb()
    encoders = load_model(model, threads=threads or default_index_threads(workers))
    if input_size:
        encoders = PooledInputEncoders(encoders, input_size)
    paths = sorted(str(p) for p in Path(gallery).rglob("*.jpg"))
    limit = decode_limit(paths, encoders.preprocess.image_size, workers)
    rss_model, peak_before = current_rss_mb(), peak_rss_mb()
    with SearchEngine(Path(data_dir) / "index", encoders) as engine:
        t0 = time.perf_counter()
        trace: list[float | None] = []  # RSS when each batch is committed: flat if memory is bounded
        update = engine.update(
            [gallery],
            decode_workers=workers,
            progress=lambda done, total: trace.append(current_rss_mb()),
        )
        seconds = time.perf_counter() - t0
    rss_after, rss_peak = current_rss_mb(), peak_rss_mb()
    torch = sys.modules.get("torch")  # not imported here for a runtime that runs without it (ONNX)
    out = {
        "backend": encoders.backend,
        "model_image_size": encoders.preprocess.image_size,
        "batch_size": encoders.image_batch_size,
        "torch_threads": torch.get_num_threads() if torch else None,
        "decode_workers": workers,
        "end_to_end": {
            "photos": update.index.indexed,
            "skipped": update.index.skipped,
            "seconds": seconds,
            "scan_seconds": update.scan.seconds,
            "photos_per_s": update.index.indexed / seconds,
        },
        "rss_mb": {
            "after_imports": rss_imports,
            "after_model_load": rss_model,
            "peak_before_indexing": peak_before,
            "after_indexing": rss_after,
            "after_each_batch": trace[1:],  # the first call comes before any photo
            "peak_after_indexing": rss_peak,
        },
    }
    out["decode_limit"] = limit
    out["fraction_of_decode_limit"] = out["end_to_end"]["photos_per_s"] / limit["photos_per_s"]
    if stages:
        out.update(_stages(encoders, paths, Path(data_dir) / "stages"))
    return out


def _stages(encoders: Any, paths: list[str], data_dir: Path) -> dict[str, Any]:
    """Each stage timed alone on ``paths`` (ms per photo), and the encoder's raw photos/s."""
    from app.engine.decode import (
        DecodeLimits,
        ImagePreprocess,
        decode_rgb,
        preprocess_image,
        read_photo_bytes,
    )
    from app.engine.fingerprint import fingerprint_bytes
    from app.engine.scanner import ScannedFile, ScanPlan
    from app.engine.store import EmbeddingStore, IndexedPhoto

    limits, pre = DecodeLimits(), encoders.preprocess
    real = ImagePreprocess(REAL_MODEL_SIZE, pre.mean, pre.std)
    times: dict[str, list[float]] = {
        k: []
        for k in (
            "read",
            "fingerprint",
            "decode",
            "preprocess",
            "encode",
            "store_commit",
            "decode_224",
            "preprocess_224",
            "decode_full_size",
        )
    }

    def timed(key: str, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        value = fn(*args)
        times[key].append(time.perf_counter() - t0)
        return value

    pixels, metas = [], []
    for i, path in enumerate(paths):
        data, size, mtime = timed("read", read_photo_bytes, path, limits)
        fp = timed("fingerprint", fingerprint_bytes, data)
        image = timed("decode", decode_rgb, data, path, limits, pre.image_size)
        pixels.append(timed("preprocess", preprocess_image, image, pre))
        metas.append((path, size, mtime, fp))
        big = timed("decode_224", decode_rgb, data, path, limits, REAL_MODEL_SIZE)
        timed("preprocess_224", preprocess_image, big, real)
        if i < 12:  # the JPEG draft's saving, on a few photos (a full decode is the slowest step)
            timed("decode_full_size", decode_rgb, data, path, DecodeLimits(jpeg_draft=False), pre.image_size)
    batch = encoders.image_batch_size
    embeddings = [
        timed("encode", encoders.encode_images, np.stack(pixels[s : s + batch]))
        for s in range(0, len(pixels), batch)
    ]
    with EmbeddingStore(data_dir) as store:
        store.bind_model(encoders.model_id, encoders.embed_dim)
        store.apply_plan(ScanPlan(new=[ScannedFile(p, s, m) for p, s, m, _ in metas]))
        ids = [row[0] for row in store.pending_after(0, len(metas))]
        for b, emb in enumerate(embeddings):
            part = list(zip(ids[b * batch :], metas[b * batch :], emb))
            timed(
                "store_commit",
                store.commit_batch,
                [IndexedPhoto(i, e, size, mtime, fp) for i, (_, size, mtime, fp), e in part],
            )
    n = len(paths)
    per_batch = {"encode", "store_commit"}  # timed once per batch: spread over its photos
    stage_ms = {
        k: (1e3 * sum(v) / n if k in per_batch else summarize_ms(v)["mean_ms"]) for k, v in times.items() if v
    }
    full = np.stack((pixels * (batch // max(len(pixels), 1) + 1))[:batch])
    raw = time_calls(encoders.encode_images, [full], warmup=1, budget_s=2.0, min_repeats=3, max_repeats=50)
    return {
        "stage_ms_per_photo": stage_ms,
        "stage_photos": n,
        "encoder_raw": {"batch": batch, **raw, "photos_per_s": batch / (raw["min_ms"] / 1e3)},
    }


# ------------------------------------------------------------------------------------------------
# re-scan
# ------------------------------------------------------------------------------------------------


def measure_rescan(work_dir: Path, n: int, repeats: int = 5) -> dict[str, Any]:
    """Wall time of scans of an unchanged gallery of ``n`` small files: the first, then p50 of repeats."""
    import io

    from PIL import Image

    from app.engine.engine import SearchEngine
    from app.engine.runtimes.base import Encoders

    class NoEncoders(Encoders):  # scanning never encodes
        backend, model_id, embed_dim = "none", "none", 4

        def encode_images(self, pixels: np.ndarray) -> np.ndarray:
            raise AssertionError("a scan encoded a photo")

        def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
            raise AssertionError("a scan encoded a text")

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 30, 200)).save(buf, format="JPEG")
    gallery = work_dir / "rescan-gallery"
    for i in range(n):
        folder = gallery / f"album{i // 500:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"IMG_{i:05d}.jpg").write_bytes(buf.getvalue())
    with SearchEngine(work_dir / "rescan-index", NoEncoders()) as engine:
        t0 = time.perf_counter()
        first = engine.scan([gallery])
        first_s = time.perf_counter() - t0
        timing = time_calls(
            lambda _: engine.scan([gallery]), [None], warmup=0, min_repeats=repeats, max_repeats=repeats
        )
        again = engine.scan([gallery])
    if again.plan.has_changes or len(first.plan.new) != n:
        raise RuntimeError(
            f"re-scan of an unchanged gallery of {n} files found changes: {again.plan.summary()}"
        )
    return {
        "files": n,
        "first_scan_s": first_s,
        "rescan_p50_s": timing["p50_ms"] / 1e3,
        "rescan_min_s": timing["min_ms"] / 1e3,
        "repeats": repeats,
    }


# ------------------------------------------------------------------------------------------------
# the section
# ------------------------------------------------------------------------------------------------


def run(quick: bool, work_dir: Path, model: Path, threads: int | None = None) -> dict[str, Any]:
    n = PHOTOS[quick]
    logger.info("indexing: writing %d JPEGs of %dx%d", n, *PHOTO_SIZE)
    gallery = write_gallery(work_dir / "gallery", n)
    common = {"model": str(Path(model).resolve()), "gallery": str(work_dir / "gallery"), "threads": threads}
    logger.info("indexing: indexing them in a child process (%s)", model)
    child = run_child("bench.indexing:index_in_child", {**common, "data_dir": str(work_dir / "index-data")})
    logger.info("indexing: the same photos through a %d-px input pipeline", REAL_MODEL_SIZE)
    at_224 = run_child(
        "bench.indexing:index_in_child",
        {**common, "data_dir": str(work_dir / "index-data-224"), "input_size": REAL_MODEL_SIZE, "stages": False},
    )
    logger.info("indexing: re-scan of an unchanged gallery")
    return {
        "model": display_path(model),
        "gallery": gallery,
        **child.result,
        "input_224": {k: at_224.result[k] for k in ("end_to_end", "decode_limit", "fraction_of_decode_limit")},
        "rescan": measure_rescan(work_dir, RESCAN_FILES[quick]),
    }

