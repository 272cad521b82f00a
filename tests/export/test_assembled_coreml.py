"""The assembled student (--config clipart) as a Core ML bundle: `python -m export.coreml` on its run.

Off macOS: the packages' specs against the manifest, the traced programs vs the eager student, the
bundle's WordPiece files read by the engine. On macOS: Core ML's predictions vs PyTorch as well.
"""
import platform

import numpy as np
import pytest

from app.desktop.coreml_runtime import coreml_available
from app.engine.runtimes.bundle import read_bundle
from export.coreml import main as coreml_main
from export.coreml_package import validate_package
from formats.manifest import verify_bundle
from tests.compression.assembled_fixture import write_tiny_assembled_run

DIM = 16 + 32  # the tiny student's joint space + its ConSE channel (the text tower's width)
CAPTIONS = ["a red apple on a table", "Two DOGS running in the park!", "a small boat at sea, café", "word " * 100]
OFF_MACOS = pytest.mark.skipif(platform.system() == "Darwin", reason="on macOS Core ML parity is measured instead")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("assembled-coreml")
    return write_tiny_assembled_run(root / "run"), root / "run"


def export(run_dir, out, *flags):
    assert coreml_main(["--checkpoint", str(run_dir), "--out", str(out), "--log-level", "WARNING", *flags]) == 0
    return out


@pytest.fixture(scope="module")
def fp16_bundle(run):
    return export(run[1], run[1].parent / "coreml")


def test_export_coreml_sends_an_assembled_run_to_its_exporter_with_the_default_bundle_name(run, monkeypatch):
    import export.assembled_coreml
    from export.coreml import export_coreml

    calls = []
    monkeypatch.setattr(export.assembled_coreml, "export_assembled_coreml", lambda *args: calls.append(args) or args[1])
    out = export_coreml(run[1])
    assert out.as_posix() == "bundles/run-coreml"  # where ios/stage.py looks for it, for a run named offline
    assert calls == [(run[1], out, "fp16", True, "iOS16", "buckets")]


@pytest.mark.slow  # torch.export + coremltools of Lite0 and BERT: about 80 s on two cores
def test_the_bundle_has_the_wordpiece_contract_of_the_students_other_bundles(fp16_bundle):
    m = verify_bundle(fp16_bundle)
    assert (m["backend"], m["precision"], m["quantization"]) == ("coreml", "fp16", None)
    assert m["tokenizer"]["kind"] == "wordpiece" and {"vocab.txt", "tokenizer.json"} <= set(m["files"])
    assert m["image"]["program"] == "student_image_coreml_fp16.mlpackage"
    assert m["image"]["input"] == {"name": "image", "shape": [1, 3, 224, 224], "dtype": "float32"}
    assert m["text"]["input"] == {"name": "tokens", "shape": [1, "L"], "dtype": "int32"}
    assert m["text"]["output"] == {"name": "normalized_embedding", "shape": [1, DIM], "dtype": "float32",
                                   "l2_normalized": True}
    assert m["text"]["lengths"] == {"kind": "buckets", "values": [8, 16, 32, 64]}
    assert m["coreml"]["minimum_deployment_target"] == "iOS16" and m["coreml"]["compute_precision"] == "float16"
    assert any(f.startswith("student_text_coreml_fp16.mlpackage/") for f in m["files"])


@pytest.mark.slow
def test_the_packages_specs_match_the_manifest(fp16_bundle):
    import coremltools as ct

    m = verify_bundle(fp16_bundle)
    found = validate_package(fp16_bundle, m)
    assert found["image"]["input"] == {"shape": [1, 3, 224, 224], "dtype": "float32"}
    assert found["image"]["output"] == found["text"]["output"] == {"shape": [1, DIM], "dtype": "float32"}
    assert found["text"]["input"]["dtype"] == "int32"
    assert found["text"]["lengths"] == {"kind": "buckets", "values": [8, 16, 32, 64]}
    assert "float32" not in found["text"]["weights"] and found["text"]["weights"]["float16"] > 30522 * 32
    spec = ct.models.MLModel(str(fp16_bundle / m["text"]["program"]), skip_model_load=True).get_spec()
    assert [i.name for i in spec.description.input] == ["tokens"]
    assert [o.name for o in spec.description.output] == ["normalized_embedding"]


@pytest.mark.slow
@OFF_MACOS
def test_parity_off_macos_is_skipped_with_the_reason_and_the_traced_programs_match_pytorch(fp16_bundle):
    parity = verify_bundle(fp16_bundle)["parity"]
    assert parity["status"] == "skipped" and "macOS" in parity["reason"]
    traced = parity["exported_program"]
    assert min(traced["cos_min"].values()) >= 0.99999 and traced["tokenizer_check"] == {"identical": True}


@pytest.mark.slow
def test_the_engine_reads_the_bundles_tokenizer_like_hugging_face_and_pads_to_a_bucket(run, fp16_bundle):
    student, _ = run
    info = read_bundle(fp16_bundle)
    want = student.tokenizer(CAPTIONS, padding="max_length", truncation=True, max_length=64, return_tensors="np")
    np.testing.assert_array_equal(info.tokenizer(CAPTIONS), want["input_ids"])
    ids = info.tokenizer.encode_query("a red apple")
    assert ids.tolist() == [[101, 1037, 2417, 6207, 102]]
    np.testing.assert_array_equal(info.fit_tokens(ids), [[101, 1037, 2417, 6207, 102, 0, 0, 0]])
    assert info.image_batch == 1


@pytest.mark.slow
def test_int8_weights_with_a_length_range(run, tmp_path):
    bundle = export(run[1], tmp_path / "int8", "--precision", "int8", "--text-shapes", "range")
    m = verify_bundle(bundle)
    assert m["text"]["lengths"] == {"kind": "range", "min": 2, "max": 64}
    assert m["quantization"]["weights"].startswith("int8") and m["coreml"]["compute_precision"] == "float16"
    found = validate_package(bundle, m)  # int8 weight storage is part of the check
    assert found["text"]["lengths"] == m["text"]["lengths"] and found["text"]["weights"]["int8"] > 30522 * 32


@pytest.mark.slow
@pytest.mark.macos
@pytest.mark.skipif(not coreml_available()[0], reason=coreml_available()[1] or "needs macOS")
def test_coreml_prediction_parity_fp32(run, tmp_path):
    parity = verify_bundle(export(run[1], tmp_path / "fp32", "--precision", "fp32"))["parity"]
    assert parity["status"] == "passed" and min(parity["cos_min"].values()) >= 0.99999
