"""`python -m export.parity` on bundles of the assembled student (clip art runs): the table, the weights
check, and a tampered text program caught on the test split."""
import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from compression.data.captioned import ArrayImages, CaptionedImages
from export import assembled_parity
from export.bundle import load_manifest, write_manifest
from export.onnx import main as export_main
from export.parity import main
from tests.compression.assembled_fixture import write_tiny_assembled_run

CAPTIONS = ["a red apple", "a green leaf on a tree", "blue water", "a yellow sun in the sky", "Two DOGS, café"]


def small_test_split() -> CaptionedImages:
    """Five plain drawings with one caption each (in place of the 260 clip art test drawings)."""
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (len(CAPTIONS), 40, 40, 3), dtype=np.uint8)
    return CaptionedImages(ArrayImages(array), [[c] for c in CAPTIONS], [f"d{i}" for i in range(len(CAPTIONS))])


@pytest.fixture(scope="module")
def assembled_onnx(tmp_path_factory):
    root = tmp_path_factory.mktemp("assembled-parity")
    write_tiny_assembled_run(root / "run")
    assert export_main(["--checkpoint", str(root / "run"), "--out", str(root / "bundle"), "--log-level", "WARNING"]) == 0
    return root / "run", root / "bundle"


@pytest.fixture(autouse=True)
def small_split(monkeypatch):
    monkeypatch.setattr(assembled_parity, "clipart_test_split", small_test_split)


def test_parity_cli_measures_an_assembled_onnx_bundle(assembled_onnx, tmp_path, capsys):
    run, bundle = assembled_onnx
    out = tmp_path / "parity.json"
    code = main(["--bundle", str(bundle), "--checkpoint", str(run), "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    for needle in ("PyTorch student (5 img / 5 capt)", "onnx (bundle)", "RSUM", "text at actual length vs length 64"):
        assert needle in text, needle
    (report,) = json.loads(out.read_text())
    assert report["passed"] and report["tokenizer_check"] == {"n": 5, "identical": True}
    assert report["image"]["cos_min"] >= 0.999 and report["text"]["cos_min"] >= 0.999
    assert report["image"]["n"] == 5 and report["text"]["n"] == 5
    assert report["length_check"]["passed"] and report["runtime"].startswith("onnxruntime")
    assert report["recall_exported"]["rsum"] == pytest.approx(report["recall_pytorch"]["rsum"])


def test_images_option_spreads_over_the_split(assembled_onnx, tmp_path, capsys):
    run, bundle = assembled_onnx
    out = tmp_path / "parity.json"
    assert main(["--bundle", str(bundle), "--checkpoint", str(run), "--images", "3", "--json", str(out)]) == 0
    (report,) = json.loads(out.read_text())
    assert report["n_images"] == 3 and report["n_captions"] == 3


def _copy_bundle(bundle, dest):
    shutil.copytree(bundle, dest)
    return dest


def test_other_weights_in_the_manifest_are_named(assembled_onnx, tmp_path, capsys):
    run, bundle = assembled_onnx
    other = _copy_bundle(bundle, tmp_path / "other")
    manifest = load_manifest(other)
    manifest["source"]["weights_sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    assert main(["--bundle", str(other), "--checkpoint", str(run)]) == 2
    err = capsys.readouterr().err
    assert "other weights" in err and "source.weights_sha256" in err and str(run) in err


def test_a_tampered_text_program_fails_parity(assembled_onnx, tmp_path, capsys):
    """The text program's weights changed (and the sha256 table rewritten to match): cosine falls, exit 1."""
    run, bundle = assembled_onnx
    bad = _copy_bundle(bundle, tmp_path / "tampered")
    manifest = load_manifest(bad)
    path = bad / manifest["text"]["program"]
    model = onnx.load(str(path))
    big = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)) if t.data_type == onnx.TensorProto.FLOAT else 0)
    weights = numpy_helper.to_array(big)
    noise = np.random.default_rng(1).standard_normal(weights.shape).astype(weights.dtype)
    big.CopyFrom(numpy_helper.from_array(weights + noise * (weights.std() + 1e-3), big.name))
    onnx.save(model, str(path))
    write_manifest(bad, {k: v for k, v in manifest.items() if k != "files"})
    code = main(["--bundle", str(bad), "--checkpoint", str(run)])
    text = capsys.readouterr().out
    assert code == 1, text
    assert "FAIL" in text and f"text program {manifest['text']['program']}: min cosine" in text
    assert "image program" not in text.split("FAIL", 1)[1]


def test_an_assembled_coreml_bundle_is_validated_off_macos(assembled_onnx, tmp_path, capsys):
    """Off macOS Core ML cannot predict: the row says so, the packages are validated, the run passes (about 1 min)."""
    from app.desktop.coreml_runtime import coreml_available
    from export.coreml import main as coreml_main

    if coreml_available()[0]:
        pytest.skip("Core ML predicts here: the skip path is not taken")
    run, _ = assembled_onnx
    bundle = tmp_path / "cm"
    assert coreml_main(["--checkpoint", str(run), "--out", str(bundle), "--log-level", "WARNING"]) == 0
    out = tmp_path / "parity.json"
    code = main(["--bundle", str(bundle), "--checkpoint", str(run), "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "coreml (cm)  (prediction skipped)" in text and "packages validated instead" in text
    (report,) = json.loads(out.read_text())
    assert report["skipped"] and set(report["structure"]) == {"image", "text"}
    assert report["tokenizer_check"]["identical"] and report["image"]["n"] == 0
