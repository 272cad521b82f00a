"""The lazy thumbnail cache: made once per photo version, placeholders (None) for photos that cannot be shown."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from app.thumbnails import ThumbnailCache


def write_photo(path, size=(640, 480), seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_thumbnails_are_made_once_and_fit_the_size(tmp_path):
    photo = write_photo(tmp_path / "p.jpg")
    cache = ThumbnailCache(tmp_path / "data" / "thumbnails")
    thumb = cache.get(photo, 128)
    assert thumb is not None and thumb.parent.parent == tmp_path / "data" / "thumbnails"
    with Image.open(thumb) as im:
        assert im.size == (128, 96) and im.format == "JPEG"
    made = thumb.stat().st_mtime_ns
    assert cache.get(photo, 128) == thumb and thumb.stat().st_mtime_ns == made  # cached, not made again
    assert cache.get(photo, 64) != thumb  # another size, another file
    assert cache.size_bytes() > 0


def test_an_edited_photo_gets_a_new_thumbnail(tmp_path):
    photo = write_photo(tmp_path / "p.png", (50, 50))
    cache = ThumbnailCache(tmp_path / "t")
    first = cache.get(photo)
    write_photo(photo, (60, 30), seed=1)
    os.utime(photo, ns=(1, 10**18))
    second = cache.get(photo)
    assert second is not None and second != first
    with Image.open(second) as im:
        assert im.size == (60, 30)  # small photos are not enlarged


def test_unreadable_or_missing_photos_give_none(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a jpeg")
    cache = ThumbnailCache(tmp_path / "t")
    assert cache.get(broken) is None
    assert cache.get(broken) is None  # remembered: no second decode attempt
    assert cache.get(tmp_path / "missing.png") is None
    assert not any(p.suffix == ".jpg" for p in (tmp_path / "t").rglob("*"))
