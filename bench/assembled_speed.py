"""Encoder speed of the assembled teacher and its MoTIS student, side by side: eager PyTorch or ExecuTorch XNNPACK fp32.

    python -m bench.assembled_speed [--runtime eager|executorch] [--threads 1] [--repeats 10] [--json] [--out FILE]

Same process, same inputs, the four encoders timed in turns (teacher image, student image, teacher text,
student text, then again) after a warm-up; best and median of ``--repeats``: the ratio is what to read on
a shared machine. Images at each tower's size (Lite2 260 px, Lite0 224 px), random pixels; texts are
clip-art-like captions, padded to the longest in the batch (the token count is in the output).

Models: the pretrained towers (EfficientNet-Lite2 and -Lite0 ImageNet weights, MiniLM-L6) with a randomly
initialised shared encoder (seed 0) and the student made from that teacher (``student_from_teacher``):
no trained run is read, because speed does not depend on the trained values. ``--runtime executorch``
lowers both with ``export.assembled.lower_assembled_executorch`` (what the student's bundle ships: L2
norm inside, text at its actual length), one program per tower and batch, and runs them with
``executorch.runtime`` with the XNNPACK threadpool at ``--threads``.
Figures: bench/results/assembled_speed_executorch.json.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

CAPTIONS = ["red apple on a tree", "sailing boat on the sea with a lighthouse", "cartoon cat", "house",
            "a man riding a bicycle in the park", "blue star", "vintage car drawing", "flower bouquet in a vase"]
ROLES = ("teacher", "student")
TOWERS = ("image", "text")
TARGET_SPEEDUP = 1.8  # issue 15: each student encoder >= 1.8x the teacher's on ExecuTorch XNNPACK fp32
RUNTIMES = {"eager": "eager PyTorch", "executorch": "ExecuTorch XNNPACK fp32 (executorch.runtime)"}
CONTEXT_LENGTH = 64  # the text programs' longest input (the student's tokenizer max_length)
Inputs = dict[str, dict[str, torch.Tensor]]  # role -> {"image": pixels, "text": ids}
Calls = dict[str, Callable[[], Any]]  # "<role> <tower>" -> one encoder call


@dataclass
class ModelPair:
    """The teacher and the student compared, each one's image size, and what their weights are."""

    models: dict[str, nn.Module]  # "teacher" / "student" -> encode_image / encode_text / tokenizer
    image_size: dict[str, int]
    weights: str


def conse_head(width: int):
    """A ConSE channel as the pipeline gives both models (its class rows' values do not change the speed)."""
    from compression.models.assembled import ConseChannel, ConseHead

    return ConseHead(ConseChannel(), torch.nn.functional.normalize(torch.randn(1000, width), dim=-1))


def build_models() -> ModelPair:
    """Pretrained towers + an untrained shared encoder (seed 0), and the student initialised from it."""
    from compression.models.assembled import AssembledTeacher, SharedEncoder, SharedEncoderConfig
    from compression.models.assembled_student import AssembledStudentConfig, student_from_teacher
    from compression.models.pretrained_towers import (
        EFFICIENTNET_LITE,
        create_efficientnet_lite,
        create_minilm,
    )

    torch.manual_seed(0)
    text = create_minilm()
    teacher = AssembledTeacher(create_efficientnet_lite("efficientnet_lite2"), text, SharedEncoder(SharedEncoderConfig()),
                               conse_head(text.model.config.hidden_size)).eval()
    lite0 = create_efficientnet_lite("efficientnet_lite0")
    student = student_from_teacher(teacher, lite0, AssembledStudentConfig()).eval()
    student.conse = conse_head(text.model.config.hidden_size)
    sizes = {"teacher": EFFICIENTNET_LITE["efficientnet_lite2"][3], "student": EFFICIENTNET_LITE["efficientnet_lite0"][3]}
    return ModelPair({"teacher": teacher, "student": student}, sizes,
                     "pretrained towers (EfficientNet-Lite2/Lite0 ImageNet, MiniLM-L6), shared encoder untrained "
                     "(seed 0), student initialised from that teacher, both with the ConSE channel (random class "
                     "rows); speed does not depend on trained values")


