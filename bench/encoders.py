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
import copy
import json
import logging
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from bench.common import (
    OtherCpu,
    atomic_write_bytes,
    atomic_write_json,
    md_table,
    new_figure,
    other_cpu_sentence,
    save_figure,
    time_calls,
)

logger = logging.getLogger(__name__)

TEACHER_MODEL = "ViT-B-32"
SEED = 0  # every encoder is built right after torch.manual_seed(SEED): workers rebuild identical weights
PAPER_SPEEDUP = {"image": 1.5, "text": 2.8}  # student/teacher speed claimed by the paper (MoTIS)
QUERY_LENGTHS = (5, 8, 16)  # typical query lengths in tokens, <sot> and <eot> included
TYPICAL_QUERY = 8  # "a dog running on the beach": <sot> + 6 words + <eot>
MATCH_ATOL = 1e-4  # max |diff| of L2-normalised embeddings under which two encodings are the same
RUNTIMES = ("eager", "executorch_fp32", "executorch_int8")
RUNTIME_LABELS = {
    "eager": "PyTorch eager", "executorch_fp32": "ExecuTorch fp32", "executorch_int8": "ExecuTorch int8"
}


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder to measure; ``build_encoder`` turns it into modules (in any process, same weights)."""

    key: str  # result key: "teacher_image", a timm backbone name, "teacher_text", "student_text_6"
    kind: str  # "image" or "text"
    role: str  # "teacher", "student" (the paper's) or "candidate" (another image student worth offering)
    label: str
    backbone: str | None = None  # timm name of an image student
    text_layers: int | None = None  # how many of the teacher's text blocks a text encoder keeps
    teacher_model: str = TEACHER_MODEL

    @property
    def optional(self) -> bool:
        """A candidate's failures are recorded in the result; the others' stop the run."""
        return self.role == "candidate"


TEACHER_IMAGE = EncoderSpec("teacher_image", "image", "teacher", "ViT-B/32 (teacher)")
STUDENT_IMAGE = EncoderSpec("vit_small_patch16_224", "image", "student", "ViT-S/16 (paper's student)",
                            backbone="vit_small_patch16_224")
CANDIDATE_IMAGES = (
    EncoderSpec("vit_small_patch32_224", "image", "candidate", "ViT-S/32", backbone="vit_small_patch32_224"),
    EncoderSpec("mobilenetv4_conv_small", "image", "candidate", "MobileNetV4-S",
                backbone="mobilenetv4_conv_small"),
    EncoderSpec("mobilenetv3_large_100", "image", "candidate", "MobileNetV3-L",
                backbone="mobilenetv3_large_100"),
    EncoderSpec("efficientvit_b0", "image", "candidate", "EfficientViT-B0", backbone="efficientvit_b0"),
)
TEACHER_TEXT = EncoderSpec("teacher_text", "text", "teacher", "12-layer text (teacher)", text_layers=12)
STUDENT_TEXTS = (
    EncoderSpec("student_text_6", "text", "student", "6-layer text (paper's student)", text_layers=6),
    EncoderSpec("student_text_4", "text", "student", "4-layer text (student)", text_layers=4),
)


@dataclass(frozen=True)
class Settings:
    """How much a run measures; ``settings(quick)`` gives the two presets."""

    batch: int  # the larger batch (batch 1 is always measured)
    rounds: int  # timed rounds, encoders of a group interleaved; the median of the rounds is reported
    budget_s: float  # seconds of calls per encoder per round (at least ``min_calls``)
    min_calls: int
    invariance_sequences: int  # random token sequences of the length-invariance proof
    calibration: int  # random samples int8 programs are calibrated on
    candidates_in_executorch: bool  # export the candidate image backbones too (else eager only)
    int8: bool  # export int8 programs
    executorch_batch: bool  # export image programs at ``batch`` too (else ExecuTorch at batch 1 only)
    text_layers_in_executorch: tuple[int, ...]  # student text towers exported (the teacher's always is)


def settings(quick: bool) -> Settings:
    if quick:  # ~2 minutes on 2 idle cores: lowering the big towers (30-60 s each) dominates
        return Settings(batch=8, rounds=3, budget_s=0.1, min_calls=2, invariance_sequences=32, calibration=8,
                        candidates_in_executorch=False, int8=False, executorch_batch=False,
                        text_layers_in_executorch=(6,))
    return Settings(batch=16, rounds=5, budget_s=0.5, min_calls=3, invariance_sequences=100, calibration=32,
                    candidates_in_executorch=True, int8=True, executorch_batch=True,
                    text_layers_in_executorch=(6, 4))


# ------------------------------------------------------------------------------------------------
# the encoders
# ------------------------------------------------------------------------------------------------


@dataclass
class BuiltEncoder:
    """An encoder ready to time: ``eager`` is the project's own forward, ``export_module`` what is lowered."""

    spec: EncoderSpec
    eager: Callable[[torch.Tensor], torch.Tensor]  # image (B, 3, S, S) or ids (B, L) -> (B, D)
    export_module: nn.Module  # Image/TextEncoderForExport: (B, ...) -> (B, D), L2-normalised
    image_size: int | None = None
    context_length: int | None = None
    eot_id: int | None = None
    layer_ids: list[int] | None = None  # teacher text blocks kept (text)
    full_context: Callable | None = None  # text: the model's own full-context forward, if not ``eager``


