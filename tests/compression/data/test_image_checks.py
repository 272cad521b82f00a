"""Tests for compression.data.image_checks: which image files the readers skip, and why, and what they cannot see."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from compression.data import image_checks
from compression.data.captioned import FileImages, ImageDecodeError
from compression.data.readers import read_image_folder
from tests.compression.data.image_fixture import make_image, png_header


def test_png_header_helper_opens_when_small(tmp_path):
    p = tmp_path / "small.png"
    p.write_bytes(png_header(10, 7))
    with Image.open(p) as im:
        assert im.size == (10, 7) and im.format == "PNG"


def test_check_image_reasons(tmp_path, monkeypatch):
    good = make_image(tmp_path / "good.jpg")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("this is not a jpeg\n")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(100_000, 100_000))
    with pytest.raises(Image.DecompressionBombError):  # the reason really is the bomb check
        Image.open(bomb)
    assert image_checks.check_image(good) is None
    assert image_checks.check_image(tmp_path / "nope.jpg") == "missing image file"
    assert image_checks.check_image(tmp_path) == "missing image file"  # a directory
    assert image_checks.check_image(empty) == "empty image file"
    assert image_checks.check_image(text) == "unreadable image"
    assert image_checks.check_image(bomb) == "unreadable image"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_check_image_between_one_and_two_times_max_pixels_is_unreadable(tmp_path, monkeypatch):
    # PIL only warns between 1x and 2x MAX_IMAGE_PIXELS; the reader must still skip it.
    p = make_image(tmp_path / "a.png", size=(64, 64))  # 4096 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)
    assert image_checks.check_image(p) == "unreadable image"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    assert image_checks.check_image(p) is None


@pytest.mark.parametrize("name", ["trunc.jpg", "trunc.png"])
def test_truncated_image_is_skipped_and_counted(tmp_path, name):
    """An interrupted download keeps its header: the header check alone passed it, and the run died
    at its first table build. Its missing end marker now skips it, counted as the readers count."""
    full = make_image(tmp_path / f"full{Path(name).suffix}", size=(256, 256), color=(10, 200, 90))
    Image.effect_noise((256, 256), 64).convert("RGB").save(full)  # noise: big enough to cut in half
    data = full.read_bytes()
    trunc = tmp_path / "sub" / name
    trunc.parent.mkdir()
    trunc.write_bytes(data[: len(data) // 2])
    assert image_checks.check_image(trunc) == "truncated image"
    assert image_checks.check_image(full) is None
    images = read_image_folder(tmp_path)
    assert images.paths == [full]
    assert images.skipped.counts == {"truncated image": 1}


def test_corrupt_middle_with_intact_end_is_named_when_decoded(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(png_header(64, 64))  # header and IEND intact, the pixel data missing
    assert image_checks.check_image(bad) is None
    with pytest.raises(ImageDecodeError, match="bad.png"):
        FileImages([bad]).load(0)


def test_many_files_use_pool_and_progress_keeps_order(tmp_path, monkeypatch):
    monkeypatch.setattr(image_checks, "_PROGRESS_MIN_FILES", 5)
    paths = [make_image(tmp_path / f"{i:03d}.png", size=(2, 2)) for i in range(30)]
    paths[7].write_bytes(b"")
    results = image_checks.check_images(paths, desc="t")
    assert results[7] == "empty image file"
    assert all(r is None for i, r in enumerate(results) if i != 7)


def test_image_checks_are_remembered_across_restarts(tmp_path, monkeypatch):
    """A resumed run over millions of images must not open every header again; a changed file is re-checked."""
    folder = tmp_path / "images"
    for i in range(5):
        make_image(folder / f"{i}.jpg")
    (folder / "bad.jpg").write_bytes(b"not an image")
    cache = tmp_path / "checks"
    first = read_image_folder(folder, check_cache=cache)
    opened = []
    real = image_checks.check_image
    monkeypatch.setattr(image_checks, "check_image", lambda p: opened.append(p) or real(p))
    again = read_image_folder(folder, check_cache=cache)
    assert opened == [] and again.paths == first.paths and again.skipped.counts == {"unreadable image": 1}
    make_image(folder / "bad.jpg")  # replaced by a good image: its size and mtime change
    fixed = read_image_folder(folder, check_cache=cache)
    assert len(opened) == 6 and len(fixed.paths) == 6
