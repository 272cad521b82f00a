"""`python -m export.executorch`: the student as two ExecuTorch programs (XNNPACK), fp32 or int8, verified.

torch.export -> (int8: PT2E quantisation calibrated on real training samples) -> to_edge_transform_and_lower
with the XNNPACK partitioner -> .pte. The text program takes token sequences of any length from 2
to the context length (a symbolic dimension), so a caption is encoded at its actual length.
Before the bundle replaces anything, its programs are executed by ``executorch.runtime`` on real
test data and compared with PyTorch (export.parity).
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from export.bundle import staged_bundle, write_manifest, write_tokenizer_files
from export.cli import add_common_arguments, configure_logging, default_out_dir, prepare_export, run_command
from export.errors import ExportError, first_line
from export.parity import record_parity
from export.source import DEFAULT_RUN_DIR, ExportSource
from export.wrappers import MIN_TEXT_LENGTH, export_wrappers, image_example, text_dynamic_shapes, text_example

logger = logging.getLogger(__name__)

BACKEND = "executorch-xnnpack"
PRECISIONS = ("fp32", "int8")
DEFAULT_PRECISION = "fp32"


def program_name(encoder: str, precision: str) -> str:
    """``student_<encoder>_xnnpack_<precision>.pte``."""
    return f"student_{encoder}_xnnpack_{precision}.pte"


def runtime_operators() -> set[str]:
    """Operators (``ns::name.overload``) the ExecuTorch runtime here provides, quantized kernels included."""
    import executorch.kernels.quantized  # noqa: F401  registers quantized_decomposed kernels
    from executorch.runtime import Runtime

    return set(Runtime.get().operator_registry.operator_names)


def lower_to_executorch(
    module: nn.Module, example: tuple[torch.Tensor, ...], dynamic_shapes: Sequence | None, what: str
) -> tuple[bytes, dict[str, Any]]:
    """torch.export + to_edge_transform_and_lower(XNNPACK) + to_executorch; returns (.pte bytes, facts).

    facts: how many XNNPACK delegate calls the program makes and which operators run outside the
    delegate (portable kernels). Raises ExportError naming the encoder and the failing step/op,
    including an operator that the ExecuTorch runtime does not provide.
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    try:
        program = torch.export.export(module, example, dynamic_shapes=dynamic_shapes)
    except Exception as e:  # torch.export raises many types (UserError, Unsupported, ...)
        raise ExportError(f"torch.export failed for the {what} encoder: {first_line(e)}") from e
    try:
        edge = to_edge_transform_and_lower(
            program,
            partitioner=[XnnpackPartitioner()],
            # int8 programs carry quantized_decomposed ops, which are not core ATen
            compile_config=EdgeCompileConfig(_check_ir_validity=False),
        )
        et_program = edge.to_executorch()
    except Exception as e:  # lowering passes raise assorted errors; name the step and the op
        raise ExportError(f"cannot lower the {what} encoder to ExecuTorch/XNNPACK: {first_line(e)}") from e
    plan = et_program.executorch_program.execution_plan[0]
    ops = sorted({f"{op.name}.{op.overload}" if op.overload else op.name for op in plan.operators})
    missing = sorted(set(ops) - runtime_operators())
    if missing:
        raise ExportError(
            f"the {what} program needs operators that neither XNNPACK nor the ExecuTorch runtime kernels provide: {missing}"
        )
    facts = {"xnnpack_delegates": len(plan.delegates), "portable_operators": ops}
    logger.info("%s program: %d XNNPACK delegate blobs, portable ops %s", what, len(plan.delegates), ops)
    return et_program.buffer, facts


def build_programs(
    source: ExportSource, precision: str, cache_dir: Path | None = None, calibration_samples: int = 256
) -> tuple[dict[str, bytes], dict[str, Any], dict[str, Any] | None]:
    """The image and text .pte bytes, per-program facts, and the quantisation record (int8) or None."""
    image_mod, text_mod = export_wrappers(copy.deepcopy(source.student))
    ex_image = image_example(source.preprocess.image_size)
    ex_text = text_example(source.context_length, source.eot_id)
    dyn = text_dynamic_shapes(source.context_length)
    quant = None
    if precision == "int8":
        from compression.models.teacher import build_tokenizer
        from export.benchmark import calibration_samples as load_calibration
        from export.xnnpack_int8 import (
            QUANT_SCHEME,
            REQUIRED_KERNELS,
            Int8Embedding,
            image_batches,
            quantize_pt2e,
            text_batches,
        )

        tok = build_tokenizer(source.meta["tokenizer"]["model"], source.context_length)
        images, seqs = load_calibration(source.run_dir, source.meta, tok, calibration_samples, cache_dir)
        text_mod.token_embedding = Int8Embedding(text_mod.token_embedding)
        try:
            image_mod = quantize_pt2e(image_mod, ex_image, None, image_batches(images), "image")
            text_mod = quantize_pt2e(text_mod, ex_text, dyn, text_batches(seqs), "text")
        except Exception as e:  # PT2E prepare/convert failures
            raise ExportError(f"int8 quantisation (PT2E, XNNPACKQuantizer) failed: {first_line(e)}") from e
        quant = {
            **QUANT_SCHEME,
            "calibration": {"split": "train", "images": len(images), "captions": len(seqs)},
            "required_kernels": REQUIRED_KERNELS,
        }
    programs, facts = {}, {}
    programs["image"], facts["image"] = lower_to_executorch(image_mod, ex_image, None, "image")
    programs["text"], facts["text"] = lower_to_executorch(text_mod, ex_text, dyn, "text")
    return programs, facts, quant


