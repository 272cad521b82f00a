"""`python -m export.onnx`: the student as two ONNX programs run by ONNX Runtime, fp32 or int8, verified.

torch.onnx's dynamo exporter (torch.export -> ONNX through onnxscript, graph optimised) writes one
self-contained ``.onnx`` file per encoder, L2 normalisation inside the graph. The text program's
sequence length is a symbolic dimension, so a caption is encoded at its actual length, exactly as
with the ExecuTorch bundle. int8 is ONNX Runtime's weight-only quantisation (token-embedding
table and linear layers int8, activations float32; see ``quantize_int8``), kept only if the parity
check passes. ONNX Runtime starts in milliseconds and imports no torch, so
this is the desktop runtime that answers a first query soonest (bench/results/startup.json).
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import tempfile
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

BACKEND = "onnx"
PRECISIONS = ("fp32", "int8")
DEFAULT_PRECISION = "fp32"
OPSET = 18
MAX_BATCH = 1024  # the image program takes any batch from 1 to this (indexing feeds 32 photos a call)
OUTPUT_NAME = "normalized_embedding"  # "embedding" would clash with the name the exporter gives the lookup
INT8_BLOCK = 32  # weights per int8 scale in MatMulNBits
INT8_SCHEME = {
    "method": "onnxruntime.quantization: quantize_dynamic (Gather only) + MatMulNBitsQuantizer(bits=8)",
    "weights": f"int8: the token-embedding table per tensor (Gather + DequantizeLinear), linear layers in "
    f"blocks of {INT8_BLOCK} per column (MatMulNBits, symmetric)",
    "activations": "float32 (weight-only): no calibration data, and the output does not depend on padding",
}


def program_name(encoder: str, precision: str) -> str:
    """``student_<encoder>_onnx_<precision>.onnx``."""
    return f"student_{encoder}_onnx_{precision}.onnx"


def to_onnx(module: nn.Module, example: tuple[torch.Tensor, ...], input_name: str,
            dynamic_shapes: Sequence | None, what: str) -> bytes:
    """torch.onnx.export (dynamo) of one encoder -> the .onnx bytes, checked to load in ONNX Runtime.

    Raises ExportError naming the encoder and the failing step (export, or an op ONNX Runtime lacks).
    """
    try:
        program = torch.onnx.export(
            module, example, dynamo=True, input_names=[input_name], output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic_shapes, opset_version=OPSET, optimize=True, verbose=False,
        )
        data = program.model_proto.SerializeToString()
    except Exception as e:  # the exporter raises many types (UserError, Unsupported, ConversionError ...)
        raise ExportError(f"torch.onnx.export failed for the {what} encoder: {first_line(e)}") from e
    load_session(data, what)
    logger.info("%s program: %.2f MB ONNX (opset %d)", what, len(data) / 1e6, OPSET)
    return data


def load_session(data: bytes, what: str) -> Any:
    """An ONNX Runtime session of ``data``; ExportError when ONNX Runtime cannot run the graph."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/NotImplemented types
        raise ExportError(f"ONNX Runtime cannot load the {what} program: {first_line(e)}") from e


def quantize_int8(data: bytes, what: str) -> bytes:
    """Weight-only int8 through ONNX Runtime's quantisers (see INT8_SCHEME); activations stay float32.

    Weight-only because ONNX Runtime's dynamic activation quantisation takes each call's value range:
    the padded and the unpadded query then differ (1.5e-2 measured), which the parity check refuses.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    with tempfile.TemporaryDirectory(prefix="pocketclip-onnx-") as tmp:
        src, gathered = Path(tmp) / "fp32.onnx", Path(tmp) / "gather-int8.onnx"
        src.write_bytes(data)
        try:
            quantize_dynamic(src, gathered, weight_type=QuantType.QInt8, op_types_to_quantize=["Gather"])
            matmuls = MatMulNBitsQuantizer(onnx.load(gathered), bits=8, block_size=INT8_BLOCK, is_symmetric=True,
                                           op_types_to_quantize=("MatMul",))
            matmuls.process()
            out = matmuls.model.model.SerializeToString()
        except Exception as e:  # quantisation passes raise assorted errors
            raise ExportError(f"int8 quantisation (onnxruntime.quantization) of the {what} encoder failed: "
                              f"{first_line(e)}") from e
    load_session(out, what)
    return out


def build_programs(source: ExportSource, precision: str) -> dict[str, bytes]:
    """The image and text .onnx bytes of ``source``'s student at ``precision``."""
    image_mod, text_mod = export_wrappers(copy.deepcopy(source.student))
    photos = image_example(source.preprocess.image_size)[0].expand(2, -1, -1, -1).contiguous()  # batch 2: not
    programs = {  # specialised to 1
        "image": to_onnx(image_mod, (photos,), "image", ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},),
                         "image"),
        "text": to_onnx(text_mod, text_example(source.context_length, source.eot_id), "tokens",
                        text_dynamic_shapes(source.context_length), "text"),
    }
    if precision == "int8":
        programs = {enc: quantize_int8(data, enc) for enc, data in programs.items()}
    return programs


