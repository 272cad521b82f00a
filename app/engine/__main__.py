"""`python -m app.engine`: index galleries and search them from a terminal (desktop use and tests).

    python -m app.engine index --gallery ~/Pictures
    python -m app.engine search "a red circle" --k 10
    python -m app.engine similar ~/Pictures/cat.jpg
    python -m app.engine status --check
    python -m app.engine eval --captions dataset.json     # recall@1/5/10 of the indexed gallery
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sqlite3
import sys
from pathlib import Path

from app.desktop.models import load_model  # this CLI is a desktop entry point (not shipped to phones)
from app.engine.data_dir import default_data_dir
from app.engine.engine import SearchEngine
from app.engine.pathnames import shown
from app.engine.store import EMBEDDING_DTYPES, StoreError
from formats.cli import cli_main

logger = logging.getLogger(__name__)

DEFAULT_MODEL = Path("runs") / "offline"
MAX_RERANK = 10_000  # photos the teacher may re-score for one query (it does so RERANK_BATCH at a time)


def _whole_number(low: int, high: int | None = None):
    """argparse type: a whole number in [low, high], else a one-line usage error naming the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range (expected {bound})")
        return value

    parse.__name__ = "whole number"
    return parse


def _seconds(text: str) -> float:
    """argparse type: a finite, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a finite number of seconds >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m app.engine",
        description="Private photo search on this machine: index gallery folders with the compressed CLIP, "
        "then find photos by describing them. The index lives in --data-dir; galleries are only read.",
    )
    p.add_argument("--data-dir", type=Path, default=default_data_dir(),
                   help="where the index is kept (default: $POCKETCLIP_DATA_DIR or $XDG_DATA_HOME/pocketclip, "
                   "i.e. %(default)s)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                   help="a run directory with student.json (PyTorch), an export bundle with manifest.json "
                   "(ExecuTorch / Core ML, files checked against their sha256), or a folder of bundles "
                   "(default: %(default)s)")
    p.add_argument("--threads", type=_whole_number(1, 1024), default=None,
                   help="PyTorch threads for a run-directory model (default: to index, the cores the decode "
                   "workers leave; to search, 1: a single query on a small model is fastest on one thread)")
    p.add_argument("-v", "--verbose", action="store_true", help="log what the engine does (INFO level)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="index | search | similar | status | eval (each has its own --help)")

    ix = sub.add_parser("index", help="scan galleries and encode new or changed photos (resumable)",
                        description="Scan the gallery folders for new, changed, moved and deleted photos, then encode "
                        "what is new in batches. Interrupt it at any time: the next run resumes where it stopped.")
    ix.add_argument("--gallery", type=Path, action="append", required=True, metavar="DIR",
                    help="a gallery folder; repeat for several. Together they are the whole gallery: photos "
                    "under folders not given are dropped from the index (unreadable folders are kept)")
    ix.add_argument("--batch-size", type=_whole_number(1, 4096), default=None,
                    help="photos encoded per batch (default: what the runtime prefers, 32 for PyTorch)")
    ix.add_argument("--workers", type=_whole_number(1, 64), default=None,
                    help="threads decoding photos ahead of the encoder (default: one per core)")
    ix.add_argument("--throttle", type=_seconds, default=0.0, metavar="SECONDS",
                    help="pause after each batch, to spare battery and heat (tests use it to interrupt a run "
                    "mid-way; default: 0)")
    ix.add_argument("--retry-skipped", action="store_true",
                    help="try again the photos skipped before as unreadable (e.g. after installing a HEIC plugin)")
    ix.add_argument("--no-progress", action="store_true", help="no progress bar")
    ix.add_argument("--embedding-dtype", choices=sorted(EMBEDDING_DTYPES), default=None,
                    help="how a NEW index stores embeddings: float32 (default) or float16 (half the memory and "
                    "disk, searched by the half-size kernel, recall unchanged within float16 rounding). An "
                    "existing index keeps its kind; asking for the other one is an error, nothing is converted")

    se = sub.add_parser("search", help="find photos matching a description",
                        description="Encode the query with the text encoder and rank every indexed photo (exact top-K).")
    se.add_argument("query", help='what to look for, e.g. "a red circle on a white background"')
    se.add_argument("--k", type=_whole_number(1), default=10, help="how many photos to list (default: 10)")
    se.add_argument("--rerank", type=_whole_number(0, MAX_RERANK), default=0, metavar="M",
                    help="re-score the best M with the teacher when --model is a run directory that has one "
                    f"(slower, more accurate; at most {MAX_RERANK}; default: 0 = off)")
    se.add_argument("--json", action="store_true", help="print results as JSON")

    si = sub.add_parser("similar", help="find photos similar to a photo",
                        description="Rank indexed photos by similarity to PHOTO (an indexed photo or any image file).")
    si.add_argument("photo", type=Path, help="the query photo")
    si.add_argument("--k", type=_whole_number(1), default=10, help="how many photos to list (default: 10)")
    si.add_argument("--json", action="store_true", help="print results as JSON")

    st = sub.add_parser("status", help="what the index holds", description="Counts of indexed, pending and skipped photos.")
    st.add_argument("--check", action="store_true", help="also verify the index's consistency (exit 1 if not)")
    st.add_argument("--json", action="store_true", help="print as JSON")

    ev = sub.add_parser("eval", help="text-to-photo recall@1/5/10 of the indexed gallery against captions",
                        description="Search every caption through the engine exactly as the app does and report "
                        "recall@1/5/10: the share of captions whose photo is among the first K results. The "
                        "photos must be indexed first (`index --gallery`).")
    ev.add_argument("--captions", type=Path, required=True, metavar="FILE",
                    help="Karpathy-format JSON (images[].filepath/filename/sentences[].raw[, split]) or a TSV of "
                    "`path<TAB>caption` lines; relative paths are taken from FILE's folder")
    ev.add_argument("--split", default=None,
                    help="Karpathy JSON only: evaluate the images of this split (default: every image)")
    ev.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _print_results(results, as_json: bool) -> None:
    if as_json:  # ensure_ascii: control characters and undecodable bytes are \u escapes, never raw
        print(json.dumps([{"path": r.path, "score": round(r.score, 6)} for r in results], indent=2,
                         allow_nan=False))
    elif not results:
        print("no photos indexed yet: run `python -m app.engine index --gallery DIR` first")
    else:
        for r in results:
            print(f"{r.score:7.4f}  {shown(r.path)}")


def _index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from app.desktop.torch_runtime import default_index_threads
    from app.engine.indexer import usable_cores

    workers = args.workers or usable_cores()
    encoders = load_model(args.model, threads=args.threads or default_index_threads(workers))
    with SearchEngine(args.data_dir, encoders, embedding_dtype=args.embedding_dtype) as engine:
        for note in engine.notes:
            print(f"note: {shown(note)}", file=sys.stderr)
        if args.retry_skipped:
            print(f"{engine.store.retry_failed()} skipped photos queued again")
        scan = engine.scan(args.gallery)
        print(scan.summary())
        for root in scan.report.unavailable:
            print(f"warning: could not read {shown(root)}; its photos are kept as they were", file=sys.stderr)
        for root in scan.plan.kept_roots:
            print(f"warning: {shown(root)} holds none of the photos indexed under it (not mounted? wrong "
                  f"folder?); they are kept as they were", file=sys.stderr)
        bar = None if args.no_progress else tqdm(total=0, unit="photo", desc="indexing", dynamic_ncols=True)

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total
                bar.n = done
                bar.refresh()

        try:
            report = engine.index(progress, batch_size=args.batch_size, decode_workers=workers,
                                  throttle_s=args.throttle)
        finally:
            if bar is not None:
                bar.close()
        print("index: " + report.summary())
        for reason, examples in sorted(report.examples.items()):
            print(f"  skipped ({reason}): e.g. {', '.join(shown(e) for e in examples)}")
        if engine.store.compact():
            print("index: embedding matrix compacted")
        st = engine.stats()
        print(f"index holds {st.indexed} photos ({st.pending} pending, {st.failed} skipped) in "
              f"{shown(str(args.data_dir))}")
    return 0


def _search(args: argparse.Namespace) -> int:
    from app.desktop.rerank import TeacherReranker

    encoders = load_model(args.model, threads=args.threads or 1)
    reranker = None
    rerank = getattr(args, "rerank", 0)
    if rerank > 0:
        if TeacherReranker.available(args.model):
            reranker = TeacherReranker(args.model)
        else:
            print(f"note: no teacher in {args.model}; --rerank ignored", file=sys.stderr)
    with SearchEngine(args.data_dir, encoders, readonly=True, reranker=reranker) as engine:
        if args.command == "similar":
            results = engine.search_image(args.photo, args.k)
        else:
            results = engine.search_text(args.query, args.k, rerank_top_m=rerank)
    _print_results(results, args.json)
    return 0


def _status(args: argparse.Namespace) -> int:
    from app.engine.half_embeddings import search_kernel
    from app.engine.store import EmbeddingStore

    with EmbeddingStore(args.data_dir, readonly=True) as store:
        st = store.stats()
        problems = store.check() if args.check else []
        dtype = store.embedding_dtype
    if args.json:
        print(json.dumps({**st.__dict__, "embedding_dtype": dtype, "search_kernel": search_kernel(dtype),
                          "problems": problems}, indent=2, allow_nan=False))
    else:
        print(f"{shown(str(args.data_dir))}: {st.photos} photos, {st.indexed} indexed, {st.pending} pending, {st.failed} skipped; "
              f"{st.rows} {dtype} embedding rows ({st.dead_rows} dead, searched by {search_kernel(dtype)}), "
              f"model {st.model_id} dim {st.embed_dim}")
        for reason, n in sorted(st.failures.items()):
            print(f"  skipped: {n} {reason}")
        for problem in problems:
            print(f"  PROBLEM: {problem}")
    return 1 if problems else 0


def _eval(args: argparse.Namespace) -> int:
    from app.engine.recall import read_captions, recall_at

    captions = read_captions(args.captions, split=args.split)  # CaptionError: one line, exit 2 (cli_main)
    encoders = load_model(args.model, threads=args.threads or 1)
    with SearchEngine(args.data_dir, encoders, readonly=True) as engine:
        figures = recall_at(engine, captions)
    if args.json:
        print(json.dumps(figures, indent=2, allow_nan=False))
    else:
        print(f"{figures['captions']} captions of {figures['images']} photos, {figures['embedding_dtype']} index: "
              + "  ".join(f"R@{k} {figures[f'R@{k}']:.2f}" for k in (1, 5, 10)) + "  (percent)")
    return 0


@cli_main("app.engine", interrupted="interrupted; the index is consistent, run again to resume", show=shown)
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "index":
            return _index(args)
        if args.command in ("search", "similar"):
            return _search(args)
        if args.command == "eval":
            return _eval(args)
        return _status(args)
    except sqlite3.DatabaseError as e:  # a reader met a damaged index; the writer repairs it on open
        raise StoreError(f"{args.command}: the index in {args.data_dir} is damaged ({e}); "
                         f"run `python -m app.engine index` to rebuild it") from e


if __name__ == "__main__":
    sys.exit(main())
