"""Short benchmark of app/engine on this machine: indexing speed and peak memory, re-scan time, query latency.

    python bench/engine_bench.py --model runs/offline            # a run directory or a bundle
    python bench/engine_bench.py --model runs/offline --json out.json

What it measures (each in a fresh child process where memory matters):

* ``index``: photos/s to scan + decode + encode + commit generated photos, and the peak RSS of the
  process (``resource.getrusage``), for a small and a 4x larger gallery: bounded memory shows as a
  peak that does not grow with the gallery. Two photo kinds: the benchmark's own 32 px PNGs, and
  1024x768 JPEGs (camera-like decode cost, JPEG draft path).
* ``rescan``: wall time of a scan of an unchanged gallery of 10k small files (median of 5).
* ``query``: latency of exact top-10 over N random unit embeddings (10k and 100k) for numpy on the
  store's memory-mapped matrix (what the engine uses) and FAISS ``IndexFlatIP``; plus the engine's
  whole ``search_vector`` (paths, deleted-file check) and ``search_text`` (tokenise + encode + search).

Measured 2026-11-23 on the development box (2 shared CPU cores, load average 3-5 from a training
run and other jobs, so expect +-50%), offline student architecture (ViT 128 wide x 4 on 32 px,
text 4 layers, 128-d), 32 photos per batch, 2 decode threads:

=============================================  ======================  =========================
indexing                                       PyTorch run dir         ExecuTorch fp32 bundle
=============================================  ======================  =========================
benchmark PNGs (32 px), 200 / 800 / 5000       844 / 1046 / 874 /s     430 / 599 / - /s
1024x768 JPEGs (draft decode), 100 photos      378 photos/s            223 photos/s
peak RSS, 200 / 800 / 5000 photos              1011 / 1011 / 1013 MB   974 / 975 / - MB
RSS once the model is loaded (imports)         986 MB                  956 MB
=============================================  ======================  =========================

PyTorch used one thread (the CLI's default here: the cores the two decode threads leave); with
two threads it fell to 57-102 photos/s, oversubscribed. Indexing adds 17-28 MB to what importing
torch (677 MB RSS alone) + the model take, the same for 200 and 5000 photos: memory does not grow
with the gallery.

Re-scan of an unchanged 10k-file gallery: 0.085-0.14 s (median of 5); the first scan of the same
10k new files 0.17 s.

Query latency, p50 (one thread; BLAS multi-threaded runs were 1.2-3x slower on the busy box):

=================================  ==========  ===========  ===========  ===========
                                   10k x 128   100k x 128   10k x 512    100k x 512
=================================  ==========  ===========  ===========  ===========
numpy top-10 on the memmap         0.2 ms      10.7 ms      1.5 ms       17 ms
FAISS IndexFlatIP (1 thread)       0.09 ms     2.2 ms       0.6 ms       9.5 ms
FAISS IndexFlatIP (2 threads)      0.4 ms      36 ms        24 ms        68 ms
engine.search_vector               0.3 ms      11 ms
engine.search_text (ExecuTorch)    2.1 ms      11.8 ms
=================================  ==========  ===========  ===========  ===========

At 100k rows the writer's store open (SQLite quick_check) takes 42 ms, the first snapshot for
search 100-165 ms, and committing a batch of 32 (fsync + transaction) 4 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _write_gallery(root: Path, n: int, kind: str) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"d{i % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        if kind == "png32":
            arr = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
            Image.fromarray(arr, "RGB").save(folder / f"{i:06d}.png")
        else:  # camera-like: smooth content, 1024x768 JPEG
            base = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
            im = Image.fromarray(base, "RGB").resize((1024, 768), Image.Resampling.BICUBIC)
            im.save(folder / f"{i:06d}.jpg", quality=88)


def child_index(model: str, n: int, kind: str, threads: int | None) -> dict:
    """Runs in a fresh process: index a generated gallery, report speed and peak RSS."""
    from app.engine.engine import SearchEngine
    from app.engine.runtimes import load_encoders
    from app.engine.runtimes.torch_runtime import default_index_threads

    with tempfile.TemporaryDirectory() as tmp:
        gallery = Path(tmp) / "g"
        _write_gallery(gallery, n, kind)
        encoders = load_encoders(model, threads=threads or default_index_threads(2))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with SearchEngine(Path(tmp) / "data", encoders) as engine:
            start = time.perf_counter()
            result = engine.update([gallery])
            seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"kind": kind, "photos": n, "indexed": result.index.indexed, "seconds": round(seconds, 2),
            "photos_per_s": round(n / seconds, 1), "peak_rss_mb": round(peak, 1),
            "rss_after_model_load_mb": round(rss_before, 1), "backend": encoders.backend}


def bench_rescan(n: int = 10_000, repeats: int = 5) -> dict:
    from app.engine.engine import SearchEngine
    from app.engine.runtimes.base import Encoders

    class NoEncoder(Encoders):  # scanning never encodes
        backend, model_id, embed_dim = "none", "none", 4

        def encode_images(self, pixels):
            raise AssertionError

        def encode_tokens(self, tokens):
            raise AssertionError

    tiny_jpeg = _tiny_jpeg()
    with tempfile.TemporaryDirectory() as tmp:
        gallery = Path(tmp) / "g"
        for i in range(n):
            folder = gallery / f"album{i // 500:02d}"
            if i % 500 == 0:
                folder.mkdir(parents=True)
            (folder / f"IMG_{i:05d}.jpg").write_bytes(tiny_jpeg)
        with SearchEngine(Path(tmp) / "data", NoEncoder()) as engine:
            t0 = time.perf_counter()
            first = engine.scan([gallery])
            first_s = time.perf_counter() - t0
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                again = engine.scan([gallery])
                times.append(time.perf_counter() - t0)
                assert not again.plan.has_changes and again.plan.unchanged == n
    return {"files": n, "first_scan_s": round(first_s, 3), "rescan_unchanged_median_s": round(statistics.median(times), 3),
            "rescan_unchanged_min_s": round(min(times), 3), "new_in_first_scan": len(first.plan.new)}


def _tiny_jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 30, 200)).save(buf, format="JPEG")
    return buf.getvalue()


def _median_ms(fn, queries: np.ndarray) -> str:
    """'p50 / p90' wall time of fn(q) over the queries, in ms, after two warm-up calls."""
    fn(queries[0])  # warm up (page cache, BLAS threads)
    fn(queries[1])
    times = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t0)
    p50, p90 = np.percentile(np.asarray(times) * 1e3, [50, 90])
    return f"{p50:.3f} / {p90:.3f}"


def bench_query(model: str | None, sizes=(10_000, 100_000), dim: int | None = None, repeats: int = 100) -> list[dict]:
    import faiss

    from app.engine.engine import SearchEngine
    from app.engine.runtimes import load_encoders
    from app.engine.scanner import ScannedFile, ScanPlan
    from app.engine.search import top_k_rows
    from app.engine.store import EmbeddingStore, IndexedPhoto

    encoders = load_encoders(model, threads=1) if model else None
    dim = dim or (encoders.embed_dim if encoders else 128)
    rng = np.random.default_rng(0)
    out = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            data, gallery = Path(tmp) / "data", Path(tmp) / "g"
            gallery.mkdir()
            for i in range(n):  # every row is a real file (hard links: cheap), so results pass the exists check
                if i % 50_000 == 0:
                    base = gallery / f"{i}.jpg"
                    base.write_bytes(_tiny_jpeg())
                else:
                    os.link(base, gallery / f"{i}.jpg")
            with EmbeddingStore(data) as store:
                store.bind_model(encoders.model_id if encoders else "random", dim)
                store.apply_plan(ScanPlan(new=[ScannedFile(str(gallery / f"{i}.jpg"), 1, 1) for i in range(n)]))
                ids = [r[0] for r in store.pending_after(0, n)]
                for s in range(0, n, 10_000):
                    emb = rng.normal(size=(len(ids[s : s + 10_000]), dim)).astype(np.float32)
                    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
                    store.commit_batch([IndexedPhoto(i, e, 1, 1, b"") for i, e in zip(ids[s:], emb)])
            queries = rng.normal(size=(repeats, dim)).astype(np.float32)
            queries /= np.linalg.norm(queries, axis=1, keepdims=True)

            with EmbeddingStore(data, readonly=True) as store:
                t0 = time.perf_counter()
                snap = store.snapshot()
                snapshot_ms = round(1e3 * (time.perf_counter() - t0), 1)
                numpy_ms = _median_ms(lambda q, snap=snap: top_k_rows(snap, q, 10), queries)
                t0 = time.perf_counter()
                index = faiss.IndexFlatIP(dim)
                index.add(np.ascontiguousarray(snap.matrix))
                build_ms = round(1e3 * (time.perf_counter() - t0), 1)
                faiss_ms = _median_ms(lambda q, index=index: index.search(q[None], 10), queries)
            row = {"embeddings": n, "dim": dim, "numpy_memmap_top10_ms": numpy_ms, "faiss_flatip_top10_ms": faiss_ms,
                   "faiss_build_ms": build_ms, "snapshot_load_ms": snapshot_ms}
            if encoders is not None:
                with SearchEngine(data, encoders, readonly=True) as engine:
                    row["engine_search_vector_ms"] = _median_ms(lambda q, e=engine: e.search_vector(q, 10), queries)
                    row["engine_search_text_ms"] = _median_ms(
                        lambda q, e=engine: e.search_text("a red circle on the left of a blue square", 10), queries)
            out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(REPO / "runs" / "offline"), help="run directory or bundle to encode with")
    p.add_argument("--photos", type=int, default=200, help="photos in the small indexing gallery (the large one is 4x)")
    p.add_argument("--threads", type=int, default=None,
                   help="PyTorch threads for indexing (default: as the CLI, the cores 2 decode threads leave)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--skip", nargs="*", default=[], choices=["index", "rescan", "query"], help="parts not to run")
    p.add_argument("--child", nargs=3, metavar=("MODEL", "N", "KIND"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child_index(args.child[0], int(args.child[1]), args.child[2], args.threads)))
        return 0
    results: dict = {"machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()}}
    index_runs = []
    kinds = [] if "index" in args.skip else [("png32", args.photos), ("png32", 4 * args.photos), ("jpeg1024", args.photos // 2)]
    for kind, n in kinds:
        cmd = [sys.executable, __file__, "--child", args.model, str(n), kind]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
        index_runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print("index", index_runs[-1], flush=True)
    results["index"] = index_runs
    if "rescan" not in args.skip:
        results["rescan"] = bench_rescan()
        print("rescan", results["rescan"], flush=True)
    if "query" not in args.skip:
        results["query"] = bench_query(args.model) + bench_query(None, dim=512)
        for row in results["query"]:
            print("query (p50 / p90 ms)", row, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