def onnx_manifest(source: ExportSource, names: dict[str, str], precision: str, tokenizer: dict[str, Any]) -> dict:
    """The manifest of an ONNX bundle: the same keys as the ExecuTorch bundle's, ``backend: onnx``."""
    ctx, dim, size = source.context_length, source.embedding_dim, source.preprocess.image_size
    output = {"name": OUTPUT_NAME, "shape": [1, dim], "dtype": "float32", "l2_normalized": True}
    return {
        "backend": BACKEND,
        "precision": precision,
        "embedding_dim": dim,
        "image": {
            "program": names["image"],
            "input": {"name": "image", "shape": ["B", 3, size, size], "dtype": "float32"},
            "output": {**output, "shape": ["B", dim]},
            **source.preprocess.to_dict(),
        },
        "text": {
            "program": names["text"],
            "input": {"name": "tokens", "shape": [1, "L"], "dtype": "int64"},
            "output": output,
            "context_length": ctx,
            "lengths": {"kind": "range", "min": MIN_TEXT_LENGTH, "max": ctx},
            "pad_token_id": 0,
            "pooling": "output at the position of the highest id (EOT); ids after it do not matter",
        },
        "tokenizer": tokenizer,
        "runtime": {"runs_with": "onnxruntime (CPUExecutionProvider)", "opset": OPSET, "required_kernels": []},
        "quantization": dict(INT8_SCHEME) if precision == "int8" else None,
        "source": source.manifest_section(),
        "parity": {"status": "not measured (--no-verify)"},
    }


def export_onnx(
    run_dir: Path = DEFAULT_RUN_DIR,
    out_dir: Path | None = None,
    precision: str = DEFAULT_PRECISION,
    cache_dir: Path | None = None,
    parity_images: int | None = 256,
    verify: bool = True,
) -> Path:
    """Write an ONNX bundle for the student in ``run_dir``; returns the bundle directory.

    image program: ``image`` (B, 3, S, S) float32, 1 <= B <= MAX_BATCH -> (B, D) float32, L2-normalised.
    text program: ``tokens`` (1, L) int64, 2 <= L <= context length -> (1, D) float32, L2-normalised.
    With ``verify`` the staged bundle must pass export.parity (run by ONNX Runtime) before it replaces
    ``out_dir``.
    """
    from export.assembled import export_assembled_onnx, is_assembled_run

    if is_assembled_run(run_dir):  # --config clipart: Lite0 + WordPiece text tower (export.assembled)
        out = Path(out_dir) if out_dir is not None else default_out_dir(run_dir, BACKEND, precision, DEFAULT_PRECISION)
        return export_assembled_onnx(Path(run_dir), out, precision, verify)
    out_dir, source = prepare_export(run_dir, out_dir, "onnx", BACKEND, precision, PRECISIONS, DEFAULT_PRECISION)
    programs = build_programs(source, precision)
    with staged_bundle(out_dir) as staging:
        names = {enc: program_name(enc, precision) for enc in programs}
        for enc, data in programs.items():
            (staging / names[enc]).write_bytes(data)
        tokenizer = write_tokenizer_files(source.meta["tokenizer"], staging, source.run_dir)
        manifest = write_manifest(staging, onnx_manifest(source, names, precision, tokenizer))
        if verify:
            record_parity(staging, manifest, source, cache_dir, parity_images, out_dir)
    return out_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m export.onnx",
        description="Export the student's image and text encoders as ONNX programs, write them with the "
        "tokenizer files and a manifest to a bundle directory, and verify parity with PyTorch by running "
        "them with ONNX Runtime.",
    )
    add_common_arguments(p, PRECISIONS, DEFAULT_PRECISION)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    return run_command("export.onnx", lambda: export_onnx(
        args.checkpoint, args.out, args.precision, args.cache_dir, args.parity_images, verify=not args.no_verify))


if __name__ == "__main__":
    sys.exit(main())
