"""Reading an exported Core ML package without the Core ML runtime: weight storage, inputs, structure.

Used by the exporter (``export.coreml``) and by the parity check (``export.parity``) alike, so that
neither imports the other.
"""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np

from export.bundle import BundleError
from export.errors import first_line


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
