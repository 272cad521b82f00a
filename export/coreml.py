"""`python -m export.coreml`: the student as two Core ML ML programs (.mlpackage), fp16 by default.

torch.export -> ``coremltools.convert`` (ML program, named inputs/outputs, minimum deployment target
iOS16 / macOS13 by default) -> for int8, ``coremltools.optimize.coreml.linear_quantize_weights``
(int8 weights per output channel, fp16 compute). The text input accepts enumerated lengths
("buckets", the Neural-Engine-friendly choice: pad ids with zeros to the next bucket) or any length
in a range. Core ML only predicts on macOS: there the bundle's parity is measured before it is
written; elsewhere the packages are validated structurally and parity is recorded as skipped.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.bundle import staged_bundle, write_manifest, write_tokenizer_files
from export.cli import add_common_arguments, configure_logging, default_out_dir, prepare_export, run_command
from export.coreml_package import validate_package, weight_storage  # noqa: F401 - weight_storage: public here too
from export.errors import ExportError, first_line
from export.parity import record_parity
from export.source import DEFAULT_RUN_DIR, ExportSource
from export.wrappers import MIN_TEXT_LENGTH, export_wrappers, image_example, text_dynamic_shapes, text_example

logger = logging.getLogger(__name__)

BACKEND = "coreml"
PRECISIONS = ("fp16", "fp32", "int8")
DEFAULT_PRECISION = "fp16"
DEFAULT_TARGET = "iOS16"  # ~all iPhones in use; ML program fp16 + int8 constexpr weights; = macOS13
TEXT_SHAPES = ("buckets", "range")
IMAGE_INPUT, TEXT_INPUT, OUTPUT = "image", "tokens", "embedding"


def program_name(encoder: str, precision: str) -> str:
    """``student_<encoder>_coreml_<precision>.mlpackage``."""
    return f"student_{encoder}_coreml_{precision}.mlpackage"


def bucket_lengths(context_length: int, smallest: int = 8) -> list[int]:
    """Powers of two from ``smallest`` below the context length, then the context length: 32 -> [8, 16, 32]."""
    out, b = [], smallest
    while b < context_length:
        out.append(b)
        b *= 2
    return out + [context_length]


def text_lengths(context_length: int, text_shapes: str) -> dict[str, Any]:
    """The manifest's ``text.lengths`` for a text input of kind ``buckets`` or ``range``."""
    if text_shapes == "buckets":
        return {"kind": "buckets", "values": bucket_lengths(context_length)}
    if text_shapes == "range":
        return {"kind": "range", "min": MIN_TEXT_LENGTH, "max": context_length}
    raise ExportError(f"text shapes {text_shapes!r} is not one of {TEXT_SHAPES}")


def _deployment_target(name: str):
    import coremltools as ct

    target = getattr(ct.target, name, None)
    if target is None or not name.startswith(("iOS", "macOS")):
        raise ExportError(f"unknown Core ML deployment target {name!r}; try iOS16, iOS17, iOS18, macOS13 ...")
    if target < ct.target.iOS16:
        raise ExportError(
            f"deployment target {name} is too old: int8 weights and this export need iOS16 / macOS13 or later"
        )
    return target


def export_program(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    dynamic_shapes: Sequence | None,
    what: str,
    decompositions: dict[Any, Any] | None = None,
) -> torch.export.ExportedProgram:
    """torch.export, then ``run_decompositions(decompositions)``: by default none (ATen ops kept whole, as
    coremltools converts them best); ``torch.export.default_decompositions()`` for a graph with ops that
    coremltools has no converter for (Hugging Face BERT's mask: ``new_ones``, ``__and__``).

    Raises ExportError naming the encoder.
    """
    try:
        program = torch.export.export(module, example, dynamic_shapes=dynamic_shapes)
        return program.run_decompositions(decompositions if decompositions is not None else {})
    except Exception as e:  # torch.export raises many types
        raise ExportError(f"torch.export failed for the {what} encoder: {first_line(e)}") from e