def time_in_turns(calls: Calls, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of each call, ``repeats`` rounds of every call in turn after ``warmup`` untimed rounds, so
    that a change in the machine's load falls on all of them alike."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def eager_calls(pair: ModelPair, inputs: Inputs) -> Calls:
    """"<role> <tower>" -> a call of the model's own ``encode_image`` / ``encode_text(normalize=True)``."""
    calls = {}
    for role in ROLES:
        model = pair.models[role]
        calls[f"{role} image"] = lambda m=model, x=inputs[role]["image"]: m.encode_image(x, normalize=True)
        calls[f"{role} text"] = lambda m=model, x=inputs[role]["text"]: m.encode_text(x, normalize=True)
    return calls


def program_path(pte_dir: Path, role: str, tower: str, batch: int) -> Path:
    return pte_dir / f"{role}_{tower}_xnnpack_fp32_b{batch}.pte"


def ensure_programs(pair: ModelPair, batch: int, pte_dir: Path) -> dict[str, dict[str, Any]]:
    """Lower each model's image and text programs at ``batch`` into ``pte_dir`` unless both are there
    already; returns "<role>" -> {"lowering_s" (None: reused), "mb", delegate facts}."""
    from export.assembled import lower_assembled_executorch

    out = {}
    for role in ROLES:
        paths = {tower: program_path(pte_dir, role, tower, batch) for tower in TOWERS}
        facts: dict[str, Any] = {"lowering_s": None}
        if not all(p.is_file() for p in paths.values()):
            logger.info("lowering the %s's programs at batch %d (minutes on a busy CPU)", role, batch)
            t0 = time.perf_counter()
            programs, lowered = lower_assembled_executorch(pair.models[role], pair.image_size[role],
                                                           CONTEXT_LENGTH, batch)
            facts = {"lowering_s": round(time.perf_counter() - t0, 1),
                     **{f"{tower}_xnnpack_delegates": lowered[tower]["xnnpack_delegates"] for tower in TOWERS},
                     **{f"{tower}_portable_operators": lowered[tower]["portable_operators"] for tower in TOWERS}}
            for tower in TOWERS:
                paths[tower].write_bytes(programs[tower])
        facts.update({f"{tower}_mb": round(paths[tower].stat().st_size / 1e6, 2) for tower in TOWERS})
        out[role] = facts
    return out


def executorch_calls(inputs: Inputs, batch: int, pte_dir: Path) -> Calls:
    """"<role> <tower>" -> one ``execute`` of that .pte's forward, loaded with ``executorch.runtime``."""
    from executorch.runtime import Runtime

    runtime, calls = Runtime.get(), {}
    for role in ROLES:
        for tower in TOWERS:
            method = runtime.load_program(program_path(pte_dir, role, tower, batch)).load_method("forward")
            calls[f"{role} {tower}"] = lambda m=method, x=inputs[role][tower].contiguous(): m.execute([x])[0]  # noqa: B008 (binds this tower's input)
    return calls


def set_threads(runtime: str, threads: int) -> dict[str, int | None]:
    """PyTorch's intra-op threads and, for ExecuTorch, its shared (XNNPACK) threadpool."""
    torch.set_num_threads(threads)
    out: dict[str, int | None] = {"torch": torch.get_num_threads(), "xnnpack_threadpool": None}
    if runtime == "executorch":
        from executorch.extension.pybindings.portable_lib import (
            _threadpool_get_thread_count,
            _unsafe_reset_threadpool,
        )

        _unsafe_reset_threadpool(threads)
        out["xnnpack_threadpool"] = int(_threadpool_get_thread_count())
    return out


def make_inputs(pair: ModelPair, batch: int) -> Inputs:
    """role -> {"image": (batch, 3, S, S) seeded pixels, "text": (batch, L) ids of CAPTIONS[:batch]}."""
    gen = torch.Generator().manual_seed(batch)
    ids = pair.models["teacher"].tokenize(CAPTIONS[:batch], max_length=CONTEXT_LENGTH)
    return {role: {"image": torch.rand(batch, 3, pair.image_size[role], pair.image_size[role], generator=gen) * 2 - 1,
                   "text": ids} for role in ROLES}


def parity(pair: ModelPair, inputs: Inputs, calls: Calls) -> dict[str, float]:
    """"<role> <tower>" -> the lowest cosine between the program's and the eager model's embeddings."""
    want = eager_calls(pair, inputs)
    with torch.inference_mode():
        return {name: round(float((calls[name]() * want[name]()).sum(1).min()), 7) for name in calls}


def speed_row(times: dict[str, list[float]], tokens: int) -> dict[str, dict[str, float]]:
    """"image_ms" / "text_ms" -> teacher, student (best), speedup (best / best), the same for medians."""
    row = {}
    for tower in TOWERS:
        t, s = times[f"teacher {tower}"], times[f"student {tower}"]
        row[f"{tower}_ms"] = {
            "teacher": 1e3 * min(t), "student": 1e3 * min(s), "speedup": min(t) / min(s),
            "teacher_median": 1e3 * statistics.median(t), "student_median": 1e3 * statistics.median(s),
            "speedup_median": statistics.median(t) / statistics.median(s),
        }
    row["text_ms"]["tokens"] = tokens
    return row


def measure(pair: ModelPair, runtime: str, batches: list[int], warmup: int, repeats: int,
            pte_dir: Path | None) -> dict[str, Any]:
    """The rows of the table ("batch B" -> speed_row), and for ExecuTorch the programs and their parity."""
    rows, programs, cos = {}, {}, {}
    for batch in batches:
        inputs = make_inputs(pair, batch)
        if runtime == "executorch":
            programs[f"batch {batch}"] = ensure_programs(pair, batch, pte_dir)
            calls = executorch_calls(inputs, batch, pte_dir)
            cos[f"batch {batch}"] = parity(pair, inputs, calls)
        else:
            calls = eager_calls(pair, inputs)
        logger.info("timing batch %d: %d warm-up + %d rounds of 4 encoders", batch, warmup, repeats)
        with torch.inference_mode():
            times = time_in_turns(calls, warmup, repeats)
        rows[f"batch {batch}"] = speed_row(times, int(inputs["teacher"]["text"].shape[1]))
    out: dict[str, Any] = {"rows": rows}
    if runtime == "executorch":
        out.update(programs=programs, parity_cos_min=cos)
    return out


def markdown_table(rows: dict[str, dict[str, Any]]) -> str:
    lines = ["| batch | tower | teacher ms | student ms | speed-up (best) | speed-up (median) |",
             "|---|---|---|---|---|---|"]
    for b, r in rows.items():
        for tower in TOWERS:
            m = r[f"{tower}_ms"]
            label = f"text ({m['tokens']} tokens)" if tower == "text" else tower
            lines.append(f"| {b.split()[1]} | {label} | {m['teacher']:.1f} | {m['student']:.1f} | "
                         f"{m['speedup']:.2f}x | {m['speedup_median']:.2f}x |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.assembled_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", choices=tuple(RUNTIMES), default="eager",
                   help="eager: the PyTorch models; executorch: their XNNPACK fp32 programs, run by "
                   "executorch.runtime (lowering takes minutes; see --keep) (default: eager)")
    p.add_argument("--threads", type=int, default=1, help="PyTorch and XNNPACK threads (default: 1)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes to time (default: 1 8)")
    p.add_argument("--repeats", type=int, default=10,
                   help="timed rounds of the four encoders; best and median are reported (default: 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default: 2)")
    p.add_argument("--keep", type=Path, default=None,
                   help="executorch: folder for the .pte files, reused when present (delete it after changing "
                   "the models); default: a temporary folder removed at the end")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--out", type=Path, default=None, help="also write the result as JSON to this file")
    args = p.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0 or min(args.batches) < 1:
        p.error("--threads, --repeats and --batches must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    import json

    from bench.common import atomic_write_json, machine_facts

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    threads = set_threads(args.runtime, args.threads)
    pair = build_models()
    load_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="assembled-speed-") as tmp:
        pte_dir = args.keep or Path(tmp)
        pte_dir.mkdir(parents=True, exist_ok=True)
        measured = measure(pair, args.runtime, args.batches, args.warmup, args.repeats, pte_dir)
    result = {
        "runtime": RUNTIMES[args.runtime],
        "command": "python -m bench.assembled_speed " + " ".join(argv if argv is not None else sys.argv[1:]),
        "threads": threads, "warmup": args.warmup, "repeats": args.repeats,
        "timing": "the four encoders in turns, same process; ms = best of the repeats, *_median = median",
        "models": pair.weights, "image_size": pair.image_size, "captions": CAPTIONS,
        "target_speedup": TARGET_SPEEDUP,
        **measured,
        "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
        "machine": machine_facts(args.threads, quick=False),
    }
    result["meets_target"] = {f"{b} {tower}": r[f"{tower}_ms"]["speedup"] >= TARGET_SPEEDUP
                              for b, r in result["rows"].items() for tower in TOWERS}
    if args.out:
        atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2) if args.json else markdown_table(result["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
