"""ONNX and ExecuTorch bundles of the assembled student (``--config clipart``): Lite0 image program, WordPiece text program.

The image program is ``encode_image`` (pixels normalised with mean = std = 0.5) with the L2 norm inside;
the text program takes WordPiece ids at their actual length ([CLS] .. [SEP], 2 <= L <= max_length) and
builds the attention mask from them (id 0 is [PAD]), so zeros after [SEP] do not change the output and
the engine's ``formats.text`` cut and ``lengths`` rule apply unchanged. The tokenizer section names kind
``wordpiece`` and the bundled ``vocab.txt``; the engine reads it with ``app.engine.wordpiece``.
Parity: ONNX Runtime vs PyTorch on seeded images and fixed captions (cosine), the text program at
actual vs padded length, and the bundled tokenizer vs Hugging Face's.
The wrappers and ``lower_assembled_executorch`` take the assembled teacher as well: bench.assembled_speed
lowers both with them, so the teacher/student speed-up compares programs built the same way.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compression.models.assembled import AssembledTeacher
from compression.models.assembled_student import STUDENT_WEIGHTS, AssembledStudent, load_assembled_student
from export.bundle import BundleError, check_destination, staged_bundle, write_manifest
from export.errors import ExportError
from formats.digest import sha256_file
from formats.manifest import TOKENIZER_CONFIG
from formats.run_card import card_embed_dim, is_assembled_run  # noqa: F401 (the exporters route runs by is_assembled_run)

logger = logging.getLogger(__name__)

MIN_TEXT_LENGTH = 2  # [CLS] [SEP]
PARITY_COS_MIN = 0.99999  # fp32: the same computation, different kernels
AssembledModel = AssembledTeacher | AssembledStudent  # what the export wrappers and the lowering accept
PROBE_TEXTS = ["a red apple on a table", "Two DOGS running, in the park!", "café naïve", "x " * 200, ""]


class AssembledImageForExport(nn.Module):
    """``image`` (B, 3, S, S) float32, normalised -> (B, D) float32, L2-normalised.

    ``model``: the assembled teacher or its student (both have ``encode_image(images, normalize)``)."""

    def __init__(self, model: AssembledModel):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(image, normalize=True)


class AssembledTextForExport(nn.Module):
    """``tokens`` (B, L) int64 WordPiece ids, 0 = [PAD] -> (B, D) float32, L2-normalised (teacher or student)."""

    def __init__(self, model: AssembledModel):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens, normalize=True)


def write_wordpiece_files(student: AssembledStudent, meta: dict[str, Any], run_dir: Path, dest: Path) -> dict[str, Any]:
    """vocab.txt + tokenizer.json into ``dest``; checked id for id against the student's HF tokenizer.
    Returns the manifest's ``tokenizer`` section."""
    # the reader the engine runs: what ships is what is checked
    from app.engine.wordpiece import WordPieceTokenizer

    tok = meta["tokenizer"]
    ctx = int(tok["max_length"])
    shutil.copyfile(Path(run_dir) / tok["vocab"], Path(dest) / "vocab.txt")
    hf = student.tokenizer
    config = {
        "kind": "wordpiece", "vocab_file": "vocab.txt", "lowercase": bool(tok.get("lowercase", True)),
        "context_length": ctx, "cls_token_id": hf.cls_token_id, "sep_token_id": hf.sep_token_id,
        "pad_token_id": hf.pad_token_id, "unk_token_id": hf.unk_token_id, "vocab_size": hf.vocab_size,
        "rule": "BERT basic tokenizer (clean, CJK spacing, accents stripped and lower-cased) + WordPiece; "
        "[CLS] ids [SEP], the content cut to context_length - 2, padded with [PAD]",
    }
    (Path(dest) / TOKENIZER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    engine = WordPieceTokenizer.from_files(Path(dest) / "vocab.txt")
    engine.lowercase = engine.strip_accents = config["lowercase"]
    ours = engine(PROBE_TEXTS, ctx)
    theirs = hf(PROBE_TEXTS, padding="max_length", truncation=True, max_length=ctx, return_tensors="np")["input_ids"]
    if not np.array_equal(ours, theirs):
        raise BundleError(f"the bundled WordPiece files in {dest} do not reproduce the student's tokenizer")
    return {"kind": "wordpiece", "config": TOKENIZER_CONFIG, "vocab": "vocab.txt", "context_length": ctx,
            "vocab_size": hf.vocab_size, "pad_token_id": hf.pad_token_id}


def assembled_parity(encoders: Any, student: AssembledStudent, image_size: int, context_length: int) -> dict[str, Any]:
    """A bundle's programs (``encoders``: export.runtimes' ONNXEncoders or ExecuTorchEncoders) vs PyTorch on 4
    seeded images (one at a time: ExecuTorch's image program has batch 1) and the probe captions, the text at
    actual and at full length; raises ExportError below PARITY_COS_MIN."""
    from formats.text import sequence_length

    pixels = torch.rand(4, 3, image_size, image_size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    texts = [t for t in PROBE_TEXTS if t]
    ids = student.tokenizer(texts, padding="max_length", truncation=True, max_length=context_length,
                            return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want_img = student.encode_image(pixels, normalize=True)
        want_txt = student.encode_text(ids, normalize=True)
    got_img = torch.cat([encoders.encode_image(pixels[i : i + 1]) for i in range(len(pixels))])
    got_txt = torch.cat([encoders.encode_text(ids[i : i + 1, : sequence_length(ids[i])]) for i in range(len(ids))])
    padded = torch.cat([encoders.encode_text(ids[i : i + 1], length=context_length) for i in range(len(ids))])
    cos = {
        "image": float((got_img * want_img).sum(1).min()),
        "text": float((got_txt * want_txt).sum(1).min()),
        "text_padded_vs_actual_length": float((got_txt * padded).sum(1).min()),
    }
    failures = [f"{k} cosine {v:.6f} < {PARITY_COS_MIN}" for k, v in cos.items() if v < PARITY_COS_MIN]
    if failures:
        raise ExportError("assembled student parity failed: " + "; ".join(failures))
    return {"status": "passed", "inputs": f"{len(pixels)} seeded images in [-1, 1], {len(texts)} probe captions",
            "cos_min": cos, "threshold": PARITY_COS_MIN, "tokenizer_check": {"identical": True}}


def assembled_manifest(backend: str, precision: str, names: dict[str, str], meta: dict[str, Any], run_dir: Path,
                       tokenizer: dict[str, Any], image_batch: Any, runtime: dict[str, Any],
                       facts: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The manifest of an assembled-student bundle (parity added by the caller)."""
    size, ctx, dim = int(meta["preprocess"]["image_size"]), int(meta["tokenizer"]["max_length"]), card_embed_dim(meta)
    output = {"name": "normalized_embedding", "shape": [1, dim], "dtype": "float32", "l2_normalized": True}
    pre, facts = meta["preprocess"], facts or {"image": {}, "text": {}}
    return {
        "backend": backend, "precision": precision, "embedding_dim": dim,
        "image": {"program": names["image"], "method": "forward",
                  "input": {"name": "image", "shape": [image_batch, 3, size, size], "dtype": "float32"},
                  "output": {**output, "shape": [image_batch, dim]}, "image_size": size, "mean": pre["mean"],
                  "std": pre["std"], **facts["image"]},
        "text": {"program": names["text"], "method": "forward",
                 "input": {"name": "tokens", "shape": [1, "L"], "dtype": "int64"},
                 "output": output, "context_length": ctx,
                 "lengths": {"kind": "range", "min": MIN_TEXT_LENGTH, "max": ctx}, "pad_token_id": 0,
                 "pooling": "masked mean over ids != 0 ([PAD]); ids after [SEP] do not matter", **facts["text"]},
        "tokenizer": tokenizer,
        "runtime": runtime,
        "quantization": None,
        "source": {"checkpoint": str(Path(run_dir).resolve()), "weights_sha256": sha256_file(Path(run_dir) / STUDENT_WEIGHTS),
                   "student_spec": {k: meta[k] for k in ("kind", "image_tower", "text_layers", "shared_layers")}},
    }


def text_example(model: AssembledModel, batch: int = 1) -> tuple[torch.Tensor]:
    """(batch, 5) ids [CLS] x x x [SEP]: neither 2 nor the maximum, so export keeps the length symbolic."""
    tokens = torch.full((batch, 5), 1000, dtype=torch.long)
    tokens[:, 0], tokens[:, -1] = model.tokenizer.cls_token_id, model.tokenizer.sep_token_id
    return (tokens,)


def text_dynamic_shapes(context_length: int) -> tuple[dict[int, Any]]:
    """The text program's length dimension: any L from [CLS] [SEP] to the context length."""
    return ({1: torch.export.Dim("tokens", min=MIN_TEXT_LENGTH, max=context_length)},)


def lower_assembled_executorch(model: AssembledModel, image_size: int, context_length: int,
                               batch: int = 1) -> tuple[dict[str, bytes], dict[str, dict[str, Any]]]:
    """The XNNPACK fp32 image and text programs of an assembled teacher or student: ({"image", "text"} ->
    .pte bytes, the same keys -> export.executorch's facts).

    image: (batch, 3, S, S) float32 -> (batch, D); text: (batch, L) int64 ids, 2 <= L <= context_length ->
    (batch, D); both L2-normalised. The bundle uses batch 1; bench.assembled_speed lowers other batches too.
    """
    from export.executorch import lower_to_executorch

    programs, facts = {}, {}
    programs["image"], facts["image"] = lower_to_executorch(
        AssembledImageForExport(model).eval(), (torch.zeros(batch, 3, image_size, image_size),), None, "image")
    programs["text"], facts["text"] = lower_to_executorch(
        AssembledTextForExport(model).eval(), text_example(model, batch), text_dynamic_shapes(context_length), "text")
    return programs, facts


def _student_to_export(run_dir: Path, out_dir: Path, precision: str):
    """The checks every exporter of the assembled student makes first; returns (student, meta, image size,
    text context length)."""
    if precision != "fp32":
        raise ExportError(f"precision {precision!r}: the assembled student exports as fp32 only for now")
    check_destination(out_dir)
    student, meta = load_assembled_student(run_dir)
    size, ctx = int(meta["preprocess"]["image_size"]), int(meta["tokenizer"]["max_length"])
    return student, meta, size, ctx


def export_assembled_onnx(run_dir: Path, out_dir: Path, precision: str = "fp32", verify: bool = True) -> Path:
    """Write the ONNX bundle of the assembled student in ``run_dir`` to ``out_dir``; returns ``out_dir``."""
    from export.onnx import MAX_BATCH, OPSET, program_name, to_onnx
    from export.runtimes import ONNXEncoders

    student, meta, size, ctx = _student_to_export(run_dir, out_dir, precision)
    programs = {
        "image": to_onnx(AssembledImageForExport(student).eval(), (torch.zeros(2, 3, size, size),), "image",
                         ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},), "image"),
        "text": to_onnx(AssembledTextForExport(student).eval(), text_example(student), "tokens",
                        text_dynamic_shapes(ctx), "text"),
    }
    with staged_bundle(out_dir) as staging:
        names = {enc: program_name(enc, precision) for enc in programs}
        for enc, data in programs.items():
            (staging / names[enc]).write_bytes(data)
        tokenizer = write_wordpiece_files(student, meta, run_dir, staging)
        runtime = {"runs_with": "onnxruntime (CPUExecutionProvider)", "opset": OPSET, "required_kernels": []}
        manifest = assembled_manifest("onnx", precision, names, meta, run_dir, tokenizer, "B", runtime)
        manifest["parity"] = (assembled_parity(ONNXEncoders(staging, manifest), student, size, ctx) if verify
                              else {"status": "not measured (--no-verify)"})
        write_manifest(staging, manifest)
    return out_dir


def export_assembled_executorch(run_dir: Path, out_dir: Path, precision: str = "fp32", verify: bool = True) -> Path:
    """Write the ExecuTorch (XNNPACK) bundle of the assembled student in ``run_dir``; image batch 1."""
    from export.executorch import program_name as pte_name
    from export.runtimes import ExecuTorchEncoders

    student, meta, size, ctx = _student_to_export(run_dir, out_dir, precision)
    programs, facts = lower_assembled_executorch(student, size, ctx)
    with staged_bundle(out_dir) as staging:
        names = {enc: pte_name(enc, precision) for enc in programs}
        for enc, data in programs.items():
            (staging / names[enc]).write_bytes(data)
        tokenizer = write_wordpiece_files(student, meta, run_dir, staging)
        runtime = {"delegate": "XnnpackBackend", "runs_with": "executorch.runtime / ExecuTorch Module API",
                   "required_kernels": []}
        manifest = assembled_manifest("executorch", precision, names, meta, run_dir, tokenizer, 1, runtime, facts)
        manifest["parity"] = (assembled_parity(ExecuTorchEncoders(staging, manifest), student, size, ctx) if verify
                              else {"status": "not measured (--no-verify)"})
        write_manifest(staging, manifest)
    return out_dir