def build_teacher(model_name: str = TEACHER_MODEL) -> nn.Module:
    """The teacher CLIP with random weights, frozen, identical in every process (seeded)."""
    from compression.models.teacher import create_teacher, freeze

    torch.manual_seed(SEED)
    return freeze(create_teacher(model_name, pretrained=None))


def teacher_facts(model_name: str = TEACHER_MODEL) -> dict[str, int]:
    """embed_dim, image_size and context_length of an open_clip architecture, without building it."""
    import open_clip

    from compression.models.teacher import register_model_configs

    register_model_configs()
    cfg = open_clip.get_model_config(model_name)
    size = cfg["vision_cfg"]["image_size"]
    return {"embed_dim": cfg["embed_dim"], "image_size": size[0] if isinstance(size, (list, tuple)) else size,
            "context_length": cfg["text_cfg"].get("context_length", 77)}


def build_encoder(spec: EncoderSpec, teacher: nn.Module | None = None) -> BuiltEncoder:
    """The modules of ``spec`` with random weights (seeded: the same in every process), in eval mode.

    Text towers are ``StudentTextEncoder.from_teacher`` copies of the teacher's blocks; the teacher's own
    text tower is timed eagerly through ``encode_text_at_length`` (open_clip's ``encode_text`` is its
    full-context reference) and exported as the same wrapper with all its blocks. Every image encoder
    takes the teacher's image size.
    """
    from compression.models.student import StudentImageEncoder, StudentTextEncoder, select_text_layers
    from compression.models.teacher import text_encoder
    from export.wrappers import ImageEncoderForExport, TextEncoderForExport

    facts = teacher_facts(spec.teacher_model)
    if spec.kind == "image" and spec.role != "teacher":
        torch.manual_seed(SEED)
        module = ImageEncoderForExport(StudentImageEncoder(spec.backbone, facts["embed_dim"])).eval()
        return BuiltEncoder(spec, module, module, image_size=facts["image_size"])
    teacher = teacher if teacher is not None else build_teacher(spec.teacher_model)
    if spec.kind == "image":
        module = ImageEncoderForExport(teacher.visual).eval()
        return BuiltEncoder(spec, module, module, image_size=facts["image_size"])
    if spec.kind != "text":
        raise ValueError(f"encoder {spec.key!r}: unknown kind {spec.kind!r} (image or text)")
    n_teacher = len(teacher.transformer.resblocks)
    is_teacher = spec.role == "teacher"
    layer_ids = list(range(n_teacher)) if is_teacher else select_text_layers(n_teacher, spec.text_layers)
    text = StudentTextEncoder.from_teacher(teacher, layer_ids).eval()
    eager = text_encoder(teacher) if is_teacher else text
    return BuiltEncoder(spec, eager, TextEncoderForExport(text).eval(), context_length=text.context_length,
                        eot_id=text.arch["vocab_size"] - 1, layer_ids=layer_ids,
                        full_context=teacher.encode_text if is_teacher else None)