def convert_program(
    program: torch.export.ExportedProgram,
    input_type: Any,
    precision: str,
    target: str,
    what: str,
    output: str = OUTPUT,
):
    """ct.convert (ML program) [-> int8 weights] of an exported program; returns a ct.models.MLModel.

    Raises ExportError naming the encoder and the op Core ML could not convert.
    """
    import coremltools as ct

    compute = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    try:
        model = ct.convert(
            program,
            inputs=[input_type],
            outputs=[ct.TensorType(name=output, dtype=np.float32)],
            convert_to="mlprogram",
            compute_precision=compute,
            minimum_deployment_target=_deployment_target(target),
            skip_model_load=True,
        )
    except ExportError:
        raise
    except Exception as e:  # the converter raises NotImplementedError/ValueError/RuntimeError per op
        raise ExportError(f"cannot convert the {what} encoder to Core ML: {first_line(e)}") from e
    if precision == "int8":
        from coremltools.optimize.coreml import (
            OpLinearQuantizerConfig,
            OptimizationConfig,
            linear_quantize_weights,
        )

        config = OptimizationConfig(
            global_config=OpLinearQuantizerConfig(
                mode="linear_symmetric", dtype="int8", granularity="per_channel"
            )
        )
        try:
            model = linear_quantize_weights(model, config)
        except Exception as e:  # coremltools.optimize raises assorted errors
            raise ExportError(
                f"int8 weight quantisation of the Core ML {what} encoder failed: {first_line(e)}"
            ) from e
    return model


def convert_encoder(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    dynamic_shapes: Sequence | None,
    input_type: Any,
    precision: str,
    target: str,
    what: str,
):
    """torch.export -> ct.convert (ML program) [-> int8 weights]; returns a ct.models.MLModel."""
    return convert_program(export_program(module, example, dynamic_shapes, what), input_type, precision, target, what)


def text_input_type(lengths: dict[str, Any], context_length: int):
    """The ``tokens`` (1, L) int32 input for the manifest's ``text.lengths``: enumerated buckets or a range."""
    import coremltools as ct

    if lengths["kind"] == "buckets":
        shape = ct.EnumeratedShapes(shapes=[(1, n) for n in lengths["values"]], default=(1, context_length))
    else:
        shape = ct.Shape(
            (1, ct.RangeDim(lower_bound=lengths["min"], upper_bound=lengths["max"], default=context_length))
        )
    return ct.TensorType(name=TEXT_INPUT, shape=shape, dtype=np.int32)


def save_packages(staging: Path, models: dict[str, Any], precision: str) -> dict[str, str]:
    """Each encoder's MLModel saved as ``program_name(encoder, precision)`` in ``staging``; returns the names."""
    names = {enc: program_name(enc, precision) for enc in models}
    for enc, model in models.items():
        model.short_description = f"pocketclip student {enc} encoder ({precision}); output L2-normalised embedding"
        model.save(str(Path(staging) / names[enc]))
    return names


def coreml_section(image_model, precision: str, target: str) -> dict[str, Any]:
    """The manifest's ``coreml`` section."""
    return {
        "format": "mlprogram",
        "minimum_deployment_target": target,
        "spec_version": image_model.get_spec().specificationVersion,
        "compute_precision": "float32" if precision == "fp32" else "float16",
    }


def quantization_section(precision: str) -> dict[str, Any] | None:
    """The manifest's ``quantization`` section: int8 weights, fp16 compute; None for fp16 and fp32."""
    if precision != "int8":
        return None
    return {
        "weights": "int8 linear symmetric per output channel (coremltools.optimize.coreml.linear_quantize_weights)",
        "activations": "float16",
        "calibration": None,
    }


# ------------------------------------------------------------------------------------------------
# structural validation (works without the Core ML framework)
# ------------------------------------------------------------------------------------------------


def build_packages(source: ExportSource, precision: str, target: str, text_shapes: str):
    """(image MLModel, text MLModel, text lengths) converted from the checkpoint."""
    import coremltools as ct

    image_mod, text_mod = export_wrappers(copy.deepcopy(source.student))
    size, ctx = source.preprocess.image_size, source.context_length
    lengths = text_lengths(ctx, text_shapes)
    image_in = ct.TensorType(name=IMAGE_INPUT, shape=(1, 3, size, size), dtype=np.float32)
    text_in = text_input_type(lengths, ctx)
    image = convert_encoder(image_mod, image_example(size), None, image_in, precision, target, "image")
    text = convert_encoder(
        text_mod,
        text_example(ctx, source.eot_id),
        text_dynamic_shapes(ctx),
        text_in,
        precision,
        target,
        "text",
    )
    return image, text, lengths


