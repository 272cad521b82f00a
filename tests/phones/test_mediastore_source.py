"""app.platform.mediastore without a JVM: MediaStoreGallery's answers (rows, status + RGB bytes) as the engine sees them."""
from __future__ import annotations

import pytest
from PIL import Image

from app.engine.decode import CORRUPT, MISSING, ImagePreprocess, PhotoDecodeError
from app.engine.scanner import ScanReport
from app.platform.mediastore import NOT_READABLE, MediaStoreSource, image_from_status

PRE = ImagePreprocess(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def rgb_answer(image: Image.Image, turns: int = 0) -> bytes:
    w, h = image.size
    return bytes([0]) + w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([turns]) + image.tobytes()


class Helper:
    def __init__(self, rows: str | None, answers: dict[int, bytes]):
        self.rows, self.answers = rows, answers

    def root(self):
        return "content://media/external/images/media"

    def list(self):
        return self.rows

    def loadRgb(self, photo_id, side):
        return self.answers.get(photo_id, b"\x01No item")


def test_rows_become_content_uris_with_size_and_modification_time():
    source = MediaStoreSource(Helper("5\t1700000000\t1234\timage/heic\tIMG 1.HEIC\n7\t1\t2\tvideo/mp4\tclip\nbad line\n", {}))
    report = ScanReport()
    files = list(source.list_photos(report))
    assert [(f.path, f.size, f.mtime_ns) for f in files] == [("content://media/external/images/media/5", 1234,
                                                             1_700_000_000 * 10**9)]
    assert report.files == 1 and report.skipped == {"not an image": 1}


def test_no_permission_keeps_the_library_as_unavailable():
    report = ScanReport()
    source = MediaStoreSource(Helper(None, {}))
    assert list(source.list_photos(report)) == [] and report.unavailable == [source.root]
    assert NOT_READABLE in report.skipped


def test_images_are_turned_upright_and_failures_are_counted():
    tall = Image.new("RGB", (2, 4), (10, 20, 30))
    tall.putpixel((0, 0), (255, 0, 0))
    upright = image_from_status(rgb_answer(tall, turns=1), "u")  # stored on its side: turned a quarter clockwise
    assert upright.size == (4, 2) and upright.getpixel((3, 0)) == (255, 0, 0)
    source = MediaStoreSource(Helper("", {3: rgb_answer(Image.new("RGB", (40, 30), (1, 2, 3))), 4: b"\x02IOException: x"}))
    loaded = source.load(f"{source.root}/3", PRE, 10, 20)
    assert loaded.pixels.shape == (3, 16, 16) and (loaded.size, loaded.mtime_ns) == (10, 20)
    with pytest.raises(PhotoDecodeError) as gone:
        source.load(f"{source.root}/9", PRE, 0, 0)
    assert gone.value.reason == MISSING
    with pytest.raises(PhotoDecodeError) as bad:
        source.load(f"{source.root}/4", PRE, 0, 0)
    assert bad.value.reason == CORRUPT
