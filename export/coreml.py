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
import collections
import copy
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.bundle import BundleError, staged_bundle, write_manifest, write_tokenizer_files
from export.cli import add_common_arguments, configure_logging, prepare_export, run_command
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


def convert_encoder(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    dynamic_shapes: Sequence | None,
    input_type: Any,
    precision: str,
    target: str,
    what: str,
):
    """torch.export -> ct.convert (ML program) [-> int8 weights]; returns a ct.models.MLModel.

    Raises ExportError naming the encoder and the op Core ML could not convert.
    """
    import coremltools as ct

    try:
        program = torch.export.export(module, example, dynamic_shapes=dynamic_shapes).run_decompositions({})
    except Exception as e:  # torch.export raises many types
        raise ExportError(f"torch.export failed for the {what} encoder: {first_line(e)}") from e
    compute = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    try:
        model = ct.convert(
            program,
            inputs=[input_type],
            outputs=[ct.TensorType(name=OUTPUT, dtype=np.float32)],
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


# ------------------------------------------------------------------------------------------------
# structural validation (works without the Core ML framework)
# ------------------------------------------------------------------------------------------------


def weight_storage(spec) -> dict[str, int]:
    """Elements of stored weights by dtype in an ML program spec: e.g. {"float16": 3.2e6, "int8": 0}.

    Counts ``const`` tensors with more than one element and the ``quantized_data`` of int8
    ``constexpr_*`` ops; scalars, shapes and scales are negligible and left out.
    """
    from coremltools.proto import MIL_pb2

    counts: collections.Counter[str] = collections.Counter()
    function = spec.mlProgram.functions["main"]
    for op in function.block_specializations[function.opset].operations:
        if op.type == "const":
            tensor = op.outputs[0].type.tensorType
            n = int(np.prod([d.constant.size for d in tensor.dimensions])) if tensor.dimensions else 1
            if n > 1:
                counts[MIL_pb2.DataType.Name(tensor.dataType).lower()] += n
        elif op.type.startswith("constexpr_"):
            for key in ("quantized_data", "data", "indices"):
                if key in op.attributes:
                    tensor = op.attributes[key].type.tensorType
                    n = int(np.prod([d.constant.size for d in tensor.dimensions]))
                    counts[MIL_pb2.DataType.Name(tensor.dataType).lower()] += n
    return dict(counts)


def _precision_ok(storage: dict[str, int], precision: str) -> bool:
    total = sum(v for k, v in storage.items() if k in ("float16", "float32", "int8", "uint8")) or 1
    share = {k: storage.get(k, 0) / total for k in ("float16", "float32", "int8")}
    if precision == "fp32":
        return share["float32"] > 0.99
    if precision == "fp16":
        return share["float16"] > 0.99
    # int8: the weight matrices; biases, LayerNorm, positional embeddings and small tensors stay fp16
    return share["int8"] > 0.5


def _input_lengths(feature) -> dict[str, Any]:
    arr = feature.type.multiArrayType
    kind = arr.WhichOneof("ShapeFlexibility")
    if kind == "enumeratedShapes":
        return {"kind": "buckets", "values": sorted(int(s.shape[1]) for s in arr.enumeratedShapes.shapes)}
    if kind == "shapeRange":
        r = arr.shapeRange.sizeRanges[1]
        return {"kind": "range", "min": int(r.lowerBound), "max": int(r.upperBound)}
    return {"kind": "fixed", "values": [int(arr.shape[1])]}


def validate_package(bundle_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Open both .mlpackage files without the Core ML runtime and check them against the manifest.

    Checks: ML program; input/output names, ranks, dtypes and shapes; the text input's lengths;
    weight storage matching the precision; deployment target. Returns what was found; raises
    BundleError naming the package and the mismatch.
    """
    import coremltools as ct
    from coremltools.proto import FeatureTypes_pb2

    dtypes = {
        FeatureTypes_pb2.ArrayFeatureType.FLOAT32: "float32",
        FeatureTypes_pb2.ArrayFeatureType.FLOAT16: "float16",
        FeatureTypes_pb2.ArrayFeatureType.INT32: "int32",
    }
    found = {}
    for enc in ("image", "text"):
        path = Path(bundle_dir) / manifest[enc]["program"]
        try:
            model = ct.models.MLModel(str(path), skip_model_load=True)
        except Exception as e:  # coremltools raises bare Exceptions for unreadable packages
            raise BundleError(f"cannot read Core ML package {path}: {first_line(e)}") from e
        spec = model.get_spec()
        problems = []
        if spec.WhichOneof("Type") != "mlProgram":
            problems.append(f"is a {spec.WhichOneof('Type')}, not an ML program")
        want_in, want_out = manifest[enc]["input"], manifest[enc]["output"]
        ins, outs = list(spec.description.input), list(spec.description.output)
        if [i.name for i in ins] != [want_in["name"]]:
            problems.append(f"inputs {[i.name for i in ins]} != [{want_in['name']!r}]")
        if [o.name for o in outs] != [want_out["name"]]:
            problems.append(f"outputs {[o.name for o in outs]} != [{want_out['name']!r}]")
        info: dict[str, Any] = {"spec_version": spec.specificationVersion}
        if ins and outs and not problems:
            arr_in, arr_out = ins[0].type.multiArrayType, outs[0].type.multiArrayType
            info["input"] = {
                "shape": list(arr_in.shape),
                "dtype": dtypes.get(arr_in.dataType, str(arr_in.dataType)),
            }
            info["output"] = {
                "shape": list(arr_out.shape),
                "dtype": dtypes.get(arr_out.dataType, str(arr_out.dataType)),
            }
            if info["input"]["dtype"] != want_in["dtype"]:
                problems.append(f"input dtype {info['input']['dtype']} != {want_in['dtype']}")
            if info["output"] != {"shape": want_out["shape"], "dtype": want_out["dtype"]}:
                problems.append(f"output {info['output']} != shape {want_out['shape']} {want_out['dtype']}")
            if enc == "image" and info["input"]["shape"] != want_in["shape"]:
                problems.append(f"input shape {info['input']['shape']} != {want_in['shape']}")
            if enc == "text":
                info["lengths"] = _input_lengths(ins[0])
                if info["lengths"] != manifest["text"]["lengths"]:
                    problems.append(
                        f"token lengths {info['lengths']} != manifest {manifest['text']['lengths']}"
                    )
        info["weights"] = weight_storage(spec)
        if not _precision_ok(info["weights"], manifest["precision"]):
            problems.append(
                f"weights stored as {info['weights']} do not match precision {manifest['precision']}"
            )
        want_version = manifest.get("coreml", {}).get("spec_version")
        if want_version is not None and spec.specificationVersion != want_version:
            problems.append(f"spec version {spec.specificationVersion} != {want_version}")
        if problems:
            raise BundleError(f"Core ML package {path}: " + "; ".join(problems))
        found[enc] = info
    return found


# ------------------------------------------------------------------------------------------------
# the export
# ------------------------------------------------------------------------------------------------


def build_packages(source: ExportSource, precision: str, target: str, text_shapes: str):
    """(image MLModel, text MLModel, text lengths) converted from the checkpoint."""
    import coremltools as ct

    image_mod, text_mod = export_wrappers(copy.deepcopy(source.student))
    size, ctx = source.preprocess.image_size, source.context_length
    lengths = text_lengths(ctx, text_shapes)
    image_in = ct.TensorType(name=IMAGE_INPUT, shape=(1, 3, size, size), dtype=np.float32)
    if lengths["kind"] == "buckets":
        shape = ct.EnumeratedShapes(shapes=[(1, n) for n in lengths["values"]], default=(1, ctx))
    else:
        shape = ct.Shape(
            (1, ct.RangeDim(lower_bound=lengths["min"], upper_bound=lengths["max"], default=ctx))
        )
    text_in = ct.TensorType(name=TEXT_INPUT, shape=shape, dtype=np.int32)
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
    """
    out_dir, source = prepare_export(
        run_dir, out_dir, "coreml", "Core ML", precision, PRECISIONS, DEFAULT_PRECISION
    )
    image, text, lengths = build_packages(source, precision, target, text_shapes)
    ctx, dim, size = source.context_length, source.embedding_dim, source.preprocess.image_size
    with staged_bundle(out_dir) as staging:
        names = {enc: program_name(enc, precision) for enc in ("image", "text")}
        for enc, model in (("image", image), ("text", text)):
            model.short_description = (
                f"pocketclip student {enc} encoder ({precision}); output L2-normalised embedding"
            )
            model.save(str(staging / names[enc]))
        tokenizer = write_tokenizer_files(source.meta["tokenizer"], staging)
        output = {"name": OUTPUT, "shape": [1, dim], "dtype": "float32", "l2_normalized": True}
        quant = None
        if precision == "int8":
            quant = {
                "weights": "int8 linear symmetric per output channel (coremltools.optimize.coreml.linear_quantize_weights)",
                "activations": "float16",
                "calibration": None,
            }
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
            "coreml": {
                "format": "mlprogram",
                "minimum_deployment_target": target,
                "spec_version": image.get_spec().specificationVersion,
                "compute_precision": "float32" if precision == "fp32" else "float16",
            },
            "quantization": quant,
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
