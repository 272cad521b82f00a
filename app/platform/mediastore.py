"""Android's photo library as the engine's photo source, over the APK's ``org.pocketclip.MediaStoreGallery``.

No pyjnius here: the Java object is made on the main thread (``app.platform.android.prepare``) and handed
in; this module only calls its ``root()``, ``list()`` (a String) and ``loadRgb(id, side)`` (a byte[]), which
need no class lookup, so the indexer thread and its decode workers may call them (python-for-android
#2242; ``app/engine/runtimes/android.py``). Photos are content URIs (``content://media/external/images/
media/<_ID>``); MediaStore's ``_ID`` is stable and ``DATE_MODIFIED`` (seconds) with ``SIZE`` tells a
change. The image comes from the OS at the model's input size (the system thumbnail on Android 10+),
so HEIC and every format the phone decodes are indexed, and nothing is read through a file path.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from PIL import Image

from app.engine.decode import (
    CORRUPT,
    MISSING,
    ImagePreprocess,
    LoadedPhoto,
    PhotoDecodeError,
    preprocess_image,
)
from app.engine.fingerprint import fingerprint_bytes
from app.engine.scanner import ScannedFile, ScanReport

logger = logging.getLogger(__name__)

OK, GONE, UNDECODABLE = 0, 1, 2  # MediaStoreGallery's status byte
NOT_READABLE = "photo library not readable (no photo permission?): its indexed photos are kept"
_T = getattr(Image, "Transpose", Image)  # Transpose: Pillow 9.1+; the phones have 8.x (8.4.0, 8.2.0)
ROTATIONS = {1: _T.ROTATE_270, 2: _T.ROTATE_180, 3: _T.ROTATE_90}  # quarter turns clockwise -> Pillow's turn


def _bytes(data: Any) -> bytes:
    """A Java byte[] as pyjnius returns it (a ``jnius.ByteArray``: ``tostring()`` copies it in one go) as bytes."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if hasattr(data, "tostring"):
        return bytes(data.tostring())
    return bytes(b & 0xFF for b in data)  # a list of signed ints


def parse_rows(text: str, root: str) -> Iterator[tuple[ScannedFile, str, str]]:
    """MediaStoreGallery.list()'s lines as (scanned photo, MIME type, display name); bad lines are skipped."""
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 5:
            continue
        try:
            photo_id, modified, size = int(parts[0]), int(parts[1]), int(parts[2])
        except ValueError:
            continue
        yield ScannedFile(f"{root}/{photo_id}", size, modified * 1_000_000_000), parts[3], parts[4]


def image_from_status(data: bytes, uri: str) -> Image.Image:
    """MediaStoreGallery.loadRgb()'s answer as an upright RGB image; PhotoDecodeError for its failures."""
    if not data:
        raise PhotoDecodeError(uri, CORRUPT, "empty answer from MediaStore")
    if data[0] == GONE:
        raise PhotoDecodeError(uri, MISSING, data[1:].decode("utf-8", "replace"))
    if data[0] != OK or len(data) < 10:
        raise PhotoDecodeError(uri, CORRUPT, data[1:].decode("utf-8", "replace"))
    width, height, turns = int.from_bytes(data[1:5], "big"), int.from_bytes(data[5:9], "big"), data[9]
    if width < 1 or height < 1 or len(data) != 10 + 3 * width * height:
        raise PhotoDecodeError(uri, CORRUPT, f"bitmap of {width}x{height} with {len(data) - 10} bytes")
    image = Image.frombytes("RGB", (width, height), data[10:])
    return image.transpose(ROTATIONS[turns]) if turns in ROTATIONS else image


class MediaStoreSource:
    """:class:`app.engine.photo_sources.PhotoSource` over a ``MediaStoreGallery`` (or a test double of it)."""

    def __init__(self, gallery: Any):
        self._gallery = gallery
        self.root = str(gallery.root()).rstrip("/")

    def list_photos(self, report: ScanReport) -> Iterator[ScannedFile]:
        text = self._gallery.list()
        if text is None:
            report.unavailable.append(self.root)
            report.skip(NOT_READABLE, self.root)
            return
        for scanned, mime, name in parse_rows(str(text), self.root):
            if mime and not mime.startswith("image/"):
                report.skip("not an image", name or scanned.path)
                continue
            report.files += 1
            yield scanned

    def _fetch(self, uri: str, side: int) -> tuple[bytes, Image.Image]:
        try:
            photo_id = int(uri.rsplit("/", 1)[1])
        except (IndexError, ValueError) as e:
            raise PhotoDecodeError(uri, MISSING, "not a MediaStore item") from e
        data = _bytes(self._gallery.loadRgb(photo_id, side))
        return data, image_from_status(data, uri)

    def image(self, uri: str, side: int) -> Image.Image:
        return self._fetch(uri, side)[1]

    def load(self, uri: str, pre: ImagePreprocess, size: int, mtime_ns: int) -> LoadedPhoto:
        data, image = self._fetch(uri, pre.image_size)
        try:
            pixels = preprocess_image(image, pre)
        except (ValueError, OSError) as e:
            raise PhotoDecodeError(uri, CORRUPT, f"{type(e).__name__}: {e}") from e
        return LoadedPhoto(pixels, size, mtime_ns, fingerprint_bytes(data))
