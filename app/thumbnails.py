"""Lazy thumbnail cache in the app's data directory: one small JPEG per (photo, size, modification time).

No Kivy here: the UI asks for a thumbnail from a worker thread and shows the file it gets back,
or its placeholder when it gets ``None``. A photo that cannot be decoded is remembered as such
(until it changes on disk), so a broken file costs one decode attempt, not one per scroll. The
photos themselves are only read, never written.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

from PIL import Image

from app.engine.decode import DecodeLimits, PhotoDecodeError, decode_rgb, read_photo_bytes
from app.engine.photo_sources import source_for
from formats.atomic import atomic_path

logger = logging.getLogger(__name__)

GRID_SIZE = 256  # longest side of a grid tile's thumbnail, in pixels
VIEW_SIZE = 1280  # longest side of the full-screen view's image
JPEG_QUALITY = 85


def folder_bytes(path: Path, skip: str | None = None) -> int:
    """Bytes of every file under ``path`` (a sub-folder named ``skip`` left out); vanished files count 0."""
    total = 0
    for dirpath, dirnames, files in os.walk(path):
        if skip is not None and skip in dirnames:
            dirnames.remove(skip)
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


class ThumbnailCache:
    """``get(photo, max_side)`` -> the path of a cached JPEG no larger than ``max_side``, or None.

    Files live in ``cache_dir`` named by a hash of (photo path, size, mtime, max_side), so an
    edited photo gets a new thumbnail and a stale one is never shown. Thread-safe: two threads
    asking for the same thumbnail at once both get a complete file (written under a temporary
    name, then renamed).
    """

    def __init__(self, cache_dir: str | Path, limits: DecodeLimits | None = None):
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.limits = limits or DecodeLimits()
        self._failed: dict[str, str] = {}  # key -> reason, for photos that could not be decoded
        self._lock = threading.Lock()

    @staticmethod
    def key(photo: str | Path, size: int, mtime_ns: int, max_side: int) -> str:
        name = str(photo) if "://" in str(photo) else os.path.abspath(photo)
        text = f"{name}\0{size}\0{mtime_ns}\0{max_side}"
        return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()

    def path_for(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.jpg"

    def get(self, photo: str | Path, max_side: int = GRID_SIZE) -> Path | None:
        """The cached thumbnail of ``photo`` (made now if missing), or None if the photo cannot be shown."""
        source = source_for(str(photo))
        if source is not None:
            return self._from_library(source, str(photo), max_side)
        try:
            st = os.stat(photo)
        except OSError as e:
            logger.debug("no thumbnail for %s: %s", photo, e)
            return None
        key = self.key(photo, st.st_size, st.st_mtime_ns, max_side)

        def load() -> Image.Image:
            data, _, _ = read_photo_bytes(photo, self.limits)
            return decode_rgb(data, photo, self.limits)

        return self._cached(key, photo, max_side, load)

    def _from_library(self, source, uri: str, max_side: int) -> Path | None:
        """A photo of the OS library (a content URI): the OS's own image at ``max_side``. Keyed by the URI
        alone: an edit made in the gallery app shows here once the cache is cleared."""
        return self._cached(self.key(uri, 0, 0, max_side), uri, max_side, lambda: source.image(uri, max_side))

    def _cached(self, key: str, photo, max_side: int, load) -> Path | None:
        """The thumbnail file of ``key``, made from ``load()`` unless it exists or failed before."""
        target = self.path_for(key)
        if target.is_file():
            return target
        with self._lock:
            if key in self._failed:
                return None
        try:
            image = load()
            image.thumbnail((max_side, max_side), getattr(Image, "Resampling", Image).LANCZOS)  # Pillow 9.1+ only
            self._write(image, target)
        except PhotoDecodeError as e:
            logger.info("no thumbnail for %s: %s", photo, e.reason)
            with self._lock:
                self._failed[key] = e.reason
            return None
        except OSError as e:  # the cache itself is not writable (disk full, permissions)
            logger.warning("cannot write the thumbnail of %s to %s: %s", photo, target, e)
            return None
        return target

    @staticmethod
    def _write(image: Image.Image, target: Path) -> None:
        with atomic_path(target) as tmp:
            image.save(tmp, format="JPEG", quality=JPEG_QUALITY)

    def size_bytes(self) -> int:
        """Bytes the cache takes on disk."""
        return folder_bytes(self.cache_dir)
