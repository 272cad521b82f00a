"""`python -m app` arguments and messages, model description, saved gallery choice (no window needed)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.__main__ import parse_args
from app.gallery_settings import GallerySettings
from app.launch import missing_model_message
from app.model_info import ModelInfoError, is_model_dir, read_model_info
from app.runtime_preload import runtime_needs_torch

REPO = Path(__file__).resolve().parents[2]


def test_missing_model_is_one_clear_line_and_no_window(tmp_path):
    out = subprocess.run([sys.executable, "-m", "app", "--bundle", str(tmp_path / "nothing-here")], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=False,
                         env={**os.environ, "PYTHONPATH": str(REPO), "DISPLAY": ""})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "run `make run` first" in lines[0] and "nothing-here" in lines[0]


def test_arguments_and_defaults(tmp_path):
    args = parse_args(["--gallery", "a", "--gallery", "b", "--bundle", str(tmp_path), "--data-dir", "d"])
    assert args.gallery == [Path("a"), Path("b")] and args.bundle == tmp_path and args.data_dir == Path("d")
    default = parse_args([])
    assert default.gallery is None and default.data_dir is None
    # whichever of the defaults this checkout has (the help's order): ONNX bundle, ExecuTorch bundle, run directory
    assert default.bundle in (REPO / "bundles" / "offline-onnx", REPO / "bundles" / "offline-executorch",
                              REPO / "runs" / "offline")


def test_missing_model_message(tmp_path):
    assert "make run" in missing_model_message(tmp_path)
    (tmp_path / "student.json").write_text("{}")
    assert missing_model_message(tmp_path) is None
    assert is_model_dir(tmp_path) and not is_model_dir(tmp_path / "nope")


def test_model_info_of_a_run_directory(tiny_run):
    _, root, _ = tiny_run
    info = read_model_info(root / "runs" / "tiny")
    assert (info.kind, info.backend, info.image_size) == ("run directory", "torch", 32)
    assert info.embed_dim > 0 and info.megabytes > 0 and info.teacher == "synthclip-micro"
    text = "\n".join(info.lines())
    assert "torch" in text and "Text->image recall" in text
    assert runtime_needs_torch(root / "runs" / "tiny")


def test_model_info_of_a_bundle(tmp_path):
    manifest = {"backend": "executorch-xnnpack", "precision": "fp32", "embedding_dim": 128, "created": "today",
                "image": {"program": "i.pte", "image_size": 32}, "text": {"program": "t.pte"},
                "files": {"i.pte": {"bytes": 3_000_000}, "t.pte": {"bytes": 1_000_000}},
                "source": {"teacher": "synthclip-tiny", "student_metrics": {"t2i_R@1": 16.1, "t2i_R@10": 67.4}}}
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    for path in (tmp_path / "b", tmp_path):  # the bundle, or a folder of bundles
        info = read_model_info(path)
        assert (info.kind, info.backend, info.embed_dim, info.megabytes) == ("bundle", "executorch-xnnpack", 128, 4.0)
        assert "R@1 16.1%, R@10 67.4%" in info.lines()[-1]
    assert runtime_needs_torch(tmp_path / "b") and runtime_needs_torch(tmp_path)
    manifest["backend"] = "coreml"
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    assert not runtime_needs_torch(tmp_path / "b")
    (tmp_path / "b" / "manifest.json").write_text("{not json")
    with pytest.raises(ModelInfoError, match="manifest.json"):
        read_model_info(tmp_path / "b")


def test_gallery_choice_is_saved_in_the_data_dir(tmp_path):
    settings = GallerySettings(tmp_path)
    assert settings.folders is None  # nothing chosen yet: the platform default applies
    assert settings.save([tmp_path / "p", "~/x", tmp_path / "p"]) == [str(tmp_path / "p"), os.path.expanduser("~/x")]
    assert GallerySettings(tmp_path).folders == [str(tmp_path / "p"), os.path.expanduser("~/x")]
    assert GallerySettings(tmp_path).save([]) == [] and GallerySettings(tmp_path).folders == []
    (tmp_path / "app_settings.json").write_text("garbage")
    assert GallerySettings(tmp_path).folders is None


def test_settings_describe_the_bundle_the_engine_opens(tmp_path, monkeypatch):
    """A folder of bundles: Settings used to describe the first by name (a Core ML bundle) while the engine
    ran another on Linux; both now ask formats.model_dir.resolve_model."""
    import platform

    monkeypatch.setattr(platform, "system", lambda: "Linux")
    for name, backend in (("a-coreml", "coreml"), ("b-executorch", "executorch-xnnpack")):
        manifest = {"backend": backend, "precision": "fp32", "embedding_dim": 8,
                    "image": {"program": "i", "image_size": 32}, "text": {"program": "t"}, "files": {}}
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps(manifest))
    assert read_model_info(tmp_path).backend == "executorch-xnnpack"


def test_a_clip_art_run_directory_is_described(tmp_path):
    """The Settings panel read every run card as open_clip's ('spec' missing: no description of the default model)."""
    from tests.compression.assembled_fixture import write_tiny_assembled_run

    write_tiny_assembled_run(tmp_path / "run")
    info = read_model_info(tmp_path / "run")
    assert (info.kind, info.backend, info.embed_dim, info.image_size) == ("run directory", "torch", 16 + 32, 224)
    assert info.megabytes > 1
