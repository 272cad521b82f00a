"""Core ML export of the tiny run: conversion and structural validation here, prediction parity on macOS."""

import platform

import pytest
import torch

from app.desktop.coreml_runtime import coreml_available
from compression.checkpoint import load_student
from export.bundle import BundleError, verify_bundle
from export.coreml import bucket_lengths, convert_encoder, validate_package, weight_storage
from export.parity import check_parity
from export.wrappers import export_wrappers, image_example


def test_bucket_lengths():
    assert bucket_lengths(32) == [8, 16, 32]
    assert bucket_lengths(77) == [8, 16, 32, 64, 77]


def test_packages_are_valid_ml_programs(coreml_bundle):
    m = verify_bundle(coreml_bundle)
    assert m["backend"] == "coreml" and m["precision"] == "fp16"
    assert m["image"]["program"] == "student_image_coreml_fp16.mlpackage"
    assert m["image"]["input"] == {"name": "image", "shape": [1, 3, 32, 32], "dtype": "float32"}
    assert m["text"]["input"]["name"] == "tokens" and m["text"]["input"]["dtype"] == "int32"
    assert m["text"]["lengths"] == {"kind": "buckets", "values": [8, 16, 32]}
    assert m["coreml"]["minimum_deployment_target"] == "iOS16"
    found = validate_package(coreml_bundle, m)
    assert found["image"]["output"] == {"shape": [1, 64], "dtype": "float32"}
    assert found["text"]["lengths"] == m["text"]["lengths"]
    assert found["text"]["weights"]["float16"] > 3_000_000 and "float32" not in found["text"]["weights"]
    assert any(f.startswith("student_text_coreml_fp16.mlpackage/") for f in m["files"])


def test_validation_catches_a_mismatch(coreml_bundle):
    m = verify_bundle(coreml_bundle)
    m["text"]["input"]["name"] = "input_ids"
    with pytest.raises(BundleError, match="student_text_coreml_fp16.mlpackage.*input_ids"):
        validate_package(coreml_bundle, m)


def test_int8_weights(tiny_paths):
    student, _ = load_student(tiny_paths[0])
    image, _ = export_wrappers(student)
    import coremltools as ct
    import numpy as np

    model = convert_encoder(
        image,
        image_example(32),
        None,
        ct.TensorType(name="image", shape=(1, 3, 32, 32), dtype=np.float32),
        "int8",
        "iOS16",
        "image",
    )
    storage = weight_storage(model.get_spec())
    assert storage["int8"] > 2 * storage["float16"]  # the matrices; biases, norms, positions stay fp16


@pytest.mark.skipif(platform.system() == "Darwin", reason="on macOS the prediction test below runs instead")
def test_parity_is_skipped_with_the_reason_off_macos(coreml_bundle, tiny_paths):
    report = check_parity(coreml_bundle, cache_dir=tiny_paths[1], n_images=8)
    assert report.skipped and "macOS" in report.skipped
    assert report.structure["text"]["lengths"]["kind"] == "buckets"
    assert verify_bundle(coreml_bundle)["parity"]["status"] == "skipped"


@pytest.mark.macos
@pytest.mark.skipif(
    not coreml_available()[0], reason=coreml_available()[1] or "needs macOS"
)
def test_coreml_prediction_parity(coreml_bundle, tiny_paths):
    report = check_parity(coreml_bundle, cache_dir=tiny_paths[1], n_images=16)
    assert report.passed, report.failures
    assert report.image.cos_min >= 0.999 and report.text.cos_min >= 0.999
    assert report.length_check["passed"]
    assert torch.isfinite(torch.tensor(list(report.recall_exported.values()))).all()
