"""iOS's Photos library through the PhotoKit helper's C API (app/platform/photokit.py), against a pure-Python
stand-in of that API (fake_photokit.py): the Objective-C helper itself cannot be compiled here (no Xcode)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from fake_photokit import FakePhotoKit
from PIL import Image

from app.engine.decode import MISSING, ImagePreprocess, PhotoDecodeError
from app.engine.scanner import ScanReport
from app.platform.photokit import LIMITED, NOT_READABLE, ROOT, SIGNATURES, PhotoKitSource, access_note

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "ios" / "recipes" / "pocketclip" / "src"
PRE = ImagePreprocess(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def library(n: int = 4) -> dict:
    return {f"ID{i}/L0/001": (Image.new("RGB", (30 + 10 * i, 20), (40 * i, 100, 200)), 1.7e9 + i) for i in range(n)}


def listed(source) -> dict:
    return {f.path: f.mtime_ns for f in source.list_photos(ScanReport())}


def test_listing_then_only_the_changes_since_the_token():
    fake = FakePhotoKit(library())
    source = PhotoKitSource(fake)
    assert set(listed(source)) == {f"{ROOT}/ID{i}/L0/001" for i in range(4)} and source.full_listings == 1
    fake.put("ID1/L0/001", Image.new("RGB", (8, 8)), 1.8e9)  # edited
    fake.delete("ID2/L0/001")
    fake.put("NEW/L0/001", Image.new("RGB", (8, 8)), 1.9e9)
    now = listed(source)
    assert source.full_listings == 1 and fake.calls["changes_since"] == 1  # a delta, not a new listing
    assert set(now) == {f"{ROOT}/{i}" for i in ("ID0/L0/001", "ID1/L0/001", "ID3/L0/001", "NEW/L0/001")}
    assert now[f"{ROOT}/ID1/L0/001"] == int(1.8e9 * 1e9)
    fake.log.clear()  # the token now points past the log: expired
    assert set(listed(source)) == set(now) and source.full_listings == 2
    old_ios = FakePhotoKit(library(), tokens=False)  # before iOS 16: a full listing every time
    source = PhotoKitSource(old_ios)
    listed(source), listed(source)
    assert source.full_listings == 2


def test_denied_access_keeps_the_index_and_limited_access_is_told():
    report = ScanReport()
    source = PhotoKitSource(FakePhotoKit(library(), authorization=2))
    assert list(source.list_photos(report)) == [] and report.unavailable == [ROOT] and NOT_READABLE in report.skipped
    assert "selected" in access_note(LIMITED) and access_note(3) == ""


def test_images_arrive_at_the_model_size_through_the_callers_buffer():
    fake = FakePhotoKit(library())
    source = PhotoKitSource(fake)
    loaded = source.load(f"{ROOT}/ID3/L0/001", PRE, 0, 5)
    assert loaded.pixels.shape == (3, 16, 16) and loaded.mtime_ns == 5
    wide = FakePhotoKit({"P/L0/001": (Image.new("RGB", (400, 20), (1, 2, 3)), 1.0)})  # 20:1: a second, bigger buffer
    assert PhotoKitSource(wide).load(f"{ROOT}/P/L0/001", PRE, 0, 0).pixels.shape == (3, 16, 16)
    assert wide.calls["image"] == 2
    try:
        source.load(f"{ROOT}/GONE/L0/001", PRE, 0, 0)
    except PhotoDecodeError as e:
        assert e.reason == MISSING
    else:
        raise AssertionError("a deleted asset must read as missing")


def test_the_c_header_the_objective_c_and_the_python_signatures_agree():
    header = (SRC / "pocketclip_photos.h").read_text()
    source = (SRC / "pocketclip_photos.m").read_text()
    declared = set(re.findall(r"^\w[\w\s\*]*?\b(pc_photos_\w+)\(", header, re.MULTILINE))
    defined = set(re.findall(r"^PC_EXPORT [\w\s\*]*?\b(pc_photos_\w+)\(", source, re.MULTILINE))
    assert declared == defined == set(SIGNATURES)
    assert set(dir(FakePhotoKit)) >= set(SIGNATURES)


def test_the_ios_entry_path_indexes_the_photos_library(tmp_path, ios_site):
    """From the staged files only, with kivy-ios's libraries: prepare registers the Photos library and the
    engine indexes and searches it (photos:// identities) through the C API's stand-in."""
    from phone_parts import _ios_stage, standin_bundle

    bundle = standin_bundle(tmp_path / "coreml" / "offline-coreml", backend="coreml")
    staged = _ios_stage().stage(tmp_path / "app", bundle)
    gallery = tmp_path / "Photos"
    gallery.mkdir()
    for i in range(5):
        Image.new("RGB", (30 + i, 20), (i * 40, 200 - i * 30, 90)).save(gallery / f"IMG_{i:04d}.png")
    here = Path(__file__).resolve().parent  # ios_run.py, and fake_photokit.py (the C API's stand-in)
    out = subprocess.run([sys.executable, "-S", "-I", str(here / "ios_run.py"), str(ios_site), str(staged),
                          str(gallery), str(tmp_path / "data"), "photokit"],
                         cwd=staged, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["roots"] == [ROOT] and result["indexed"] == 5
    assert len(result["results"]) == 3 and all(r.startswith(ROOT + "/IMG_") for r in result["results"])
    assert (staged / "app" / "platform" / "photokit.py").is_file()


def test_the_ios_bridge_asks_off_the_main_thread_and_tells_limited_access():
    import threading

    from app.engine import photo_sources
    from app.platform import ios

    fake = FakePhotoKit(library(), authorization=LIMITED)
    try:
        ios.prepare(fake)
        answers, threads = [], []
        done = threading.Event()

        def on_result(granted):
            answers.append(granted)
            threads.append(threading.current_thread() is threading.main_thread())
            done.set()

        ios.request_photo_access(on_result)
        assert done.wait(10) and answers == [True] and threads == [False]
        assert ios.default_gallery_roots() == [ROOT] and "selected" in ios.photo_access_note()
    finally:
        photo_sources.unregister(ROOT)
        ios._state.clear()
