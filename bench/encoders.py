"""Encoders section: teacher and student towers at the paper's real sizes, in PyTorch and ExecuTorch/XNNPACK.

    python -m bench.encoders --quick --out /tmp/bench_enc

What it measures, with random weights (speed does not depend on them):

* the teacher: open_clip CLIP ViT-B/32, image tower and 12-layer text tower;
* the paper's students: ViT-S/16 image encoder, 6- and 4-layer text towers cut from the teacher's
  (``compression.models.student``), and other timm backbones worth offering as an image student;
* for each: parameters, GFLOPs per item (``FlopCounterMode`` with the attention written out, so that
  it is counted), disk size (fp32 and int8 from the real ExecuTorch programs, fp16 from the parameter
  bytes), and items/s at batch 1 and a larger batch in PyTorch eager and ExecuTorch XNNPACK fp32/int8;
* the student/teacher speed ratio of each student per runtime, against the paper's claims;
* texts/s at typical query lengths and at the full context, and the proof that encoding a query at
  its actual length gives the embedding of the query padded to the context.

ExecuTorch programs are lowered with ``export.executorch.lower_to_executorch``, several at a time in
worker processes (lowering is single-threaded Python), and executed with ``executorch.runtime`` as the
app does. Image programs are exported at batch 1 (as deployed) and, in the full run, at the larger
batch too; text programs as deployed: batch 1 with a dynamic length. int8 programs are calibrated on
random inputs, which changes their accuracy but not their speed.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bench.common import (
    OtherCpu,
    atomic_write_bytes,
    atomic_write_json,
    time_calls,
)
from bench.encoder_programs import (
    collect_exports,
    executorch_call,
    export_jobs,
    load_method,
    start_exports,
    xnnpack_threads,
)
from bench.encoder_specs import (
    CANDIDATE_IMAGES,
    PAPER_SPEEDUP,
    RUNTIMES,
    SEED,
    STUDENT_IMAGE,
    STUDENT_TEXTS,
    TEACHER_IMAGE,
    TEACHER_TEXT,
    Settings,
    settings,
)
from bench.encoder_towers import (
    BuiltEncoder,
    build_all,
    compare_embeddings,
    disk_sizes,
    length_invariance,
    random_token_sequences,
    teacher_facts,
    text_lengths,
    token_batch,
)
from bench.encoders_report import plot, to_markdown
from formats.cli import cli_main

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------------


def time_group(fns: dict[str, Callable], x: torch.Tensor, s: Settings) -> dict[str, dict]:
    """Items/s of each ``fn(x)``: ``s.rounds`` rounds, the encoders interleaved in each (machine drift
    hits them alike); a round's figure is its median call, the result the median of the rounds."""
    per_round: dict[str, list[float]] = {k: [] for k in fns}
    calls = dict.fromkeys(fns, 0)
    with torch.inference_mode():
        for r in range(s.rounds):
            for key, fn in fns.items():
                t = time_calls(fn, [x], warmup=2 if r == 0 else 0, budget_s=s.budget_s,
                               min_repeats=s.min_calls)
                per_round[key].append(t["p50_ms"])
                calls[key] += t["repeats"]
    out = {}
    for key, ms in per_round.items():
        med = statistics.median(ms)
        out[key] = {"items_per_s": x.shape[0] * 1e3 / med, "ms_per_call": med, "rounds": len(ms),
                    "calls": calls[key], "spread": (max(ms) - min(ms)) / med}
    return out


def measurements_of(group: dict[str, dict], runtime: str, batch: int, length: int | None) -> list[dict]:
    """Flat records of a ``time_group`` result, one per encoder."""
    return [{"encoder": k, "runtime": runtime, "batch": batch, "length": length, **v}
            for k, v in group.items()]


def time_images(built: dict[str, BuiltEncoder], methods: dict, s: Settings, size: int) -> list[dict]:
    """Eager at batch 1 and ``s.batch``; each ExecuTorch program at its own batch."""
    gen = torch.Generator().manual_seed(SEED)
    out = []
    for batch in (1, s.batch):
        x = torch.randn(batch, 3, size, size, generator=gen)
        eager = {k: b.eager for k, b in built.items() if b.spec.kind == "image"}
        logger.info("timing image encoders, eager, batch %d", batch)
        out += measurements_of(time_group(eager, x, s), "eager", batch, None)
        for precision in ("fp32", "int8"):
            fns = {k: executorch_call(m) for k, m in methods.get((precision, batch, "image"), {}).items()}
            if fns:
                logger.info("timing image encoders, ExecuTorch %s, batch %d", precision, batch)
                out += measurements_of(time_group(fns, x, s), f"executorch_{precision}", batch, None)
    return out


