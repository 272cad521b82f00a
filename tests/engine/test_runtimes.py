"""Encoder runtimes: the factory's choices, sha256 verification, the PyTorch runtime, ExecuTorch (slow),
and what can be checked here of the Core ML, Android and iOS bridges."""
import json
import shutil
import sys

import numpy as np
import pytest
import torch

from app.desktop.models import load_model
from app.engine.runtimes import ModelLoadError, android, ios, load_encoders, runtime_for_backend
from app.engine.runtimes.bundle import read_bundle
from compression.checkpoint import load_student
from compression.models.teacher import build_tokenizer


def test_missing_or_unknown_model_paths(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_encoders(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="neither a run directory"):
        load_encoders(tmp_path)


def test_only_the_desktop_loader_opens_a_run_directory(random_student_dir):
    with pytest.raises(ModelLoadError, match="PyTorch run directory.*phones need a bundle"):
        load_encoders(random_student_dir)


def test_torch_runtime_matches_the_student(random_student_dir):
    enc = load_model(random_student_dir)
    student, meta = load_student(random_student_dir)
    assert enc.backend == "torch" and enc.embed_dim == meta["spec"]["embed_dim"] and enc.model_id.endswith("-fp32")
    pixels = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = torch.nn.functional.normalize(student.encode_image(torch.from_numpy(pixels)), dim=-1)
        tokens = build_tokenizer("synthclip-micro", 32)(["a red circle", "two blue squares on a white background"])
        ref_txt = torch.nn.functional.normalize(student.encode_text(tokens), dim=-1)
    torch.testing.assert_close(torch.from_numpy(enc.encode_images(pixels)), ref, rtol=0, atol=1e-5)
    # each query at its own (cut) length equals the full padded sequence
    got = enc.encode_queries(["a red circle", "two blue squares on a white background"])
    torch.testing.assert_close(torch.from_numpy(got), ref_txt, rtol=0, atol=1e-5)


def test_bundle_is_read_and_verified(fake_bundle, random_student_dir):
    info = read_bundle(fake_bundle)
    meta = json.loads((random_student_dir / "student.json").read_text())
    assert info.preprocess.image_size == meta["preprocess"]["image_size"]
    assert info.model_id == "abababababababab-fp32" and info.image_batch == 1
    train = build_tokenizer("synthclip-micro", 32)(["a red circle 🐱"]).numpy()
    np.testing.assert_array_equal(info.tokenizer(["a red circle 🐱"]), train)  # the bundle's own BPE files
    assert info.fit_tokens(np.array([[49406, 320, 49407]])).shape == (1, 3)


@pytest.mark.parametrize("victim", ["student_image_xnnpack_fp32.pte", "bpe_simple_vocab_16e6.txt.gz"])
def test_sha256_mismatch_is_refused_naming_the_file(fake_bundle, victim):
    path = fake_bundle / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=f"{victim} modified"):
        load_encoders(fake_bundle)


def test_missing_bundle_file_is_refused(fake_bundle):
    (fake_bundle / "student_text_xnnpack_fp32.pte").unlink()
    with pytest.raises(ModelLoadError, match="student_text_xnnpack_fp32.pte missing"):
        load_encoders(fake_bundle)


@pytest.mark.slow  # imports the ExecuTorch runtime (seconds)
def test_unloadable_program_is_a_clear_error(fake_bundle):
    with pytest.raises(ModelLoadError, match="cannot load the image program"):
        load_model(fake_bundle)  # desktop ExecuTorch (app.desktop); the engine alone refuses it, see below


def test_the_engine_alone_refuses_a_desktop_only_bundle(fake_bundle):
    with pytest.raises(ModelLoadError, match="executorch runtime is desktop-only"):
        load_encoders(fake_bundle)


