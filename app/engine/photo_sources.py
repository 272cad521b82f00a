"""Galleries that are not folders: the OS photo library (Android MediaStore, iOS PhotoKit) as a photo source.

A source is named by a URI root (``content://media/external/images/media``, ``photos://library``); its
photos' identities are URIs under that root (``<root>/<stable id>``), with the library's size and
modification time standing in for a file's, so the scanner's change detection and the store work as
for files. A gallery root that is a registered source's root is listed by the source instead of being
walked, and its photos are loaded by the source (the OS hands over an image at the model's input size)
instead of being read from a path. A source's root that lists none of its indexed photos any more
(access narrowed or revoked) is kept like an emptied folder (``scanner.roots_in_doubt``).

The registry is process-wide, like the JVM or the Photos library behind it: the platform registers
its source once at start (``app.launch.prepare_platform``).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

from PIL import Image

from app.engine.decode import ImagePreprocess, LoadedPhoto
from app.engine.scanner import ScannedFile, ScanReport


class PhotoSource(Protocol):
    """The OS photo library seen by the engine."""

    root: str  # URI prefix of every photo identity this source lists; also the gallery root naming it

    def list_photos(self, report: ScanReport) -> Iterator[ScannedFile]:
        """Every photo the app may read now (``path`` = ``<root>/<id>``, size, modification time in ns).

        A library that cannot be queried at all (no permission) adds ``root`` to ``report.unavailable``
        and yields nothing: its indexed photos are then kept."""

    def image(self, uri: str, side: int) -> Image.Image:
        """The photo as an upright RGB image with its shorter side about ``side`` (thumbnails, photo view).
        Raises ``PhotoDecodeError``."""

    def load(self, uri: str, pre: ImagePreprocess, size: int, mtime_ns: int) -> LoadedPhoto:
        """The photo at the model's input size, preprocessed. Raises ``PhotoDecodeError`` (reason
        ``decode.MISSING`` when the photo is gone). ``size``/``mtime_ns``: what the scan recorded."""


_sources: dict[str, PhotoSource] = {}
_lock = threading.Lock()


def is_uri(path: str) -> bool:
    """A photo identity or gallery root that names a library item, not a file."""
    return "://" in str(path)


def register(source: PhotoSource) -> None:
    """Make ``source`` serve the gallery root ``source.root`` (replacing any earlier one for that root)."""
    if not is_uri(source.root):
        raise ValueError(f"a photo source's root must be a URI, got {source.root!r}")
    with _lock:
        _sources[source.root.rstrip("/")] = source


def unregister(root: str) -> None:
    with _lock:
        _sources.pop(root.rstrip("/"), None)


def source_for(path: str) -> PhotoSource | None:
    """The registered source whose root is ``path`` or holds it, else None (a file path)."""
    path = str(path)
    if not is_uri(path):
        return None
    with _lock:
        for root, source in _sources.items():
            if path == root or path.startswith(root + "/"):
                return source
    return None