def export_coreml(
    run_dir: Path = DEFAULT_RUN_DIR,
    out_dir: Path | None = None,
    precision: str = DEFAULT_PRECISION,
    cache_dir: Path | None = None,
    parity_images: int | None = 256,
    verify: bool = True,
    target: str = DEFAULT_TARGET,
    text_shapes: str = "buckets",
) -> Path:
    """Write a Core ML bundle for the student in ``run_dir``; returns the bundle directory.

    image package: input ``image`` (1, 3, S, S) float32 -> output ``embedding`` (1, D) float32,
    L2-normalised. text package: input ``tokens`` (1, L) int32, L one of the buckets (zero-padded
    after EOT) or any L in [2, context] -> ``embedding`` (1, D) float32, L2-normalised.
    With ``verify``: structural validation always; parity on macOS (skipped with the reason elsewhere).
    An assembled student's run (``--config clipart``) goes to export.assembled_coreml.
    """
    from export.assembled import is_assembled_run

    if is_assembled_run(run_dir):  # Lite0 + WordPiece text tower
        from export.assembled_coreml import export_assembled_coreml

        out = Path(out_dir) if out_dir is not None else default_out_dir(run_dir, BACKEND, precision, DEFAULT_PRECISION)
        return export_assembled_coreml(Path(run_dir), out, precision, verify, target, text_shapes)
    out_dir, source = prepare_export(
        run_dir, out_dir, "coreml", "Core ML", precision, PRECISIONS, DEFAULT_PRECISION
    )
    image, text, lengths = build_packages(source, precision, target, text_shapes)
    ctx, dim, size = source.context_length, source.embedding_dim, source.preprocess.image_size
    with staged_bundle(out_dir) as staging:
        names = save_packages(staging, {"image": image, "text": text}, precision)
        tokenizer = write_tokenizer_files(source.meta["tokenizer"], staging, source.run_dir)
        output = {"name": OUTPUT, "shape": [1, dim], "dtype": "float32", "l2_normalized": True}
        manifest = {
            "backend": BACKEND,
            "precision": precision,
            "embedding_dim": dim,
            "image": {
                "program": names["image"],
                "input": {"name": IMAGE_INPUT, "shape": [1, 3, size, size], "dtype": "float32"},
                "output": output,
                **source.preprocess.to_dict(),
            },
            "text": {
                "program": names["text"],
                "input": {"name": TEXT_INPUT, "shape": [1, "L"], "dtype": "int32"},
                "output": output,
                "context_length": ctx,
                "lengths": lengths,
                "pad_token_id": 0,
                "pooling": "output at the position of the highest id (EOT); ids after it do not matter",
            },
            "tokenizer": tokenizer,
            "coreml": coreml_section(image, precision, target),
            "quantization": quantization_section(precision),
            "source": source.manifest_section(),
            "parity": {"status": "not measured (--no-verify)"},
        }
        manifest = write_manifest(staging, manifest)
        structure = validate_package(staging, manifest)
        logger.info("Core ML packages validated: %s", structure)
        if verify:
            record_parity(staging, manifest, source, cache_dir, parity_images, out_dir)
    return out_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m export.coreml",
        description="Export the student's image and text encoders as Core ML ML programs (.mlpackage) with the "
        "tokenizer files and a manifest; validate the packages, and on macOS verify parity with PyTorch.",
    )
    add_common_arguments(p, PRECISIONS, DEFAULT_PRECISION)
    p.add_argument(
        "--target", default=DEFAULT_TARGET, help=f"minimum deployment target (default: {DEFAULT_TARGET})"
    )
    p.add_argument(
        "--text-shapes",
        choices=TEXT_SHAPES,
        default="buckets",
        help="token input: enumerated bucket lengths (default; Neural Engine friendly) or a length range",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    return run_command(
        "export.coreml",
        lambda: export_coreml(
            args.checkpoint,
            args.out,
            args.precision,
            args.cache_dir,
            args.parity_images,
            verify=not args.no_verify,
            target=args.target,
            text_shapes=args.text_shapes,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
