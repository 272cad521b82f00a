"""Tests for compression.data.readers' own readers, a folder of images and a file of sentences: good files,
and every way they go bad."""

from __future__ import annotations

import logging
import os

import pytest

from compression.data.captioned import FileImages
from compression.data.readers import IMAGE_EXTENSIONS, DataFormatError, read_image_folder, read_text_lines
from tests.compression.data.image_fixture import make_image, png_header


def test_image_folder_recursive_sorted_case_insensitive(tmp_path):
    make_image(tmp_path / "b" / "deep" / "z.PNG", fmt="PNG")
    make_image(tmp_path / "b" / "a.jpg")
    make_image(tmp_path / "c.JPEG", fmt="JPEG")
    make_image(tmp_path / "a.webp")
    make_image(tmp_path / "d.bmp")
    make_image(tmp_path / "e.gif")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "b" / "README").write_text("x")
    images = read_image_folder(tmp_path)
    assert isinstance(images, FileImages)
    rel = [p.relative_to(tmp_path).as_posix() for p in images.paths]
    assert rel == ["a.webp", "b/a.jpg", "b/deep/z.PNG", "c.JPEG", "d.bmp", "e.gif"]
    assert images.skipped.total == 0
    assert images.load(2).mode == "RGB"
    assert set(IMAGE_EXTENSIONS) == {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_image_folder_symlink_loop_does_not_hang(tmp_path):
    make_image(tmp_path / "top.jpg")
    make_image(tmp_path / "sub" / "inner.png")
    os.symlink(tmp_path, tmp_path / "sub" / "loop", target_is_directory=True)
    os.symlink(tmp_path / "sub", tmp_path / "sub" / "self", target_is_directory=True)
    images = read_image_folder(tmp_path)
    rel = [p.relative_to(tmp_path).as_posix() for p in images.paths]
    assert rel == ["sub/inner.png", "top.jpg"]


def test_image_folder_skips_bad_files_and_limit(tmp_path, caplog):
    for name in ["a.jpg", "c.jpg", "e.jpg", "f.jpg"]:
        make_image(tmp_path / name)
    (tmp_path / "b.jpg").write_text("text, not jpeg")
    (tmp_path / "d.png").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="compression.data.dataset_files"):
        images = read_image_folder(tmp_path)
    assert [p.name for p in images.paths] == ["a.jpg", "c.jpg", "e.jpg", "f.jpg"]
    assert images.skipped.counts == {"unreadable image": 1, "empty image file": 1}
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1

    limited = read_image_folder(tmp_path, limit=3)  # first 3 *usable* images after sorting
    assert [p.name for p in limited.paths] == ["a.jpg", "c.jpg", "e.jpg"]
    assert limited.skipped.counts == {"unreadable image": 1, "empty image file": 1}
    assert [p.name for p in read_image_folder(tmp_path, limit=1).paths] == ["a.jpg"]
    with pytest.raises(ValueError):
        read_image_folder(tmp_path, limit=0)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataFormatError, match=r"nothere.*not found"):
        read_image_folder(tmp_path / "nothere")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    with pytest.raises(DataFormatError, match=r"docs: no image files"):
        read_image_folder(tmp_path / "docs")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_text("nope")
    (bad / "y.png").write_bytes(png_header(100_000, 100_000))
    with pytest.raises(DataFormatError, match=r"bad: no usable images.*2 unreadable image"):
        read_image_folder(bad)


def test_text_lines_strip_blank_and_limit(tmp_path):
    p = tmp_path / "q.txt"
    p.write_text("\ufeffa dog on a beach\n\n   \n  sunset over water  \r\nmy cat\n", encoding="utf-8")
    assert read_text_lines(p) == ["a dog on a beach", "sunset over water", "my cat"]
    assert read_text_lines(p, limit=2) == ["a dog on a beach", "sunset over water"]


def test_text_lines_errors(tmp_path):
    with pytest.raises(DataFormatError, match=r"missing\.txt.*not found"):
        read_text_lines(tmp_path / "missing.txt")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\t\n")
    with pytest.raises(DataFormatError, match=r"blank\.txt: no non-blank lines"):
        read_text_lines(blank)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("fine\n\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1\.txt: line 3 is not valid UTF-8"):
        read_text_lines(bad)
