"""Real photographs that installed packages carry: unpaired images for stage 1, and a small check set
whose captions this project wrote (one per photo, describing only what is visible).

Sources and licences: scikit-image's data folder (CC0 or public domain as its ``skimage.data``
docstrings state: NASA, SpaceX, Stefan van der Walt, Rachel Michetti, Lav Varshney, CC0Textures,
Brooklyn Museum); matplotlib's ``grace_hopper.jpg`` (US Navy, public domain); scikit-learn's
``china.jpg`` and ``flower.jpg``: CC-BY 2.0, "Some rights reserved by danielbuechele" (china) and by
Flickr user vultilion (flower), https://creativecommons.org/licenses/by/2.0/ (credited here and in
the README, as the licence asks).
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path

from compression.data.captioned import CaptionedImages, FileImages
from formats.errors import UserError

logger = logging.getLogger(__name__)

# (package, path inside it, caption written for this project)
CHECK_SET: tuple[tuple[str, str, str], ...] = (
    ("skimage", "data/astronaut.png", "a smiling astronaut in an orange space suit in front of an American flag"),
    ("skimage", "data/camera.png", "a black and white photo of a man with a camera on a tripod in a field"),
    ("skimage", "data/chelsea.png", "a tabby cat looking to the side"),
    ("skimage", "data/coffee.png", "a cup of coffee on a saucer with a spoon on a wooden table"),
    ("skimage", "data/coins.png", "rows of old silver coins on a grey background"),
    ("skimage", "data/rocket.jpg", "a rocket lifting off from a launch pad with a cloud of smoke"),
    ("skimage", "data/motorcycle_left.png", "a red motorcycle parked in a garage"),
    ("skimage", "data/hubble_deep_field.jpg", "galaxies and stars in deep space"),
    ("skimage", "data/retina.jpg", "a photograph of the retina at the back of a human eye"),
    ("skimage", "data/brick.png", "a brick wall"),
    ("skimage", "data/grass.png", "a close up of green grass"),
    ("skimage", "data/gravel.png", "a close up of small grey stones of gravel"),
    ("skimage", "data/page.png", "a scanned page of printed text"),
    ("skimage", "data/clock_motion.png", "a blurred photo of a round wall clock"),
    ("skimage", "data/moon.png", "the grey surface of the moon with craters"),
    ("skimage", "data/ihc.png", "a microscope image of stained tissue cells"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "an old woman in a navy uniform with glasses and a cap"),
    ("sklearn", "datasets/images/china.jpg", "a tall chinese pagoda with red and green roofs by a lake"),
    ("sklearn", "datasets/images/flower.jpg", "an orange dahlia flower with green leaves"),
)
# photos with no useful caption of their own (textures, synthetic test images): stage 1 only
UNPAIRED_ONLY: tuple[tuple[str, str], ...] = (
    ("skimage", "data/horse.png"),
    ("skimage", "data/motorcycle_right.png"),
    ("skimage", "data/cell.png"),
    ("skimage", "data/microaneurysms.png"),
    ("skimage", "data/color.png"),
    ("skimage", "data/text.png"),
)


class MissingPhotoError(UserError, FileNotFoundError):
    """A photo that its package should carry is absent; names the file."""


def _package_file(package: str, relative: str) -> Path:
    root = Path(importlib.import_module(package).__file__).parent
    path = root / relative
    if not path.is_file():
        raise MissingPhotoError(f"{path} not found (is {package} installed at the pinned version?)")
    return path


def real_photo_check() -> CaptionedImages:
    """The captioned real-photo check set (19 photos, one caption each)."""
    paths = [_package_file(pkg, rel) for pkg, rel, _ in CHECK_SET]
    return CaptionedImages(FileImages(paths), [[c] for _, _, c in CHECK_SET], [str(p) for p in paths])


def unpaired_real_photos() -> FileImages:
    """Every real photo above, captions ignored (for stage 1's unpaired images)."""
    items = [(pkg, rel) for pkg, rel, _ in CHECK_SET] + list(UNPAIRED_ONLY)
    return FileImages([_package_file(pkg, rel) for pkg, rel in items])