def time_texts(built: dict[str, BuiltEncoder], methods: dict, s: Settings) -> list[dict]:
    """Eager at batch 1 and ``s.batch``, ExecuTorch at batch 1, each at every length of ``text_lengths``."""
    texts = {k: b for k, b in built.items() if b.spec.kind == "text"}
    first = next(iter(texts.values()))
    gen = torch.Generator().manual_seed(SEED)
    out = []
    for batch in (1, s.batch):
        logger.info("timing text encoders at batch %d", batch)
        for length in text_lengths(first.context_length):
            x = token_batch(batch, length, first.eot_id, gen)
            eager = time_group({k: b.eager for k, b in texts.items()}, x, s)
            out += measurements_of(eager, "eager", batch, length)
            for precision in ("fp32", "int8"):
                fns = {k: executorch_call(m) for k, m in methods.get((precision, batch, "text"), {}).items()}
                if fns:
                    out += measurements_of(time_group(fns, x, s), f"executorch_{precision}", batch, length)
    return out


def speed_ratios(measurements: Sequence[dict], encoders: dict[str, dict]) -> list[dict[str, Any]]:
    """student/teacher items/s for every student and candidate, per runtime, batch and length."""
    teacher_of = {e["kind"]: k for k, e in encoders.items() if e["role"] == "teacher"}
    rate = {(m["encoder"], m["runtime"], m["batch"], m["length"]): m["items_per_s"] for m in measurements}
    ratios = []
    for (key, runtime, batch, length), value in rate.items():
        enc = encoders[key]
        ref = rate.get((teacher_of.get(enc["kind"]), runtime, batch, length))
        if enc["role"] == "teacher" or not ref:
            continue
        ratio = value / ref
        claim = PAPER_SPEEDUP[enc["kind"]]
        ratios.append({"student": key, "kind": enc["kind"], "runtime": runtime, "batch": batch,
                       "length": length, "ratio": ratio, "paper": claim, "reaches_paper": ratio >= claim,
                       "faster": ratio > 1.0})
    return ratios


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------


def skipped_parts(s: Settings) -> list[str]:
    skipped = []
    if not s.candidates_in_executorch:
        skipped.append("ExecuTorch programs of the candidate image backbones (measured in eager only)")
    missing = sorted({t.text_layers for t in STUDENT_TEXTS} - set(s.text_layers_in_executorch))
    if missing:
        layers = ", ".join(map(str, missing))
        skipped.append(f"ExecuTorch programs of the {layers}-layer text student (eager only)")
    if not s.int8:
        skipped.append("ExecuTorch int8 programs")
    if not s.executorch_batch:
        skipped.append(f"ExecuTorch image programs at batch {s.batch} (ExecuTorch measured at batch 1 only)")
    return skipped

def _proof_sequences(built: dict[str, BuiltEncoder], s: Settings) -> list[torch.Tensor]:
    first = next(b for b in built.values() if b.spec.kind == "text")
    return random_token_sequences(s.invariance_sequences, first.context_length, first.eot_id,
                                  torch.Generator().manual_seed(SEED))


def eager_length_invariance(built: dict[str, BuiltEncoder], s: Settings) -> list[dict[str, Any]]:
    """``length_invariance`` of every text encoder in PyTorch, on the same random sequences."""
    seqs = _proof_sequences(built, s)
    return [{"encoder": k, "runtime": "eager",
             **length_invariance(b.eager, seqs, b.context_length, b.full_context)}
            for k, b in built.items() if b.spec.kind == "text"]


def executorch_proofs(
    built: dict[str, BuiltEncoder], methods: dict, s: Settings
) -> tuple[list[dict], dict[str, dict]]:
    """Length invariance of each text program, and each program's agreement with its eager encoder."""
    seqs = _proof_sequences(built, s)
    gen = torch.Generator().manual_seed(SEED + 1)
    invariance, agreement = [], {}
    for (precision, batch, kind), progs in methods.items():
        for key, method in progs.items():
            b, run = built[key], executorch_call(method)
            if kind == "text":
                invariance.append({"encoder": key, "runtime": f"executorch_{precision}",
                                   **length_invariance(run, seqs, b.context_length)})
                inputs = seqs[:8]
            else:
                inputs = [torch.randn(batch, 3, b.image_size, b.image_size, generator=gen)]
            with torch.inference_mode():
                pairs = [(run(x), b.eager(x)) for x in inputs]
            agreement[f"{key}_xnnpack_{precision}_b{batch}"] = compare_embeddings(pairs)
    return invariance, agreement