def test_runtime_choice_by_platform(monkeypatch):
    monkeypatch.delenv("ANDROID_ARGUMENT", raising=False)
    monkeypatch.delenv("ANDROID_PRIVATE", raising=False)
    monkeypatch.setattr(ios.sys, "platform", "linux")
    monkeypatch.setattr(ios.platform, "system", lambda: "Linux")
    assert runtime_for_backend("executorch-xnnpack") == "executorch"
    with pytest.raises(ModelLoadError, match="only on macOS or iOS"):
        runtime_for_backend("coreml")
    with pytest.raises(ModelLoadError, match="unknown bundle backend"):
        runtime_for_backend("tflite")
    monkeypatch.setenv("ANDROID_ARGUMENT", "/data/app")  # python-for-android sets it
    assert runtime_for_backend("executorch-xnnpack") == "android"
    monkeypatch.delenv("ANDROID_ARGUMENT")
    monkeypatch.setattr(ios.sys, "platform", "ios")
    assert runtime_for_backend("coreml") == "ios"
    monkeypatch.setattr(ios.sys, "platform", "darwin")
    monkeypatch.setattr(ios.platform, "system", lambda: "Darwin")
    assert runtime_for_backend("coreml") in ("coreml", "ios")


def test_phone_bridges_load_only_on_their_platform(fake_bundle, monkeypatch):
    """pyjnius and pyobjus exist only inside the apps: constructing a bridge elsewhere is a clear error,
    and importing the modules (done by this test file) never needs them."""
    info = read_bundle(fake_bundle)
    monkeypatch.setitem(sys.modules, "jnius", None)
    monkeypatch.setitem(sys.modules, "pyobjus", None)
    with pytest.raises(ModelLoadError, match="Java classes were not resolved"):
        android.AndroidExecuTorchEncoders(info)
    with pytest.raises(ModelLoadError, match="pyobjus"):
        ios.IOSCoreMLEncoders(info)
    assert "jnius" not in sys.modules or sys.modules["jnius"] is None


def test_coreml_runtime_off_macos_says_why(fake_bundle):
    from app.desktop.coreml_runtime import CoreMLEncoders, coreml_available

    ok, why = coreml_available()
    if ok:
        pytest.skip("Core ML is available here")
    with pytest.raises(ModelLoadError, match="Core ML"):
        CoreMLEncoders(read_bundle(fake_bundle))
    assert why


@pytest.mark.slow
def test_executorch_bundle_runs_and_agrees_with_pytorch(tmp_path, random_student_dir, make_gallery, fake_bundle):
    """A real ExecuTorch bundle (export.executorch, fp32): same embeddings as PyTorch, same search results,
    and chosen from a folder of bundles on Linux (where the Core ML one cannot run)."""
    from app.engine.engine import SearchEngine
    from export.executorch import export_executorch

    bundles = tmp_path / "bundles"
    out = export_executorch(random_student_dir, bundles / "b-executorch", verify=False)
    coreml = bundles / "a-coreml"
    shutil.copytree(fake_bundle, coreml)
    manifest = json.loads((coreml / "manifest.json").read_text())
    (coreml / "manifest.json").write_text(json.dumps({**manifest, "backend": "coreml"}))
    et = load_model(bundles)
    pt = load_model(random_student_dir)
    assert et.backend == "executorch-xnnpack" and et.model_id == pt.model_id  # fp32: one embedding space
    pixels = np.random.default_rng(1).normal(size=(5, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(et.encode_images(pixels), pt.encode_images(pixels), atol=1e-4)
    queries = ["a red circle", "a very long query " * 20, "🐱"]
    np.testing.assert_allclose(et.encode_queries(queries), pt.encode_queries(queries), atol=1e-4)
    gallery = make_gallery(12)
    with SearchEngine(tmp_path / "et-data", et) as a, SearchEngine(tmp_path / "pt-data", pt) as b:
        a.update([gallery])
        b.update([gallery])
        assert [r.path for r in a.search_text("a red circle", k=5)] == [r.path for r in b.search_text("a red circle", k=5)]
    assert out.is_dir()