def count_flops(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> int:
    """FLOPs of ``fn(x)`` (a multiply-add is 2) by ``FlopCounterMode``.

    PyTorch's fused attention kernels (nn.MultiheadAttention's fast path, CPU flash SDPA) are not
    counted by the flop counter, so both are switched off for the count: the math path is counted.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            fn(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return int(counter.get_total_flops())


def architecture(built: BuiltEncoder) -> dict[str, Any]:
    """Tokens, width and depth of a transformer (what explains its speed), else the backbone's family."""
    if built.spec.kind == "text":
        enc = built.export_module
        return {"family": "transformer", "width": int(enc.positional_embedding.shape[1]),
                "depth": len(enc.resblocks), "layer_ids": built.layer_ids,
                "vocab": int(enc.token_embedding.num_embeddings)}
    visual = built.export_module.visual
    if built.spec.role == "teacher":  # open_clip VisionTransformer
        grid = visual.grid_size
        return {"family": "vit", "tokens": grid[0] * grid[1] + 1, "width": visual.transformer.width,
                "depth": len(visual.transformer.resblocks)}
    backbone = visual.backbone
    if hasattr(backbone, "patch_embed") and hasattr(backbone, "blocks"):  # timm VisionTransformer
        return {"family": "vit", "tokens": backbone.patch_embed.num_patches + backbone.num_prefix_tokens,
                "width": backbone.embed_dim, "depth": len(backbone.blocks)}
    return {"family": "timm " + type(backbone).__name__}


# ------------------------------------------------------------------------------------------------
# inputs and the length-invariance proof
# ------------------------------------------------------------------------------------------------


def text_lengths(context_length: int) -> list[int]:
    """The lengths texts are timed at: the typical query lengths below the context, then the full context."""
    return [n for n in QUERY_LENGTHS if n < context_length] + [context_length]


def token_batch(batch: int, length: int, eot_id: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, length) int64 ids ``<sot> w ... w <eot>``: random words, EOT (the highest id) last."""
    if length < 2:
        raise ValueError(f"a token sequence holds at least <sot> and <eot>; got length {length}")
    ids = torch.randint(1, eot_id - 1, (batch, length), generator=generator)
    ids[:, 0] = eot_id - 1  # open_clip: <start_of_text> = EOT - 1
    ids[:, -1] = eot_id
    return ids


def random_token_sequences(
    n: int, context_length: int, eot_id: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """``n`` sequences (1, L_i), L_i uniform in [2, context_length], each ending with EOT (cut after it)."""
    lengths = torch.randint(2, context_length + 1, (n,), generator=generator).tolist()
    return [token_batch(1, length, eot_id, generator) for length in lengths]


def pad_tokens(tokens: torch.Tensor, length: int) -> torch.Tensor:
    """(B, L) ids zero-padded on the right to (B, length), as the tokenizer pads to the context."""
    return F.pad(tokens, (0, length - tokens.shape[1]))


def compare_embeddings(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Max |a - b| and min cosine over pairs of (B, D) embeddings, each L2-normalised first."""
    max_diff, min_cos = 0.0, 1.0
    for a, b in pairs:
        a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
        max_diff = max(max_diff, float((a - b).abs().max()))
        min_cos = min(min_cos, float((a * b).sum(-1).min()))
    return {"max_abs_diff": max_diff, "min_cos": min_cos}


@torch.inference_mode()
def length_invariance(
    encode: Callable[[torch.Tensor], torch.Tensor],
    sequences: Sequence[torch.Tensor],
    context_length: int,
    full_context: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Encode each (1, L) sequence at its actual length, and zero-padded to ``context_length`` (by
    ``full_context``, default ``encode``); compare.

    ``matches`` is True when no L2-normalised embedding moved by more than MATCH_ATOL: then encoding
    at the actual length is the same computation as the full context, only cheaper.
    """
    full = full_context or encode
    stats = compare_embeddings((encode(s), full(pad_tokens(s, context_length))) for s in sequences)
    lengths = [int(s.shape[1]) for s in sequences]
    return {"sequences": len(sequences), "lengths": [min(lengths), max(lengths)], **stats,
            "matches": stats["max_abs_diff"] <= MATCH_ATOL}


# ------------------------------------------------------------------------------------------------
# ExecuTorch programs (lowered in worker processes)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportJob:
    """One .pte to write: an encoder at a precision and a fixed batch (text: batch 1, dynamic length)."""

    spec: EncoderSpec
    precision: str  # "fp32" or "int8"
    batch: int
    out_dir: str
    calibration: int  # random samples for int8

    @property
    def name(self) -> str:
        return f"{self.spec.key}_xnnpack_{self.precision}_b{self.batch}"

    @property
    def path(self) -> Path:
        return Path(self.out_dir) / f"{self.name}.pte"


def lower_encoder(
    built: BuiltEncoder, precision: str, batch: int, calibration: int
) -> tuple[bytes, dict[str, Any]]:
    """(.pte bytes, facts) of ``built``'s export module, as ``export.executorch.build_programs`` lowers it.

    image: (batch, 3, S, S) float32 -> (batch, D). text: (1, L) ids, 2 <= L <= context -> (1, D).
    int8: PT2E (``export.xnnpack_int8``), calibrated on ``calibration`` random inputs.
    """
    from export.executorch import lower_to_executorch
    from export.wrappers import image_example, text_dynamic_shapes, text_example

    what = f"{built.spec.key} {precision} batch {batch}"
    module = built.export_module
    if built.spec.kind == "image":
        example_1 = image_example(built.image_size)
        example, dynamic = (example_1[0].expand(batch, -1, -1, -1).contiguous(),), None
    else:
        if batch != 1:
            raise ValueError(f"{what}: text programs are exported at batch 1 (dynamic length), as deployed")
        example_1 = example = text_example(built.context_length, built.eot_id)
        dynamic = text_dynamic_shapes(built.context_length)
    if precision == "int8":
        from export.xnnpack_int8 import Int8Embedding, image_batches, quantize_pt2e, text_batches

        gen = torch.Generator().manual_seed(SEED)
        module = copy.deepcopy(module)
        if built.spec.kind == "image":
            size = built.image_size
            batches = image_batches(torch.randn(calibration, 3, size, size, generator=gen), batch_size=8)
        else:
            module.token_embedding = Int8Embedding(module.token_embedding)
            seqs = random_token_sequences(calibration, built.context_length, built.eot_id, gen)
            batches = text_batches(seqs)
        module = quantize_pt2e(module, example_1, dynamic, batches, what)
    elif precision != "fp32":
        raise ValueError(f"unknown precision {precision!r} (fp32 or int8)")
    return lower_to_executorch(module, example, dynamic, what)


def export_program(job: ExportJob) -> dict[str, Any]:
    """Worker: build, lower and write one program. Returns its facts, or ``{"error": ...}``."""
    from export.errors import first_line

    torch.set_num_threads(1)  # lowering is Python; the workers share the cores
    started = time.perf_counter()
    try:
        data, facts = lower_encoder(build_encoder(job.spec), job.precision, job.batch, job.calibration)
    except Exception as e:  # noqa: BLE001 - timm, torch.export, PT2E and lowering raise all kinds of errors
        return {"error": f"{type(e).__name__}: {first_line(e)}", "export_s": time.perf_counter() - started}
    job.path.write_bytes(data)
    return {"file": job.path.name, "mb": len(data) / 1e6, "export_s": time.perf_counter() - started, **facts}


def export_jobs(specs: Sequence[EncoderSpec], s: Settings, out_dir: Path) -> list[ExportJob]:
    """The programs a run exports, the slowest to lower first (so that the workers finish together)."""
    jobs = []
    for spec in specs:
        if spec.role == "candidate" and not s.candidates_in_executorch:
            continue
        text_student = spec.kind == "text" and spec.role != "teacher"
        if text_student and spec.text_layers not in s.text_layers_in_executorch:
            continue
        batches = (1, s.batch) if spec.kind == "image" and s.executorch_batch else (1,)
        for precision in ("fp32", "int8") if s.int8 else ("fp32",):
            jobs += [ExportJob(spec, precision, b, str(out_dir), s.calibration) for b in batches]
    weight = {"teacher": 0, "student": 1, "candidate": 2}
    return sorted(jobs, key=lambda j: (j.precision != "int8", weight[j.spec.role], j.spec.kind != "text"))


def start_exports(jobs: Sequence[ExportJob], workers: int) -> tuple[ProcessPoolExecutor, dict[str, Future]]:
    """Submit every job to a pool of ``workers`` fresh processes (spawn: no forked torch threads)."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    return pool, {job.name: pool.submit(export_program, job) for job in jobs}


def collect_exports(jobs: Sequence[ExportJob], futures: dict[str, Future]) -> dict[str, dict[str, Any]]:
    """Wait for every program; a failure of an encoder that is not optional raises RuntimeError."""
    programs = {}
    for job in tqdm(jobs, desc="exporting ExecuTorch programs", disable=None):
        try:
            facts = futures[job.name].result()
        except Exception as e:  # noqa: BLE001 - a worker killed (memory): BrokenProcessPool and kin
            facts = {"error": f"{type(e).__name__}: {e}"}
        programs[job.name] = {"encoder": job.spec.key, "precision": job.precision, "batch": job.batch,
                              **facts}
        if "error" in facts:
            logger.warning("cannot export %s: %s", job.name, facts["error"])
            if not job.spec.optional:
                raise RuntimeError(f"ExecuTorch export of {job.name} failed: {facts['error']}")
        else:
            logger.info("exported %s: %.1f MB in %.0f s", job.name, facts["mb"], facts["export_s"])
    return programs


def load_method(path: Path):
    """The ``forward`` method of a .pte, loaded by ``executorch.runtime`` as export.runtimes does."""
    import executorch.kernels.quantized  # noqa: F401  registers quantized_decomposed kernels (int8 programs)
    from executorch.runtime import Runtime

    return Runtime.get().load_program(path).load_method("forward")


def executorch_call(method) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: method.execute([x.contiguous()])[0]


def xnnpack_threads() -> int | None:
    """Threads of ExecuTorch's shared threadpool (the XNNPACK delegate's), None if unknown."""
    try:
        from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count
    except ImportError:
        return None
    return int(_threadpool_get_thread_count())


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


def describe_encoder(built: BuiltEncoder) -> dict[str, Any]:
    """Parameters, GFLOPs per item and architecture of one encoder (``disk`` is added by ``disk_sizes``)."""
    from compression.models.student import count_parameters

    spec = built.spec
    if spec.kind == "image":
        flops = {"per_item": count_flops(built.eager, torch.zeros(1, 3, built.image_size, built.image_size))}
    else:
        gen = torch.Generator().manual_seed(SEED)
        lengths = text_lengths(built.context_length)
        flops = {str(n): count_flops(built.eager, token_batch(1, n, built.eot_id, gen)) for n in lengths}
        flops["per_item"] = flops[str(lengths[-1])]
    return {"label": spec.label, "kind": spec.kind, "role": spec.role, "backbone": spec.backbone,
            "text_layers": spec.text_layers, "params": count_parameters(built.export_module),
            "gflops": {k: v / 1e9 for k, v in flops.items()}, "architecture": architecture(built)}


def disk_sizes(built: BuiltEncoder, params: int, programs: dict[str, dict]) -> dict[str, Any]:
    """MB on disk: fp32 and int8 from the batch-1 .pte files where exported, fp16 from the parameter bytes."""
    from compression.report import disk_mb

    pte = {p["precision"]: p["mb"] for p in programs.values()
           if p["encoder"] == built.spec.key and p["batch"] == 1 and "mb" in p}
    disk = {"fp32_mb": pte.get("fp32"), "fp32_source": "ExecuTorch .pte (batch 1)",
            "fp16_mb": params * 2 / 1e6, "fp16_source": "parameter bytes (2 per parameter)",
            "int8_mb": pte.get("int8"),
            "int8_source": "ExecuTorch .pte (batch 1)" if "int8" in pte else "not exported"}
    if disk["fp32_mb"] is None:
        disk["fp32_mb"], disk["fp32_source"] = disk_mb(built.export_module), "safetensors of the fp32 weights"
    return disk


def build_all(specs: Sequence[EncoderSpec]) -> tuple[dict[str, BuiltEncoder], dict[str, dict]]:
    """Every encoder of ``specs`` (teacher built once) and its description (a forward pass counts its
    FLOPs). An optional encoder that fails either is described by its error instead, and left out."""
    from export.errors import first_line

    teachers = {spec.teacher_model for spec in specs}
    if len(teachers) != 1:
        raise ValueError(f"the encoders of one run share one teacher; got {sorted(teachers)}")
    teacher = build_teacher(teachers.pop())
    built, described = {}, {}
    for spec in specs:
        try:
            b = build_encoder(spec, teacher)
            described[spec.key] = describe_encoder(b)
        except Exception as e:  # an unknown backbone, or one that rejects the image size
            if not spec.optional:
                raise
            described[spec.key] = {"label": spec.label, "kind": spec.kind, "role": spec.role,
                                   "error": f"{type(e).__name__}: {first_line(e)}"}
            logger.warning("leaving out %s: %s", spec.key, described[spec.key]["error"])
            continue
        built[spec.key] = b
    return built, described


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
# report
# ------------------------------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 10 ** digits else f"{x:.0f}"


def _rate(ms: Sequence[dict], key: str, runtime: str, batch: int, length: int | None) -> float | None:
    for m in ms:
        if (m["encoder"], m["runtime"], m["batch"], m["length"]) == (key, runtime, batch, length):
            return m["items_per_s"]
    return None


def _ratio_cell(ratios: Sequence[dict], key: str, runtime: str, batch: int, length: int | None) -> str:
    """The student/teacher ratio of ``speed_ratios`` for one setting, as "1.23x" ("-" if not measured)."""
    for r in ratios:
        if (r["student"], r["runtime"], r["batch"], r["length"]) == (key, runtime, batch, length):
            return f"{r['ratio']:.2f}x"
    return "-"


def _settings_present(measurements: Sequence[dict], kind_keys: set[str]) -> list[tuple[str, int]]:
    """(runtime, batch) pairs measured for these encoders, in RUNTIMES order, batch 1 first."""
    present = {(m["runtime"], m["batch"]) for m in measurements if m["encoder"] in kind_keys}
    return sorted(present, key=lambda p: (RUNTIMES.index(p[0]), p[1]))


def _length_gain(measurements: Sequence[dict], key: str, runtime: str, short: int, full: int) -> float | None:
    """texts/s at ``short`` tokens over texts/s at ``full`` tokens, batch 1 (None if either is missing)."""
    fast, slow = _rate(measurements, key, runtime, 1, short), _rate(measurements, key, runtime, 1, full)
    return fast / slow if fast and slow else None


def _typical_length(lengths: Sequence[int]) -> int:
    return TYPICAL_QUERY if TYPICAL_QUERY in lengths else lengths[0]


def _size_table(encoders: dict[str, dict]) -> str:
    rows = []
    for e in encoders.values():
        if "error" in e:
            rows.append([e["label"], e["role"], "-", "-", "-", "-", "-", f"error: {e['error']}"])
            continue
        arch = e["architecture"]
        if "tokens" in arch:
            shape = f"{arch['tokens']} tokens x width {arch['width']} x {arch['depth']} blocks"
        elif e["kind"] == "text":
            shape = f"width {arch['width']} x {arch['depth']} blocks"
        else:
            shape = arch["family"]
        d = e["disk"]
        gflops = e["gflops"]["per_item"]
        rows.append([e["label"], e["role"], f"{e['params'] / 1e6:.1f}", _fmt(gflops), _fmt(d["fp32_mb"]),
                     _fmt(d["fp16_mb"]), _fmt(d["int8_mb"]), shape])
    head = ["encoder", "role", "params (M)", "GFLOPs/item", "fp32 MB", "fp16 MB", "int8 MB", "shape"]
    return md_table(head, rows)


def _image_tables(result: dict) -> tuple[str, str]:
    enc, ms = result["encoders"], result["measurements"]
    keys = [k for k, e in enc.items() if e["kind"] == "image" and "error" not in e]
    cols = _settings_present(ms, set(keys))
    head = [f"{RUNTIME_LABELS[r]} b{b}" for r, b in cols]
    rows = [[enc[k]["label"], *(_fmt(_rate(ms, k, r, b, None)) for r, b in cols)] for k in keys]
    speed = md_table(["encoder", *head], rows)
    teacher = next(k for k in keys if enc[k]["role"] == "teacher")
    ratio_rows = []
    for k in keys:
        if k == teacher:
            continue
        flops = enc[teacher]["gflops"]["per_item"] / enc[k]["gflops"]["per_item"]
        ratio_rows.append([enc[k]["label"], f"{flops:.2f}x",
                           *(_ratio_cell(result["ratios"], k, r, b, None) for r, b in cols)])
    ratios = md_table(["student", "FLOPs ratio (teacher/student)", *head], ratio_rows)
    return speed, ratios


def _text_tables(result: dict) -> tuple[str, str]:
    enc, ms = result["encoders"], result["measurements"]
    keys = [k for k, e in enc.items() if e["kind"] == "text" and "error" not in e]
    teacher = next(k for k in keys if enc[k]["role"] == "teacher")
    lengths = result["settings"]["text_lengths"]
    head = [f"{n} tokens" for n in lengths]
    speed_rows, ratio_rows = [], []
    for r, b in _settings_present(ms, set(keys)):
        for k in keys:
            rates = [_rate(ms, k, r, b, n) for n in lengths]
            if all(x is None for x in rates):
                continue
            speed_rows.append([enc[k]["label"], RUNTIME_LABELS[r], b, *map(_fmt, rates)])
            if k != teacher:
                ratio_rows.append([enc[k]["label"], RUNTIME_LABELS[r], b,
                                   *(_ratio_cell(result["ratios"], k, r, b, n) for n in lengths)])
    return (md_table(["encoder", "runtime", "batch", *head], speed_rows),
            md_table(["student", "runtime", "batch", *head], ratio_rows))


def _invariance_table(result: dict) -> str:
    enc, ms = result["encoders"], result["measurements"]
    lengths = result["settings"]["text_lengths"]
    short, full = _typical_length(lengths), lengths[-1]
    rows = []
    for inv in result["length_invariance"]:
        k, r = inv["encoder"], inv["runtime"]
        gain = _length_gain(ms, k, r, short, full)
        rows.append([enc[k]["label"], RUNTIME_LABELS[r], inv["sequences"], f"{inv['max_abs_diff']:.1e}",
                     f"{inv['min_cos']:.6f}", "yes" if inv["matches"] else "**no**",
                     f"{gain:.1f}x" if gain else "-"])
    return md_table(["encoder", "runtime", "sequences", "max abs diff", "min cosine", "same embedding",
                     f"{short} vs {full} tokens, texts/s"], rows)


def _program_table(result: dict) -> str:
    rows = []
    for name, p in result["programs"].items():
        if "error" in p:
            rows.append([name, "-", "-", "-", "-", f"error: {p['error']}"])
            continue
        agree = p.get("vs_eager", {})
        rows.append([name, _fmt(p["mb"]), f"{p['export_s']:.0f}", p["xnnpack_delegates"],
                     f"{agree.get('min_cos', float('nan')):.5f}", len(p["portable_operators"])])
    return md_table(["program", "MB", "export s", "XNNPACK delegate calls", "min cosine vs eager",
                     "portable operators"], rows)


def _setting_name(r: dict) -> str:
    where = f"{RUNTIME_LABELS[r['runtime']]} batch {r['batch']}"
    return where + (f" at {r['length']} tokens" if r["length"] else "")


def _span(values: Sequence[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}x" if abs(hi - lo) < 0.005 else f"{lo:.2f}x to {hi:.2f}x"


def findings(result: dict) -> list[str]:
    """Plain sentences computed from the numbers: where the paper's speed-ups hold on this CPU."""
    enc, lines = result["encoders"], []
    by_student: dict[str, list[dict]] = {}
    for r in result["ratios"]:
        by_student.setdefault(r["student"], []).append(r)
    for key, rs in by_student.items():
        e, claim = enc[key], rs[0]["paper"]
        where = {}
        for r in rs:
            where.setdefault(RUNTIME_LABELS[r["runtime"]], []).append(r["ratio"])
        per_runtime = "; ".join(f"{name} {_span(v)}" for name, v in where.items())
        reached = [r for r in rs if r["reaches_paper"]]
        if len(reached) == len(rs):
            verdict = f"reaches the paper's {claim}x in every setting measured"
        elif not reached:
            verdict = f"reaches the paper's {claim}x nowhere"
        else:
            verdict = f"reaches the paper's {claim}x in {len(reached)} of {len(rs)} settings"
        slower = [r for r in rs if not r["faster"]]
        if len(slower) > 3:
            tail = f"; it is slower than the teacher in {len(slower)} of {len(rs)} settings"
        elif slower:
            tail = "; it is slower than the teacher in " + ", ".join(map(_setting_name, slower))
        else:
            tail = ""
        lines.append(f"{e['label']} vs the teacher: {per_runtime}. It {verdict}{tail}.")
    teacher_img = next((e for e in enc.values() if e["role"] == "teacher" and e["kind"] == "image"), None)
    student_img = next((e for e in enc.values()
                        if e["role"] == "student" and e["kind"] == "image" and "error" not in e), None)
    if teacher_img and student_img:
        t, s = teacher_img, student_img
        ta, sa = t["architecture"], s["architecture"]
        shapes = (f"runs {sa['tokens']} tokens of width {sa['width']}, the teacher {ta['tokens']} of width "
                  f"{ta['width']}: " if "tokens" in ta and "tokens" in sa else "needs ")
        sf, tf = s["gflops"]["per_item"], t["gflops"]["per_item"]
        lines.append(f"Why: {s['label']} {shapes}{_fmt(sf)} vs {_fmt(tf)} GFLOPs per image, "
                     f"{sf / tf:.2f}x the teacher's work with {s['params'] / t['params']:.2f}x its "
                     "parameters.")
    teacher_txt = next((k for k, e in enc.items() if e["role"] == "teacher" and e["kind"] == "text"), None)
    students_txt = [e for e in enc.values()
                    if e["kind"] == "text" and e["role"] != "teacher" and "error" not in e]
    if teacher_txt and students_txt:
        t = enc[teacher_txt]
        lines.append("At the full context the teacher's text tower does " + ", ".join(
            f"{t['gflops']['per_item'] / e['gflops']['per_item']:.2f}x the FLOPs of the {e['label']}"
            for e in students_txt) + ": the blocks kept set the ideal speed-up (the token lookup is free).")
    best, compared = {}, {}
    for r in result["ratios"]:
        if r["kind"] == "image" and r["batch"] == 1:
            compared[r["runtime"]] = compared.get(r["runtime"], 0) + 1
            if r["ratio"] > best.get(r["runtime"], {"ratio": 0.0})["ratio"]:
                best[r["runtime"]] = r
    best = {rt: r for rt, r in best.items() if compared[rt] > 1}  # a choice needs two students at least
    if best:
        lines.append("The fastest image student at batch 1: " + "; ".join(
            f"{RUNTIME_LABELS[rt]} {enc[r['student']]['label']} ({r['ratio']:.2f}x the teacher)"
            for rt, r in sorted(best.items(), key=lambda kv: RUNTIMES.index(kv[0]))) + ".")
    lengths = result["settings"]["text_lengths"]
    short, full = _typical_length(lengths), lengths[-1]
    gains = [r for r in (_length_gain(result["measurements"], k, rt, short, full)
                         for k in enc for rt in RUNTIMES) if r is not None]
    if gains:
        lines.append(f"Encoding a query of {short} tokens at its actual length instead of padding it to "
                     f"{full} makes a text encoder {min(gains):.1f}x to {max(gains):.1f}x faster at batch 1.")
    bad = [i for i in result["length_invariance"] if not i["matches"]]
    worst = max((i["max_abs_diff"] for i in result["length_invariance"]), default=0.0)
    if result["length_invariance"] and not bad:
        lines.append(f"Encoding a query at its actual length gives the same embedding as padding it to the "
                     f"full context for every text encoder and runtime (max |diff| {worst:.1e}, "
                     f"min cosine {min(i['min_cos'] for i in result['length_invariance']):.6f}).")
    for i in bad:
        lines.append(f"{enc[i['encoder']]['label']} in {RUNTIME_LABELS[i['runtime']]} does NOT give the same "
                     f"embedding at actual length as padded (max |diff| {i['max_abs_diff']:.1e}).")
    return lines


def to_markdown(result: dict) -> str:
    """The section as Markdown: tables and the findings computed from them."""
    th = result["threads"]
    image_speed, image_ratios = _image_tables(result)
    text_speed, text_ratios = _text_tables(result)
    parts = [
        "### Encoders at real size",
        f"Weights: {result['weights']}; torch {th['torch']} threads, ExecuTorch/XNNPACK threadpool "
        f"{th['xnnpack_threadpool']} threads. fp32 and int8 sizes are the ExecuTorch .pte files where "
        "exported, fp16 the parameter bytes. int8: " + result["int8_calibration"] + ". "
        + other_cpu_sentence(result.get("other_cpu_during_timing")),
        _size_table(result["encoders"]),
        "### Image encoders: images/s",
        image_speed,
        "### Image students: speed relative to the teacher",
        f"Student images/s divided by the teacher's; the paper claims {result['paper_speedup']['image']}x.",
        image_ratios,
        "### Text encoders: texts/s by query length",
        text_speed,
        "### Text students: speed relative to the teacher",
        f"The paper claims {result['paper_speedup']['text']}x.",
        text_ratios,
        "### Text at actual length vs padded to the full context",
        _invariance_table(result),
        "### ExecuTorch programs",
        _program_table(result),
        "### Findings",
        "\n".join(f"- {line}" for line in findings(result)),
    ]
    notes = result["notes"] + [f"Skipped in this run: {x}." for x in result["skipped"]]
    parts.append("\n".join(f"- {n}" for n in notes))
    return "\n\n".join(parts) + "\n"


def _plain_log_scale(ax, which: str) -> None:
    """Log scale on axis ``which`` ("x" or "y"), plain-number ticks (10, 20, 50), minor ones unlabelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    getattr(ax, f"set_{which}scale")("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot(result: dict, out_dir: Path) -> list[Path]:
    """encoders_images.png (images/s per encoder and runtime), encoders_texts.png (texts/s by length),
    encoders_ratios.png (student/teacher speed at batch 1 against the paper's claims)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    enc, ms = result["encoders"], result["measurements"]
    paths = []

    keys = [k for k, e in enc.items() if e["kind"] == "image" and "error" not in e]
    cols = _settings_present(ms, set(keys))
    fig, ax = new_figure(width=max(6.0, 1.2 * len(keys)))

    width = 0.8 / max(1, len(cols))
    for i, (r, b) in enumerate(cols):
        values = [_rate(ms, k, r, b, None) or 0.0 for k in keys]
        xs = [j + i * width for j in range(len(keys))]
        ax.bar(xs, values, width, label=f"{RUNTIME_LABELS[r]}, batch {b}")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))], [enc[k]["label"] for k in keys],
                  rotation=30, ha="right")
    _plain_log_scale(ax, "y")
    ax.set_ylabel("images/s")
    ax.set_title("Image encoders (random weights, real size)")
    ax.legend(fontsize=7)
    paths.append(save_figure(fig, out_dir / "encoders_images.png"))

    keys = [k for k, e in enc.items() if e["kind"] == "text" and "error" not in e]
    lengths = result["settings"]["text_lengths"]
    fig, ax = new_figure()

    for r, b in _settings_present(ms, set(keys)):
        if b != 1:
            continue
        for k in keys:
            values = [_rate(ms, k, r, b, n) for n in lengths]
            if any(v is not None for v in values):
                ax.plot(lengths, [v or float("nan") for v in values], marker="o",
                        linestyle="-" if r == "eager" else "--",
                        label=f"{enc[k]['label']}, {RUNTIME_LABELS[r]}")
    _plain_log_scale(ax, "x")
    _plain_log_scale(ax, "y")
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set_xlabel("tokens in the query (77 = full context)")
    ax.set_ylabel("texts/s at batch 1")
    ax.set_title("Text encoders: speed by query length")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    paths.append(save_figure(fig, out_dir / "encoders_texts.png"))

    rs = [r for r in result["ratios"] if r["batch"] == 1 and r["length"] in (None, _typical_length(lengths))]
    fig, ax = new_figure(width=7.0, height=max(4.0, 0.28 * len(rs)))  # one readable line per bar

    labels = [f"{enc[r['student']]['label']}, {RUNTIME_LABELS[r['runtime']]}"
              + (f", {r['length']} tokens" if r["length"] else "") for r in rs]
    colour = {"image": "tab:blue", "text": "tab:green"}
    ax.barh(range(len(rs)), [r["ratio"] for r in rs], color=[colour[r["kind"]] for r in rs])
    for kind, claim in result["paper_speedup"].items():
        ax.axvline(claim, linestyle="--", color=colour[kind], label=f"paper, {kind}: {claim}x")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rs)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("student speed / teacher speed (batch 1)")
    ax.set_title("Student/teacher speed ratio")
    ax.legend(fontsize=7)
    paths.append(save_figure(fig, out_dir / "encoders_ratios.png"))
    return paths


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
