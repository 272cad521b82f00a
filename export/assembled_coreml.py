"""The assembled student (``--config clipart``) as a Core ML bundle: Lite0 image package, WordPiece text package.

``python -m export.coreml`` routes such runs here. Same programs and manifest contract as the student's
ONNX and ExecuTorch bundles (export.assembled: L2 norm in both graphs, the text program builds its mask
from ids != 0, tokenizer kind ``wordpiece`` + ``vocab.txt``), with Core ML's input rules: image batch 1,
token ids int32, and the text lengths either enumerated buckets (default: powers of two up to the context
length; the engine pads with [PAD] = 0 to the next one, which the mask ignores) or a range.
Precisions are export.coreml's: fp16 (default; the Neural Engine's), fp32, int8 weights with fp16 compute.

Parity: Core ML predicts only on macOS. Everywhere, the torch.export programs handed to the converter are
run by PyTorch against the eager student (``ExportedProgramEncoders``: the traced graph at the lengths the
package accepts, padded and not), and the packages are validated structurally against the manifest. On
macOS an fp32 bundle is also run by Core ML; fp16/int8 Core ML parity of this student is not measured yet
(export.assembled's parity threshold is fp32's), and the manifest says so.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.desktop.coreml_runtime import coreml_available
from compression.models.assembled_student import load_assembled_student
from export.assembled import (
    AssembledImageForExport,
    AssembledTextForExport,
    assembled_manifest,
    assembled_parity,
    text_dynamic_shapes,
    text_example,
    write_wordpiece_files,
)
from export.bundle import check_destination, staged_bundle, write_manifest
from export.coreml import (
    DEFAULT_PRECISION,
    DEFAULT_TARGET,
    IMAGE_INPUT,
    PRECISIONS,
    convert_program,
    coreml_section,
    export_program,
    quantization_section,
    save_packages,
    text_input_type,
    text_lengths,
)
from export.coreml_package import validate_package
from export.errors import ExportError
from export.runtimes import CoreMLEncoders, _fit_tokens
from formats.manifest import text_input_length

logger = logging.getLogger(__name__)

OUTPUT = "normalized_embedding"  # the output name of the student's ONNX and ExecuTorch programs too


class ExportedProgramEncoders:
    """The torch.export programs that coremltools converts, run by PyTorch one input at a time, the text at the
    length the package would be fed (export.runtimes' BundleEncoders interface, for ``assembled_parity``)."""

    def __init__(self, programs: dict[str, torch.export.ExportedProgram], manifest: dict[str, Any]):
        self.manifest = manifest
        self._modules = {enc: program.module() for enc, program in programs.items()}
        self._text_lengths = manifest["text"]["lengths"]

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self._modules["image"](image.float())

    def encode_text(self, tokens: torch.Tensor, length: int | None = None) -> torch.Tensor:
        length = length or text_input_length(tokens.shape[1], self._text_lengths)
        return self._modules["text"](_fit_tokens(tokens, length))


def coreml_parity(staging: Path, manifest: dict[str, Any], programs: dict[str, torch.export.ExportedProgram],
                  student, image_size: int, context_length: int) -> dict[str, Any]:
    """The manifest's ``parity``: Core ML vs PyTorch where Core ML predicts (macOS, fp32), else ``skipped`` with
    the reason; with, always, the exported programs vs the eager student (raises ExportError if they differ)."""
    traced = assembled_parity(ExportedProgramEncoders(programs, manifest), student, image_size, context_length)
    traced = {"what": "the torch.export programs given to coremltools, run by PyTorch (not the .mlpackage)",
              **{k: v for k, v in traced.items() if k != "status"}}
    ok, why = coreml_available()
    if ok and manifest["precision"] == "fp32":
        return {**assembled_parity(CoreMLEncoders(staging, manifest), student, image_size, context_length),
                "exported_program": traced}
    if ok:
        why = (f"Core ML parity of the assembled student at {manifest['precision']} is not measured yet "
               "(export.assembled's threshold is fp32's)")
    logger.warning("%s: Core ML parity not measured: %s (exported programs checked, packages validated)", staging, why)
    return {"status": "skipped", "reason": why, "exported_program": traced}


def export_assembled_coreml(run_dir: Path, out_dir: Path, precision: str = DEFAULT_PRECISION, verify: bool = True,
                            target: str = DEFAULT_TARGET, text_shapes: str = "buckets") -> Path:
    """Write the Core ML bundle of the assembled student in ``run_dir`` to ``out_dir``; returns ``out_dir``.

    image package: ``image`` (1, 3, S, S) float32 -> ``normalized_embedding`` (1, D) float32, L2-normalised.
    text package: ``tokens`` (1, L) int32 WordPiece ids, L a bucket (zero-padded after [SEP]) or any L in
    [2, context length] -> ``normalized_embedding`` (1, D) float32, L2-normalised.
    """
    import coremltools as ct

    if precision not in PRECISIONS:
        raise ExportError(f"precision {precision!r} is not one of {PRECISIONS} for Core ML")
    check_destination(out_dir)
    student, meta = load_assembled_student(run_dir)
    size, ctx = int(meta["preprocess"]["image_size"]), int(meta["tokenizer"]["max_length"])
    lengths = text_lengths(ctx, text_shapes)
    programs = {
        "image": export_program(AssembledImageForExport(student).eval(), (torch.zeros(1, 3, size, size),), None,
                                "image"),
        "text": export_program(AssembledTextForExport(student).eval(), text_example(student),
                               text_dynamic_shapes(ctx), "text",
                               # BERT's mask has ops coremltools cannot convert (new_ones, __and__); decomposing
                               # those alone leaves the output's shape unknown to coremltools, decomposing all does not
                               decompositions=torch.export.default_decompositions()),
    }
    image_in = ct.TensorType(name=IMAGE_INPUT, shape=(1, 3, size, size), dtype=np.float32)
    models = {
        "image": convert_program(programs["image"], image_in, precision, target, "image", OUTPUT),
        "text": convert_program(programs["text"], text_input_type(lengths, ctx), precision, target, "text", OUTPUT),
    }
    with staged_bundle(out_dir) as staging:
        names = save_packages(staging, models, precision)
        tokenizer = write_wordpiece_files(student, meta, run_dir, staging)
        runtime = {"runs_with": "Core ML (CoreML.framework on iOS, coremltools' bindings on macOS)"}
        manifest = assembled_manifest("coreml", precision, names, meta, run_dir, tokenizer, 1, runtime)
        for enc in ("image", "text"):
            del manifest[enc]["method"]  # a package has one function; the name is the ExecuTorch/ONNX programs'
        manifest["text"]["input"]["dtype"] = "int32"  # Core ML's integer input type
        manifest["text"]["lengths"] = lengths
        manifest["coreml"] = coreml_section(models["image"], precision, target)
        manifest["quantization"] = quantization_section(precision)
        manifest["parity"] = {"status": "not measured (--no-verify)"}
        manifest = write_manifest(staging, manifest)
        logger.info("Core ML packages validated: %s", validate_package(staging, manifest))
        if verify:
            manifest = {k: v for k, v in manifest.items() if k != "files"}
            manifest["parity"] = coreml_parity(staging, manifest, programs, student, size, ctx)
            write_manifest(staging, manifest)
    return out_dir
