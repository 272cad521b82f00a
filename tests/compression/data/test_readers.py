"""Tests for compression.data.readers: good files, and every way a real dataset goes bad."""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from compression.data import image_checks
from compression.data.captioned import CaptionedImages, FileImages, ImageDecodeError
from compression.data.readers import (
    IMAGE_EXTENSIONS,
    DataFormatError,
    read_image_folder,
    read_karpathy,
    read_pairs_tsv,
    read_text_lines,
)

# --------------------------------------------------------------------------- helpers


def make_image(
    path: Path, size: tuple[int, int] = (8, 6), color=(200, 30, 40), fmt: str | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)
    return path


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height; the pixel data is not there (header only)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def karpathy_entry(filename, split, raws, filepath=None):
    e = {
        "filename": filename,
        "split": split,
        "sentences": [{"raw": r, "tokens": r.lower().split()} for r in raws],
    }
    if filepath is not None:
        e["filepath"] = filepath
    return e


# --------------------------------------------------------------------------- image header checks


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


# --------------------------------------------------------------------------- Karpathy JSON


def coco_fixture(tmp_path: Path) -> Path:
    make_image(tmp_path / "train2014" / "COCO_train_1.jpg")
    make_image(tmp_path / "val2014" / "COCO_val_2.jpg")
    make_image(tmp_path / "val2014" / "COCO_val_3.jpg")
    make_image(tmp_path / "val2014" / "COCO_val_4.jpg")
    return write_json(
        tmp_path / "dataset_coco.json",
        {
            "images": [
                karpathy_entry("COCO_train_1.jpg", "train", ["A cat.", "A cat on a mat."], "train2014"),
                karpathy_entry("COCO_val_2.jpg", "restval", ["  Two dogs  \n"], "val2014"),
                karpathy_entry("COCO_val_3.jpg", "val", ["A boat."], "val2014"),
                karpathy_entry("COCO_val_4.jpg", "test", ["A tree.", "A tall tree."], "val2014"),
            ],
            "dataset": "coco",
        },
    )


def test_karpathy_coco_style_filepath_and_splits(tmp_path):
    js = coco_fixture(tmp_path)
    data = read_karpathy(js, None, ["train", "restval"])
    assert isinstance(data, CaptionedImages)
    assert data.names == ["train2014/COCO_train_1.jpg", "val2014/COCO_val_2.jpg"]
    assert data.captions == [["A cat.", "A cat on a mat."], ["Two dogs"]]
    assert data.images.paths == [
        tmp_path / "train2014" / "COCO_train_1.jpg",
        tmp_path / "val2014" / "COCO_val_2.jpg",
    ]
    assert data.skipped.total == 0
    assert data.images.load(1).size == (8, 6)

    test = read_karpathy(js, tmp_path, "test")  # a single string is one split
    assert test.names == ["val2014/COCO_val_4.jpg"]
    assert test.captions == [["A tree.", "A tall tree."]]


def test_karpathy_flickr_style_with_separate_image_root(tmp_path):
    root = tmp_path / "flickr30k-images"
    make_image(root / "1000.jpg")
    make_image(root / "1001.jpg")
    (tmp_path / "meta").mkdir()
    js = write_json(
        tmp_path / "meta" / "dataset_flickr30k.json",
        {
            "images": [
                karpathy_entry("1000.jpg", "test", ["A man runs.", "Someone running."]),
                {"filename": "1001.jpg", "split": "test", "sentences": [{"tokens": ["a", "dog", "barks"]}]},
                karpathy_entry("1002.jpg", "train", ["not wanted"]),
            ]
        },
    )
    data = read_karpathy(js, root, ["test"])
    assert data.names == ["1000.jpg", "1001.jpg"]
    assert data.captions == [["A man runs.", "Someone running."], ["a dog barks"]]
    assert data.images.paths == [root / "1000.jpg", root / "1001.jpg"]


