"""The ONNX Runtime encoders: the student's numbers, search through the engine, and no torch in the process."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from app.engine.engine import SearchEngine
from app.engine.runtimes import load_encoders, runtime_for_backend
from app.runtime_preload import runtime_needs_torch
from compression.checkpoint import load_student
from compression.models.teacher import build_tokenizer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def onnx_bundle(random_student_dir, tmp_path_factory) -> Path:
    """The random student exported to ONNX (parity is checked in tests/export on a trained run)."""
    from export.onnx import export_onnx

    return export_onnx(random_student_dir, tmp_path_factory.mktemp("onnx") / "bundle", verify=False)


def test_onnx_bundle_runs_the_student(onnx_bundle, random_student_dir):
    enc = load_encoders(onnx_bundle)
    assert enc.backend == "onnx" and runtime_for_backend("onnx") == "onnx"
    assert not runtime_needs_torch(onnx_bundle)  # the app skips its torch preload for this bundle
    student, _ = load_student(random_student_dir)
    pixels = np.random.default_rng(0).normal(size=(5, 3, 32, 32)).astype(np.float32)
    texts = ["a red circle", "two blue squares on a white background", "x"]
    with torch.no_grad():
        ref_img = torch.nn.functional.normalize(student.encode_image(torch.from_numpy(pixels)), dim=-1)
        ref_txt = torch.nn.functional.normalize(student.encode_text(build_tokenizer("synthclip-micro", 32)(texts)), dim=-1)
    torch.testing.assert_close(torch.from_numpy(enc.encode_images(pixels)), ref_img, rtol=0, atol=1e-5)  # one call, batch 5
    torch.testing.assert_close(torch.from_numpy(enc.encode_queries(texts)), ref_txt, rtol=0, atol=1e-5)


def test_engine_search_through_the_onnx_bundle(onnx_bundle, make_gallery, tmp_path):
    gallery = make_gallery(6)
    with SearchEngine(tmp_path / "index", load_encoders(onnx_bundle)) as engine:
        update = engine.update([gallery])
        assert update.index.indexed == 6
        photo = min(gallery.rglob("*.jpg"))
        twin = tmp_path / "twin.jpg"
        shutil.copyfile(photo, twin)  # not in the index: its nearest photo is the original
        assert Path(engine.search_image(twin, 1)[0].path) == photo
        assert len(engine.search_text("a red circle", 3)) == 3


def test_a_folder_of_bundles_opens_the_onnx_one_first_on_a_desktop(onnx_bundle, fake_bundle, tmp_path, monkeypatch):
    from app.desktop import executorch_runtime
    from app.desktop.models import load_model
    from app.engine.runtimes import ios

    monkeypatch.setattr(ios.platform, "system", lambda: "Linux")
    folder = tmp_path / "bundles"
    shutil.copytree(fake_bundle, folder / "a-executorch")  # sorts first by name
    shutil.copytree(onnx_bundle, folder / "b-onnx")

    def not_this_one(*args, **kwargs):
        raise AssertionError("the ExecuTorch bundle was opened before the ONNX one")

    monkeypatch.setattr(executorch_runtime, "ExecuTorchEncoders", not_this_one)
    assert load_model(folder).backend == "onnx"


PROBE = """
import json, sys
from app.engine.engine import SearchEngine
from app.engine.runtimes import load_encoders
with SearchEngine(sys.argv[2], load_encoders(sys.argv[1], threads=1)) as engine:
    engine.update([sys.argv[3]])
    hits = engine.search_text("a red circle", 3)
heavy = ("torch", "executorch", "kivy", "open_clip", "timm", "compression", "export.onnx", "onnx")
print(json.dumps({"loaded": [m for m in heavy if m in sys.modules], "hits": len(hits),
                  "onnxruntime": "onnxruntime" in sys.modules}))
"""


def test_a_search_through_the_onnx_bundle_never_imports_torch(onnx_bundle, make_gallery, tmp_path):
    gallery = make_gallery(4)
    out = subprocess.run([sys.executable, "-c", PROBE, str(onnx_bundle), str(tmp_path / "index"), str(gallery)],
                         cwd=REPO, capture_output=True, text=True, check=False, timeout=120,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"loaded": [], "hits": 3, "onnxruntime": True}


def test_a_search_process_never_builds_the_image_session(onnx_bundle, tmp_path):
    """Launch-to-first-result: a search needs only the text program; the image session is built on the
    first image batch, and a broken image program is still a clear ModelLoadError naming it."""
    from app.engine.runtimes import ModelLoadError

    enc = load_encoders(onnx_bundle)
    assert set(enc._sessions) == {"text"}
    enc.encode_queries(["a red circle"])
    assert set(enc._sessions) == {"text"}
    assert enc.encode_images(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, enc.embed_dim)
    assert set(enc._sessions) == {"text", "image"}

    broken = tmp_path / "broken"
    shutil.copytree(onnx_bundle, broken)
    image = next(broken.glob("student_image_*.onnx"))
    image.write_bytes(b"not an onnx program")
    enc = load_encoders(broken, verify=False)  # the sha256 check would refuse it first
    with pytest.raises(ModelLoadError, match="cannot load the image program"):
        enc.encode_images(np.zeros((1, 3, 32, 32), np.float32))
