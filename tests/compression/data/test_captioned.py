"""Tests for compression.data.captioned: how file images are loaded."""

from __future__ import annotations

from PIL import Image

from compression.data.captioned import FileImages


def test_file_images_honour_exif_orientation(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display upright
    im.save(tmp_path / "rotated.jpg", exif=exif)
    assert FileImages([tmp_path / "rotated.jpg"]).load(0).size == (20, 40)