def run(quick: bool, work_dir: Path) -> dict[str, Any]:
    """Measure every encoder (see the module docstring); JSON-serialisable. .pte files go to ``work_dir``."""
    started = time.perf_counter()
    s = settings(quick)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)
    specs = [TEACHER_IMAGE, STUDENT_IMAGE, *CANDIDATE_IMAGES, TEACHER_TEXT, *STUDENT_TEXTS]
    jobs = export_jobs(specs, s, work_dir)
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    logger.info("lowering %d ExecuTorch programs in %d worker processes", len(jobs), workers)
    pool, futures = start_exports(jobs, workers)
    try:  # meanwhile (nothing is timed yet): build the encoders, count FLOPs, prove length invariance
        built, encoders = build_all(specs)
        invariance = eager_length_invariance(built, s)
        programs = collect_exports(jobs, futures)
    finally:
        pool.shutdown(cancel_futures=True)
    exported = time.perf_counter()
    methods: dict[tuple[str, int, str], dict[str, Any]] = {}
    for job in jobs:
        if "error" not in programs[job.name] and job.spec.key in built:
            group = methods.setdefault((job.precision, job.batch, job.spec.kind), {})
            group[job.spec.key] = load_method(job.path)
    for key, b in built.items():
        encoders[key]["disk"] = disk_sizes(b, encoders[key]["params"], programs)
    et_invariance, agreement = executorch_proofs(built, methods, s)
    invariance = sorted(invariance + et_invariance, key=lambda i: RUNTIMES.index(i["runtime"]))
    for name, stats in agreement.items():
        programs[name]["vs_eager"] = stats
    size, ctx = teacher_facts()["image_size"], teacher_facts()["context_length"]
    measured = time.perf_counter()
    with OtherCpu() as other:
        measurements = time_images(built, methods, s, size) + time_texts(built, methods, s)
    return {
        "section": "encoders",
        "quick": quick,
        "settings": {**asdict(s), "text_lengths": text_lengths(ctx), "image_size": size,
                     "context_length": ctx, "seed": SEED},
        "threads": {"torch": torch.get_num_threads(), "xnnpack_threadpool": xnnpack_threads(),
                    "export_workers": workers, "cores": os.cpu_count()},
        "other_cpu_during_timing": other.as_dict(),
        "weights": "random (speed does not depend on the weights)",
        "int8_calibration": f"{s.calibration} random inputs per program (speed does not depend on them)",
        "notes": [
            ("ExecuTorch text programs are exported as deployed: batch 1 with a dynamic length (2 to the "
             "context), so text at a larger batch is measured in eager only (the app encodes one query at a "
             "time)."),
            ("Image programs have a fixed batch; eager image encoders include the L2 normalisation of the "
             "exported wrapper (negligible)."),
            "GFLOPs count a multiply-add as 2 FLOPs, at batch 1 (text: at each length).",
        ],
        "paper_speedup": PAPER_SPEEDUP,
        "skipped": skipped_parts(s),
        "encoders": encoders,
        "programs": programs,
        "measurements": measurements,
        "ratios": speed_ratios(measurements, {k: v for k, v in encoders.items() if "error" not in v}),
        "length_invariance": invariance,
        "seconds": {"export": exported - started, "proofs": measured - exported,
                    "timing": time.perf_counter() - measured, "total": time.perf_counter() - started},
    }



# ------------------------------------------------------------------------------------------------
# standalone
# ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.encoders",
        description="Benchmark the teacher and student encoders at the paper's real sizes (random "
        "weights) in PyTorch eager and ExecuTorch XNNPACK; write encoders.json, encoders.md and PNG plots.",
    )
    p.add_argument("--quick", action="store_true",
                   help="a few minutes: teacher vs ViT-S/16 and 12- vs 6-layer text in eager and ExecuTorch "
                   "fp32 at batch 1; the other backbones and the 4-layer text in eager only; no int8 "
                   "(default: the full run, up to ~20 minutes on 2 idle cores)")
    p.add_argument("--out", type=Path, default=Path("bench/results"),
                   help="folder for encoders.json, encoders.md and the plots (default: bench/results)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="folder for the .pte programs (default: OUT/encoders_programs, removed afterwards)")
    p.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    return p.parse_args(argv)


@cli_main("bench.encoders")
def main(argv: list[str] | None = None) -> int:
    import shutil

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for name in ("bench", __name__):  # this section's progress; the libraries' INFO chatter stays off
        logging.getLogger(name).setLevel(args.log_level.upper())
    args.out.mkdir(parents=True, exist_ok=True)
    work_dir = args.work_dir or args.out / "encoders_programs"
    try:
        result = run(args.quick, work_dir)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    atomic_write_json(args.out / "encoders.json", result)
    atomic_write_bytes(args.out / "encoders.md", to_markdown(result).encode())
    for path in plot(result, args.out):
        logger.info("wrote %s", path)
    logger.info("wrote %s and %s in %.0f s", args.out / "encoders.json", args.out / "encoders.md",
                result["seconds"]["total"])
    print(json.dumps({k: round(v, 1) for k, v in result["seconds"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
