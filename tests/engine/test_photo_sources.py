"""The OS photo library as a gallery (app.engine.photo_sources): content URIs are the photos' identities,
the library's id and modification time drive change detection, and a library that suddenly lists
nothing (photo access narrowed or revoked) keeps the index."""
from __future__ import annotations

import pytest
from PIL import Image

from app.engine import photo_sources
from app.engine.decode import MISSING, LoadedPhoto, PhotoDecodeError, preprocess_image
from app.engine.engine import SearchEngine
from app.engine.fingerprint import fingerprint_bytes
from app.engine.scanner import ScannedFile

ROOT = "content://media/external/images/media"


class FakeLibrary:
    """A photo library in memory: id -> (colour, date modified in seconds)."""

    root = ROOT

    def __init__(self, n: int):
        self.photos = {i + 1: (((37 * i) % 256, (91 * i) % 256, (53 * i + 100) % 256), 1_700_000_000 + i)
                       for i in range(n)}
        self.denied = False
        self.loads = 0

    def list_photos(self, report):
        if self.denied:
            report.unavailable.append(self.root)
            return
        for pid, (_, modified) in sorted(self.photos.items()):
            report.files += 1
            yield ScannedFile(f"{ROOT}/{pid}", 1000 + pid, modified * 1_000_000_000)

    def image(self, uri, side):
        pid = int(uri.rsplit("/", 1)[1])
        if pid not in self.photos:
            raise PhotoDecodeError(uri, MISSING)
        return Image.new("RGB", (side * 2, side), self.photos[pid][0])

    def load(self, uri, pre, size, mtime_ns):
        pid = int(uri.rsplit("/", 1)[1])
        if pid not in self.photos:
            raise PhotoDecodeError(uri, MISSING)
        self.loads += 1
        image = Image.new("RGB", (pre.image_size + 8, pre.image_size), self.photos[pid][0])
        return LoadedPhoto(preprocess_image(image, pre), size, mtime_ns, fingerprint_bytes(image.tobytes()))


@pytest.fixture
def library():
    lib = FakeLibrary(6)
    photo_sources.register(lib)
    yield lib
    photo_sources.unregister(ROOT)


def test_a_library_is_indexed_and_searched_by_content_uri(tmp_path, library, fake_encoders, make_gallery):
    folder = make_gallery(2)
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        update = engine.update([ROOT, folder])
        assert update.index.indexed == 8 and update.scan.report.files == 8
        paths = {r.path for r in engine.search_text("a photo", k=8)}
        assert {f"{ROOT}/{i}" for i in range(1, 7)} <= paths
        similar = engine.search_image(f"{ROOT}/1", k=3)
        assert len(similar) == 3 and f"{ROOT}/1" not in {r.path for r in similar}


def test_library_changes_by_id_and_modification_time(tmp_path, library, fake_encoders):
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([ROOT])
        library.loads = 0
        assert engine.scan([ROOT]).plan.unchanged == 6
        _, modified = library.photos[2]
        library.photos[2] = ((1, 2, 3), modified + 5)  # edited in the gallery app
        del library.photos[3]  # deleted
        library.photos[9] = ((9, 9, 9), modified)  # a new photo
        scan = engine.scan([ROOT])
        assert [pid for pid, _ in scan.plan.changed] and len(scan.plan.deleted) == 1 and len(scan.plan.new) == 1
        assert engine.index().indexed == 2 and library.loads == 2
        assert engine.stats().indexed == 6


def test_a_library_that_lists_nothing_after_a_permission_change_keeps_the_index(tmp_path, library, fake_encoders):
    with SearchEngine(tmp_path / "data", fake_encoders) as engine:
        engine.update([ROOT])
        saved = dict(library.photos)
        library.photos.clear()  # Android 14 "select photos" with nothing selected; iOS limited with none
        scan = engine.scan([ROOT])
        assert scan.plan.deleted == [] and scan.plan.kept_roots == [ROOT]
        library.denied = True  # permission revoked: the query itself fails
        scan = engine.scan([ROOT])
        assert scan.plan.deleted == [] and scan.report.unavailable == [ROOT]
        library.denied = False
        library.photos.update(saved)
        scan = engine.scan([ROOT])
        assert scan.plan.new == [] and scan.plan.unchanged == 6 and engine.stats().indexed == 6
        # partial access that still shows some photos: what is no longer visible leaves the index
        library.photos = {1: saved[1], 2: saved[2]}
        assert len(engine.scan([ROOT]).plan.deleted) == 4


def test_a_library_uri_is_not_a_file_path(library):
    assert photo_sources.source_for(f"{ROOT}/12") is library and photo_sources.source_for("/sdcard/DCIM/a.jpg") is None
    assert photo_sources.source_for("content://media/external/images/mediaX/1") is None
    with pytest.raises(ValueError):
        photo_sources.register(type("Bad", (), {"root": "/sdcard"})())


def test_thumbnails_of_library_photos_come_from_the_library(tmp_path, library):
    from app.thumbnails import ThumbnailCache

    cache = ThumbnailCache(tmp_path / "thumbs")
    path = cache.get(f"{ROOT}/2", 64)
    assert path is not None and Image.open(path).size == (64, 32)
    assert cache.get(f"{ROOT}/2", 64) == path  # cached
    assert cache.get(f"{ROOT}/99", 64) is None  # deleted: the placeholder