def test_karpathy_skips_bad_images_and_empty_captions(tmp_path, caplog):
    make_image(tmp_path / "ok.jpg")
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "bomb.png").write_bytes(png_header(100_000, 100_000))
    make_image(tmp_path / "nocaps.jpg")
    js = write_json(
        tmp_path / "d.json",
        {
            "images": [
                karpathy_entry("ok.jpg", "test", ["Good one.", "   ", ""]),
                karpathy_entry("missing.jpg", "test", ["x"]),
                karpathy_entry("zero.jpg", "test", ["x"]),
                karpathy_entry("text.jpg", "test", ["x"]),
                karpathy_entry("bomb.png", "test", ["x"]),
                karpathy_entry("nocaps.jpg", "test", [" "]),
            ]
        },
    )
    with caplog.at_level(logging.WARNING, logger="compression.data.readers"):
        data = read_karpathy(js, None, ["test"])
    assert data.names == ["ok.jpg"]
    assert data.captions == [["Good one."]]
    assert data.skipped.counts == {
        "empty caption": 3,
        "image with no captions": 1,
        "missing image file": 1,
        "empty image file": 1,
        "unreadable image": 2,
    }
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one summary, not one line per file
    msg = warnings[0].getMessage()
    assert "d.json" in msg and "missing.jpg" in msg and "kept 1" in msg


def test_karpathy_all_skipped_raises_naming_file_and_summary(tmp_path):
    js = write_json(
        tmp_path / "gone.json",
        {"images": [karpathy_entry("a.jpg", "val", ["x"]), karpathy_entry("b.jpg", "val", ["y"])]},
    )
    with pytest.raises(DataFormatError, match=r"gone\.json.*2 missing image file"):
        read_karpathy(js, None, ["val"])


def test_karpathy_no_images_of_split(tmp_path):
    js = coco_fixture(tmp_path)
    with pytest.raises(DataFormatError, match=r"dataset_coco\.json.*'nosuch'.*splits present.*restval"):
        read_karpathy(js, None, ["nosuch"])


def test_karpathy_missing_json(tmp_path):
    with pytest.raises(DataFormatError, match=r"absent\.json.*not found"):
        read_karpathy(tmp_path / "absent.json", None, ["test"])


