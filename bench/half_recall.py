"""Recall@1/5/10 through the engine of a float16 index against a float32 one, on the benchmark captions.

    python -m bench.half_recall --model RUN_OR_BUNDLE --work DIR [--n-test 1000] [--out bench/results/half_recall.json]

The benchmark's synthetic test split (``n_test`` images, 5 captions each) is written as a gallery with a
Karpathy captions file; the gallery is indexed twice with ``python -m app.engine index`` (``--embedding-dtype
float32`` and ``float16``) and each index is evaluated with ``python -m app.engine eval`` (the engine's own
search, as the app runs it). int8 has no store hook: it is reported by swapping the engine's top-K for the
int8 kernel over the float32 index.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any


def _cli(argv: list[str]) -> str:
    from app.engine.__main__ import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    if code != 0:
        raise SystemExit(f"python -m app.engine {' '.join(argv)} exited {code}")
    return out.getvalue()


def measure(model: Path, work: Path, n_test: int) -> dict[str, Any]:
    from compression.config import load_config
    from compression.data.loading import load_datasets
    from compression.data.synthetic import write_split_as_folder

    sizes = ["n_pretrain=128", "n_unpaired_images=64", "n_unpaired_texts=64", "n_train=64", "n_val=16"]  # unused here
    cfg = load_config(None, ["data.source=synthetic", f"data.synthetic.n_test={n_test}",
                             *(f"data.synthetic.{s}" for s in sizes)])
    split = load_datasets(cfg.data, work / "cache", need_pretrain=False, progress=False).test
    captions = write_split_as_folder(split, work / "gallery")
    out: dict[str, Any] = {"model": str(model), "images": len(split), "captions_file": "dataset_synthetic.json"}
    for dtype in ("float32", "float16"):
        base = ["--data-dir", str(work / dtype), "--model", str(model)]
        _cli([*base, "index", "--gallery", str(work / "gallery" / "images"), "--no-progress",
              "--embedding-dtype", dtype])
        out[dtype] = json.loads(_cli([*base, "eval", "--captions", str(captions), "--json"]))
    out["int8"] = _int8(model, work / "float32", captions)
    return out


def _int8(model: Path, data_dir: Path, captions: Path) -> dict[str, Any]:
    from unittest import mock

    from app.desktop.models import load_model
    from app.engine import engine as engine_module
    from app.engine.engine import SearchEngine
    from app.engine.half_embeddings import encode_rows, top_k_half
    from app.engine.recall import read_captions, recall_at

    cache: dict[int, Any] = {}

    def int8_top_k(snapshot, query, k):
        rows = cache.setdefault(id(snapshot.matrix), encode_rows(snapshot.matrix, "int8"))
        return top_k_half(rows, query, min(k, snapshot.live), snapshot.dead_rows)

    with SearchEngine(data_dir, load_model(model, threads=1), readonly=True) as engine, \
            mock.patch.object(engine_module, "top_k_rows", int8_top_k):
        figures = recall_at(engine, read_captions(captions))
    return {**figures, "embedding_dtype": "int8 (kernel swapped in over the float32 index)"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.half_recall", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help="a run directory or export bundle")
    p.add_argument("--work", type=Path, required=True, help="folder for the gallery and the two indexes")
    p.add_argument("--n-test", type=int, default=1000, help="benchmark test images (5 captions each)")
    p.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    from bench.common import OtherCpu, atomic_write_json

    with OtherCpu() as other:
        result = measure(args.model, args.work, args.n_test)
    result["other_cpu"] = other.as_dict()
    if args.out:
        atomic_write_json(args.out, {"command": "python -m bench.half_recall " + " ".join(argv or sys.argv[1:]),
                                     "result": result})
    for kind in ("float32", "float16", "int8"):
        r = result[kind]
        print(f"{kind:8s} {r['captions']} captions  R@1 {r['R@1']:.2f}  R@5 {r['R@5']:.2f}  R@10 {r['R@10']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
