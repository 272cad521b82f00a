"""Tests for compression.data.karpathy: Karpathy-split JSON (COCO, Flickr30K), good and every way it goes bad."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from compression.data.captioned import CaptionedImages
from compression.data.karpathy import read_karpathy
from compression.data.readers import DataFormatError
from tests.compression.data.image_fixture import make_image, png_header


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
    with caplog.at_level(logging.WARNING, logger="compression.data.dataset_files"):
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
