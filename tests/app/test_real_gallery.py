"""assets/real_gallery, the desktop's default gallery: its generator (on a few fixture drawings) and the
committed folder (captions resolve, credits name every file, small enough to ship in the repository)."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from PIL import Image

from app.engine.recall import read_captions
from app.platform import PROJECT_ROOT, REAL_GALLERY
from compression.data.openclipart import split_of
from compression.data.real_photos import CHECK_SET
from tests.compression.clipart_fixture import write_drawing

NOUNS = ["apple", "boat", "chair", "drum", "engine", "feather", "guitar", "hammer", "island", "jacket", "kettle",
         "ladder", "mirror", "needle", "orange", "pencil", "rabbit", "saddle", "table", "umbrella", "violin",
         "wagon", "window", "yacht", "zebra", "anchor", "basket", "candle", "donkey", "eagle"]


def _generator():
    spec = importlib.util.spec_from_file_location("make_real_gallery", PROJECT_ROOT / "assets" / "make_real_gallery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _library(root: Path, test_drawings: int) -> list[str]:
    """Fixture drawings (400 x 200, left half transparent) until ``test_drawings`` of them land in the test split;
    returns the keys of the test ones."""
    test = []
    for i, noun in enumerate(f"{a} {b}" for a in NOUNS for b in NOUNS if a != b):
        key, colour = f"things/{noun.replace(' ', '_')}", (i % 256, 90, 160)
        png = write_drawing(root, key, noun, ["thing"], colour=colour)
        drawing = Image.new("RGBA", (400, 200), (*colour, 255))
        drawing.paste((0, 0, 0, 0), (0, 0, 200, 200))  # transparent over black: must come out white
        drawing.save(png)
        if split_of(hashlib.sha1(png.read_bytes()).hexdigest()) == "test":
            test.append(key)
            if len(test) == test_drawings:
                return test
    raise AssertionError(f"only {len(test)} fixture drawings fell in the test split")


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_generator_is_deterministic_and_writes_what_it_promises(tmp_path):
    make = _generator()
    test_keys = _library(tmp_path / "clipart", 2)
    for out in ("a", "b"):
        assert make.main(["--count", "2", "--out", str(tmp_path / out), "--clipart-root", str(tmp_path / "clipart")]) == 0
    first = _tree(tmp_path / "a")
    assert first == _tree(tmp_path / "b")  # same bytes on a re-run
    photos = sorted(n for n in first if n.startswith("photos/"))
    drawings = sorted(n for n in first if n.startswith("clipart/"))
    assert photos == sorted(f"photos/{Path(rel).stem}.jpg" for _, rel, _ in CHECK_SET)
    assert drawings == sorted(f"clipart/{k.replace('/', '-')}.png" for k in test_keys)  # test split only
    assert set(first) == {*photos, *drawings, "captions.tsv", "CREDITS.md"}
    for name in photos:
        with Image.open(tmp_path / "a" / name) as im:
            assert im.format == "JPEG" and max(im.size) <= 640
    for name in drawings:
        with Image.open(tmp_path / "a" / name) as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (320, 160)
            assert im.getpixel((10, 80)) == (255, 255, 255) and im.getpixel((300, 80)) != (255, 255, 255)
    captions = read_captions(tmp_path / "a" / "captions.tsv")  # every row resolves to a written file
    assert sorted(Path(c.photo).relative_to(tmp_path / "a").as_posix() for c in captions) == sorted(photos + drawings)
    assert {c.text for c in captions} >= {caption for _, _, caption in CHECK_SET}
    credits = first["CREDITS.md"].decode()
    assert all(f"`{name}`" in credits for name in photos + drawings)
    assert "danielbuechele" in credits and "vultilion" in credits and "CC-BY 2.0" in credits
    assert "Open Clip Art Library" in credits and "public domain" in credits


def test_the_committed_real_gallery_is_captioned_credited_and_small():
    files = {p.relative_to(REAL_GALLERY).as_posix(): p for p in REAL_GALLERY.rglob("*") if p.is_file()}
    pictures = sorted(n for n in files if n not in ("captions.tsv", "CREDITS.md"))
    assert len([n for n in pictures if n.startswith("photos/")]) == len(CHECK_SET) == 19
    assert 30 <= len([n for n in pictures if n.startswith("clipart/")]) <= 50
    captions = read_captions(REAL_GALLERY / "captions.tsv")
    assert sorted(Path(c.photo).relative_to(REAL_GALLERY).as_posix() for c in captions) == pictures  # one each
    credits = files["CREDITS.md"].read_text()
    assert all(f"`{name}`" in credits for name in pictures)
    assert sum(p.stat().st_size for p in files.values()) < 2_500_000
