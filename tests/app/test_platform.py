"""Platform selection and the phone bridges' pure logic (app.platform, app.platform.roots), on the desktop."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from app.platform import (
    PROJECT_ROOT,
    REAL_GALLERY,
    SAMPLE_GALLERY,
    bridge_module_name,
    default_data_dir,
    default_model_path,
    detect_platform,
    load_bridge,
)
from app.platform.roots import (
    READ_EXTERNAL_STORAGE,
    READ_MEDIA_IMAGES,
    READ_MEDIA_VISUAL_USER_SELECTED,
    collapse_roots,
    photo_access,
    photo_permissions,
    roots_from_media_paths,
)


@pytest.mark.parametrize(("facts", "expected"), [
    ({"sys_platform": "linux", "environ": {}, "system": "Linux", "machine": "x86_64"}, "desktop"),
    ({"sys_platform": "darwin", "environ": {}, "system": "Darwin", "machine": "arm64"}, "desktop"),  # a Mac
    ({"sys_platform": "linux", "environ": {"ANDROID_ARGUMENT": "/data/app"}, "system": "Linux",
      "machine": "aarch64"}, "android"),  # python-for-android
    ({"sys_platform": "linux", "environ": {"ANDROID_PRIVATE": "/data/user/0/x/files"}, "system": "Linux",
      "machine": "aarch64"}, "android"),
    ({"sys_platform": "android", "environ": {}, "system": "Android", "machine": "aarch64"}, "android"),  # CPython 3.13
    ({"sys_platform": "ios", "environ": {}, "system": "iOS", "machine": "arm64"}, "ios"),  # CPython 3.13
    ({"sys_platform": "darwin", "environ": {}, "system": "Darwin", "machine": "iPhone14,2"}, "ios"),  # kivy-ios
    ({"sys_platform": "darwin", "environ": {}, "system": "Darwin", "machine": "iPad8,1"}, "ios"),
])
def test_detect_platform(facts, expected):
    assert detect_platform(**facts, has_android_api_level=False) == expected


def test_an_android_api_level_means_android():
    assert detect_platform("linux", {}, "Linux", "aarch64", has_android_api_level=True) == "android"


def test_this_machine_is_a_desktop_and_gets_the_desktop_bridge():
    assert detect_platform() == "desktop"
    bridge = load_bridge()
    assert bridge.__name__ == "app.platform.desktop"
    assert bridge.default_gallery_roots() == [str(REAL_GALLERY)]
    granted = []
    bridge.request_photo_access(granted.append)
    assert granted == [True]


def test_the_desktop_default_gallery_is_the_real_one_and_falls_back_to_the_synthetic_sample(monkeypatch, tmp_path):
    """The offline default model knows real pictures: assets/real_gallery, not the synthetic shapes, unless a
    checkout lacks it."""
    from app.platform import desktop

    assert REAL_GALLERY == PROJECT_ROOT / "assets" / "real_gallery" and REAL_GALLERY.is_dir()
    assert (REAL_GALLERY / "captions.tsv").is_file() and (REAL_GALLERY / "CREDITS.md").is_file()
    monkeypatch.setattr(desktop, "REAL_GALLERY", tmp_path / "absent")
    assert desktop.default_gallery_roots() == [str(SAMPLE_GALLERY)]
    monkeypatch.setattr(desktop, "SAMPLE_GALLERY", tmp_path / "absent-too")
    assert desktop.default_gallery_roots() == []


def test_each_platform_has_its_own_bridge_module_imported_only_there(monkeypatch):
    assert [bridge_module_name(p) for p in ("android", "ios", "desktop")] == [
        "app.platform.android", "app.platform.ios", "app.platform.desktop"]
    with pytest.raises(ValueError, match="unknown platform"):
        bridge_module_name("windows")  # type: ignore[arg-type]
    sys.modules.pop("app.platform.android", None)
    monkeypatch.setitem(sys.modules, "jnius", None)  # as off Android (the dev env has it for tests/phones)
    with pytest.raises(ImportError, match="jnius"):  # pyjnius exists only inside an Android app
        importlib.import_module("app.platform.android")


def test_default_model_per_platform(tmp_path):
    assert default_model_path("ios", tmp_path) == tmp_path / "bundles" / "offline-coreml"
    assert default_model_path("android", tmp_path) == tmp_path / "bundles" / "offline-executorch"
    assert default_model_path("desktop", tmp_path) == tmp_path / "runs" / "offline"  # no bundle exported yet
    bundle = tmp_path / "bundles" / "offline-executorch"
    bundle.mkdir(parents=True)
    (bundle / "manifest.json").write_text("{}")
    assert default_model_path("desktop", tmp_path) == bundle
    onnx = tmp_path / "bundles" / "offline-onnx"  # starts fastest on a desktop: preferred once exported
    onnx.mkdir()
    (onnx / "manifest.json").write_text("{}")
    assert default_model_path("desktop", tmp_path) == onnx
    assert default_model_path("android", tmp_path) == bundle
    assert PROJECT_ROOT.joinpath("app", "platform").is_dir()


def test_default_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("POCKETCLIP_DATA_DIR", str(tmp_path / "shared"))
    assert default_data_dir("desktop", tmp_path / "kivy") == tmp_path / "shared"  # shared with the engine CLI
    assert default_data_dir("android", tmp_path / "kivy") == tmp_path / "kivy"  # the app's private storage
    # iOS: not Kivy's user_data_dir (inside Documents: backed up, shown in Files, and the gallery root)
    ios_dir = default_data_dir("ios", tmp_path / "Documents" / "pocketclip", home=tmp_path)
    assert ios_dir == tmp_path / "Library" / "Application Support" / "pocketclip"
    assert not ios_dir.is_relative_to(tmp_path / "Documents")


def test_the_desktop_data_dir_does_not_import_the_engine_cli(tmp_path):
    """The platform layer asks app.engine.data_dir, not the CLI entry point app.engine.__main__ (which
    builds its parser and pulls in the desktop model loader)."""
    platform = ("import sys; from app.platform import default_data_dir; default_data_dir('desktop'); "
                "print(sorted(m for m in sys.modules if m in ('app.engine.__main__', 'app.desktop.models')))")
    out = subprocess.run([sys.executable, "-c", platform], capture_output=True, text=True, check=True,
                         cwd=PROJECT_ROOT, env={**os.environ, "POCKETCLIP_DATA_DIR": str(tmp_path)})
    assert out.stdout.strip() == "[]"


def test_android_14_partial_photo_access_counts_as_access():
    """Android 14's "select photos" grants READ_MEDIA_VISUAL_USER_SELECTED alone: the app must go on with
    the selected photos, not report the permission denied."""
    assert photo_permissions(34) == [READ_MEDIA_IMAGES, READ_MEDIA_VISUAL_USER_SELECTED]
    partial = {READ_MEDIA_IMAGES: False, READ_MEDIA_VISUAL_USER_SELECTED: True}
    assert photo_access(partial, 34) == "partial"
    assert photo_access({READ_MEDIA_IMAGES: True, READ_MEDIA_VISUAL_USER_SELECTED: True}, 34) == "full"
    assert photo_access({READ_MEDIA_IMAGES: False, READ_MEDIA_VISUAL_USER_SELECTED: False}, 34) == "none"
    assert photo_access({READ_MEDIA_VISUAL_USER_SELECTED: True}, 33) == "none"  # not a permission before 14
    assert photo_access({READ_EXTERNAL_STORAGE: True}, 32) == "full"


def test_photo_permission_by_android_version():
    assert photo_permissions(21) == [READ_EXTERNAL_STORAGE]
    assert photo_permissions(32) == [READ_EXTERNAL_STORAGE]  # Android 12L
    assert photo_permissions(33) == [READ_MEDIA_IMAGES]  # Android 13
    assert photo_permissions(35) == [READ_MEDIA_IMAGES, READ_MEDIA_VISUAL_USER_SELECTED]  # Android 15: + "select photos"
    with pytest.raises(ValueError):
        photo_permissions(0)


def test_gallery_roots_from_media_store():
    sd = "/storage/emulated/0"
    media = [f"{sd}/DCIM/Camera/a.jpg", f"{sd}/DCIM/Camera/b.jpg", f"{sd}/Pictures/Screenshots/s.png",
             f"{sd}/WhatsApp/Media/WhatsApp Images/w.jpg", f"{sd}/WhatsApp/Media/WhatsApp Images/Sent/x.jpg",
             "/storage/1234-ABCD/DCIM/Camera/card.jpg", None, "", "content://not-a-path"]
    roots = roots_from_media_paths(media, [f"{sd}/DCIM", f"{sd}/Pictures"])
    assert roots == ["/storage/1234-ABCD/DCIM/Camera", f"{sd}/DCIM", f"{sd}/Pictures",
                     f"{sd}/WhatsApp/Media/WhatsApp Images"]
    assert roots_from_media_paths([], [f"{sd}/DCIM", f"{sd}/Pictures"]) == [f"{sd}/DCIM", f"{sd}/Pictures"]


def test_collapse_roots_keeps_the_outermost_folders():
    assert collapse_roots(["/a/b", "/a", "/a/b/c", "/ab", "/a/", "/x/y"]) == ["/a", "/ab", "/x/y"]
    assert collapse_roots([]) == []