def test_karpathy_invalid_json(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"images": [\n  {"filename": "a.jpg",\n')
    with pytest.raises(DataFormatError, match=r"broken\.json: not valid JSON: line \d+"):
        read_karpathy(p, None, ["test"])


@pytest.mark.parametrize(
    "data, pattern",
    [
        ({"annotations": []}, r"no 'images' key"),
        ([1, 2], r"expected a JSON object"),
        ({"images": {"a": 1}}, r"'images' is a dict"),
        ({"images": ["a.jpg"]}, r"images\[0\] is a str"),
        ({"images": [{"filename": "a.jpg", "sentences": []}]}, r"images\[0\] has no 'split' key"),
        ({"images": [{"split": "test", "sentences": []}]}, r"images\[0\] has no 'filename' key"),
        ({"images": [{"split": "test", "filename": "a.jpg"}]}, r"images\[0\] has no 'sentences' key"),
        (
            {"images": [{"split": "test", "filename": "a.jpg", "sentences": [{"sentid": 1}]}]},
            r"images\[0\]\['sentences'\]\[0\] has neither a 'raw' nor a 'tokens' key",
        ),
    ],
)
def test_karpathy_wrong_structure(tmp_path, data, pattern):
    make_image(tmp_path / "a.jpg")
    js = write_json(tmp_path / "weird.json", data)
    with pytest.raises(DataFormatError, match=r"weird\.json: " + pattern):
        read_karpathy(js, None, ["test"])


def test_karpathy_missing_image_root(tmp_path):
    js = coco_fixture(tmp_path)
    with pytest.raises(DataFormatError, match=r"image root .*nowhere"):
        read_karpathy(js, tmp_path / "nowhere", ["test"])


# --------------------------------------------------------------------------- pairs TSV


def test_tsv_groups_captions_in_order_of_first_appearance(tmp_path):
    make_image(tmp_path / "imgs" / "b.jpg")
    make_image(tmp_path / "imgs" / "a.png")
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text(
        "image\tcaption\n"
        "imgs/b.jpg\tA blue car.\n"
        "\n"
        "imgs/a.png\t  A red door. \n"
        "   \n"
        "./imgs/b.jpg\tA car, blue.\r\n",
        encoding="utf-8",
    )
    data = read_pairs_tsv(tsv, None)
    assert data.names == ["imgs/b.jpg", "imgs/a.png"]
    assert data.captions == [["A blue car.", "A car, blue."], ["A red door."]]
    assert data.images.paths[0] == tmp_path / "imgs" / "b.jpg"
    assert data.skipped.total == 0


def test_tsv_filepath_title_header_and_image_root(tmp_path):
    root = tmp_path / "root"
    make_image(root / "x.jpg")
    tsv = tmp_path / "meta" / "cc.tsv"
    tsv.parent.mkdir()
    tsv.write_text("filepath\ttitle\nx.jpg\tA thing\n", encoding="utf-8")
    data = read_pairs_tsv(tsv, root)
    assert data.names == ["x.jpg"] and data.captions == [["A thing"]]


def test_tsv_absolute_paths(tmp_path):
    img = make_image(tmp_path / "abs" / "z.jpg")
    tsv = tmp_path / "p.tsv"
    tsv.write_text(f"{img}\tZed\n", encoding="utf-8")
    data = read_pairs_tsv(tsv, None)
    assert data.images.paths == [img]


def test_tsv_bad_lines_counted(tmp_path):
    make_image(tmp_path / "ok.jpg")
    make_image(tmp_path / "onlyempty.jpg")
    (tmp_path / "zero.jpg").write_bytes(b"")
    tsv = tmp_path / "bad.tsv"
    tsv.write_text(
        "ok.jpg\tfine\n"
        "no tab on this line\n"
        "ok.jpg\t\n"
        "\tcaption without image\n"
        "ok.jpg\ttoo\tmany\n"
        "onlyempty.jpg\t   \n"
        "missing.jpg\tghost\n"
        "zero.jpg\tnothing\n",
        encoding="utf-8",
    )
    data = read_pairs_tsv(tsv, None)
    assert data.names == ["ok.jpg"] and data.captions == [["fine"]]
    assert data.skipped.counts == {
        "malformed line": 3,
        "empty caption": 2,
        "image with no captions": 1,
        "missing image file": 1,
        "empty image file": 1,
    }
    assert data.skipped.examples["malformed line"] == ["line 2", "line 4", "line 5"]


def test_tsv_without_tabs_says_tsv_only(tmp_path):
    csv = tmp_path / "pairs.csv"
    csv.write_text("image,caption\na.jpg,A dog\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"pairs\.csv: no tab.*comma-separated"):
        read_pairs_tsv(csv, None)


def test_tsv_missing_and_all_skipped(tmp_path):
    with pytest.raises(DataFormatError, match=r"nofile\.tsv.*not found"):
        read_pairs_tsv(tmp_path / "nofile.tsv", None)
    tsv = tmp_path / "ghosts.tsv"
    tsv.write_text("a.jpg\tx\nb.jpg\ty\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"ghosts\.tsv: no usable images.*2 missing image file"):
        read_pairs_tsv(tsv, None)
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"empty\.tsv: no usable images"):
        read_pairs_tsv(empty, None)


def test_tsv_invalid_utf8_names_line(tmp_path):
    make_image(tmp_path / "a.jpg")
    tsv = tmp_path / "enc.tsv"
    tsv.write_bytes(b"a.jpg\tfine\na.jpg\tbad \xff\xfe byte\n")
    with pytest.raises(DataFormatError, match=r"enc\.tsv: line 2 is not valid UTF-8"):
        read_pairs_tsv(tsv, None)


# --------------------------------------------------------------------------- image folder


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
    with caplog.at_level(logging.WARNING, logger="compression.data.readers"):
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


# --------------------------------------------------------------------------- text lines


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


def test_file_images_honour_exif_orientation(tmp_path):
    from PIL import Image

    from compression.data.captioned import FileImages

    im = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display upright
    im.save(tmp_path / "rotated.jpg", exif=exif)
    assert FileImages([tmp_path / "rotated.jpg"]).load(0).size == (20, 40)


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