def export_executorch(
    run_dir: Path = DEFAULT_RUN_DIR,
    out_dir: Path | None = None,
    precision: str = DEFAULT_PRECISION,
    cache_dir: Path | None = None,
    calibration_samples: int = 256,
    parity_images: int | None = 256,
    verify: bool = True,
) -> Path:
    """Write an ExecuTorch bundle for the student in ``run_dir``; returns the bundle directory.

    image program: ``(1, 3, S, S)`` float32 -> ``(1, D)`` float32, L2-normalised.
    text program: ``(1, L)`` int64 ids, 2 <= L <= context length -> ``(1, D)`` float32, L2-normalised.
    int8: PT2E static quantisation calibrated on ``calibration_samples`` real training images and
    captions. With ``verify`` the staged bundle must pass export.parity before it replaces ``out_dir``.
    """
    from export.assembled import export_assembled_executorch, is_assembled_run

    if is_assembled_run(run_dir):  # --config clipart: Lite0 + WordPiece text tower (export.assembled)
        out = Path(out_dir) if out_dir is not None else default_out_dir(run_dir, "executorch", precision, DEFAULT_PRECISION)
        return export_assembled_executorch(Path(run_dir), out, precision, verify)
    out_dir, source = prepare_export(
        run_dir, out_dir, "executorch", BACKEND, precision, PRECISIONS, DEFAULT_PRECISION
    )
    programs, facts, quant = build_programs(source, precision, cache_dir, calibration_samples)
    ctx, dim, size = source.context_length, source.embedding_dim, source.preprocess.image_size
    with staged_bundle(out_dir) as staging:
        names = {enc: program_name(enc, precision) for enc in ("image", "text")}
        for enc, data in programs.items():
            (staging / names[enc]).write_bytes(data)
        tokenizer = write_tokenizer_files(source.meta["tokenizer"], staging, source.run_dir)
        output = {"name": "embedding", "shape": [1, dim], "dtype": "float32", "l2_normalized": True}
        manifest = {
            "backend": BACKEND,
            "precision": precision,
            "embedding_dim": dim,
            "image": {
                "program": names["image"],
                "method": "forward",
                "input": {"name": "image", "shape": [1, 3, size, size], "dtype": "float32"},
                "output": output,
                **source.preprocess.to_dict(),
                **facts["image"],
            },
            "text": {
                "program": names["text"],
                "method": "forward",
                "input": {"name": "tokens", "shape": [1, "L"], "dtype": "int64"},
                "output": output,
                "context_length": ctx,
                "lengths": {"kind": "range", "min": MIN_TEXT_LENGTH, "max": ctx},
                "pad_token_id": 0,
                "pooling": "output at the position of the highest id (EOT); ids after it do not matter",
                **facts["text"],
            },
            "tokenizer": tokenizer,
            "runtime": {
                "delegate": "XnnpackBackend",
                "runs_with": "executorch.runtime / ExecuTorch Module API",
                "required_kernels": (quant or {}).get("required_kernels", []),
            },
            "quantization": quant,
            "source": source.manifest_section(),
            "parity": {"status": "not measured (--no-verify)"},
        }
        manifest = write_manifest(staging, manifest)
        if verify:
            record_parity(staging, manifest, source, cache_dir, parity_images, out_dir)
    return out_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m export.executorch",
        description="Export the student's image and text encoders as ExecuTorch programs (XNNPACK), "
        "write them with the tokenizer files and a manifest to a bundle directory, and verify parity "
        "with PyTorch by executing them with executorch.runtime.",
    )
    add_common_arguments(p, PRECISIONS, DEFAULT_PRECISION)
    p.add_argument(
        "--calibration-samples",
        type=int,
        default=256,
        help="int8: real training images and captions to calibrate activation ranges on (default: 256)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    return run_command(
        "export.executorch",
        lambda: export_executorch(
            args.checkpoint,
            args.out,
            args.precision,
            args.cache_dir,
            args.calibration_samples,
            args.parity_images,
            verify=not args.no_verify,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
