"""iOS: what kivy-ios would put in the .app (ios/stage.py's folder), and the engine path run from it
with only kivy-ios's libraries (no regex, torch or pyobjus)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from phone_parts import REPO, _ios_stage, minilm_tokenizer, standin_bundle
from PIL import Image

RUN = Path(__file__).resolve().parent / "ios_run.py"


@pytest.fixture(scope="module", params=["bpe", "wordpiece"])
def staged(request, tmp_path_factory) -> Path:
    """The staged folder with a Core ML bundle whose tokenizer files are open_clip's BPE merges or, as the
    assembled student's (the offline default's) are, a WordPiece vocab.txt."""
    bundle = standin_bundle(tmp_path_factory.mktemp("coreml") / "offline-coreml", backend="coreml",
                            tokenizer=request.param)
    return _ios_stage().stage(tmp_path_factory.mktemp("ios") / "app", bundle)


def test_the_staged_bundle_keeps_its_tokenizer_files_and_verifies(staged):
    from formats.manifest import verify_bundle

    manifest = verify_bundle(staged / "bundles" / "offline-coreml")  # every file present, sha256 as written
    config = json.loads((staged / "bundles" / "offline-coreml" / "tokenizer.json").read_text())
    vocab = config.get("vocab_file") or config.get("bpe_file")
    assert vocab in manifest["files"] and (staged / "bundles" / "offline-coreml" / vocab).is_file()


def test_the_ios_folder_holds_the_phone_code_and_the_core_ml_bundle_only(staged):
    files = {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()}
    assert {"main.py", "app/main_app.py", "app/main_app.kv", "app/engine/runtimes/ios.py", "export/bundle.py",
            "bundles/offline-coreml/manifest.json"} <= files
    assert not any(f.startswith(("app/desktop/", "compression/", "tests/", "bench/", ".venv/", "runs/", "ios/",
                                 "bundles/offline-executorch/", "assets/")) for f in files)


def test_neither_phone_ships_the_desktop_native_kernel(tmp_path):
    """On a copy of the app with the half-size kernel built (`make setup`) and a stray .so elsewhere under app/,
    Buildozer's copy (the APK) and the iOS staging leave out every shared library and the C source, even
    under a spec that took .so and .c files (the desktop build is excluded by folder, not by luck)."""
    repo = tmp_path / "repo"
    for name in ("app", "export", "formats"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy(REPO / "main.py", repo / "main.py")
    spec = (REPO / "buildozer.spec").read_text()
    assert "\nsource.include_exts = py," in spec
    (repo / "buildozer.spec").write_text(spec.replace("\nsource.include_exts = py,", "\nsource.include_exts = so,c,py,"))
    for built in ("app/engine/native/libhalf_topk.so", "app/engine/libstray.so"):
        (repo / built).write_bytes(b"\x7fELF a desktop build")
    stage = _ios_stage()
    bundle = standin_bundle(tmp_path / "offline-coreml", backend="coreml")
    for shipped in (stage.buildozer_copy(tmp_path / "apk", repo), stage.stage(tmp_path / "ios", bundle, repo)):
        files = {p.relative_to(shipped).as_posix() for p in shipped.rglob("*") if p.is_file()}
        assert {"app/engine/half_embeddings.py", "app/engine/native_half_topk.py"} <= files  # the fallback ships
        assert not [f for f in files if f.startswith("app/engine/native/")]
        assert [f for f in files if f.endswith(".so")] == ["app/engine/libstray.so"]  # the widened spec is live


def test_the_ios_engine_path_runs_from_the_staged_files(staged, ios_site, tmp_path):
    gallery = tmp_path / "Documents"
    gallery.mkdir()
    for i in range(6):
        Image.new("RGB", (30 + i, 20), (i * 40, 200 - i * 30, 90)).save(gallery / f"IMG_{i:04d}.png")
    out = subprocess.run([sys.executable, "-S", "-I", str(RUN), str(ios_site), str(staged), str(gallery),
                          str(tmp_path / "data")], cwd=staged, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["platform"] == "ios" and result["bundle"] == str(staged / "bundles" / "offline-coreml")
    # no pyobjus here: the UI is told in one line, instead of waiting on "Loading the model..." for ever
    assert len(result["failed"]) == 1 and "pyobjus" in result["failed"][0] and "\n" not in result["failed"][0]
    assert result["indexed"] == 6 and len(result["results"]) == 3
    assert result["imported_from_elsewhere"] == []
    if (staged / "bundles" / "offline-coreml" / "vocab.txt").is_file():  # WordPiece, read by the staged engine
        assert result["query_ids"] == minilm_tokenizer()(["A red circle"])["input_ids"]
