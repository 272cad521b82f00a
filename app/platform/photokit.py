"""iOS's Photos library as the engine's photo source, through the PhotoKit helper's C functions (ctypes).

The helper (``ios/recipes/pocketclip/src/pocketclip_photos.{h,m}``, built and linked into the app by
the kivy-ios recipe) waits for PhotoKit's block-based answers and returns plain values, because pyobjus
cannot pass Objective-C blocks. :func:`load_helper` finds its functions in the app binary
(``ctypes.CDLL(None)``); tests pass a pure-Python stand-in with the same functions instead
(``tests/phones/fake_photokit.py``). Photos are ``photos://library/<local identifier>``; PhotoKit's
modification date is the change signal (PhotoKit gives no file size: 0). Within a run, a rescan asks
only what changed since the last listing (the library's persistent change token, iOS 16+), and lists
everything again when the token expired. With limited access ("Select Photos") PhotoKit fetches only
the selected photos: those are indexed, and :func:`access_note` says so.
"""
from __future__ import annotations

import ctypes
import logging
import threading
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

ROOT = "photos://library"
PC_OK, PC_MISSING, PC_FAILED, PC_TOO_SMALL = 0, 1, 2, 3
PC_EXPIRED, PC_NO_TOKENS = -1, -2
NOT_DETERMINED, RESTRICTED, DENIED, AUTHORIZED, LIMITED = 0, 1, 2, 3, 4
ID_CAPACITY = 256  # local identifiers are ~40 bytes ("UUID/L0/001")
NOT_READABLE = "Photos library not readable (access denied or restricted): its indexed photos are kept"

SIGNATURES = {  # name: (restype, argtypes), as in pocketclip_photos.h
    "pc_photos_authorization": (ctypes.c_int, []),
    "pc_photos_request_authorization": (ctypes.c_int, []),
    "pc_photos_fetch": (ctypes.c_int64, []),
    "pc_photos_asset": (ctypes.c_int, [ctypes.c_int64, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_double)]),
    "pc_photos_modified": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_double)]),
    "pc_photos_image": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_uint8), ctypes.c_int64,
                                       ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]),
    "pc_photos_change_token": (ctypes.c_int64, [ctypes.POINTER(ctypes.c_uint8), ctypes.c_int64]),
    "pc_photos_changes_since": (ctypes.c_int64, [ctypes.POINTER(ctypes.c_uint8), ctypes.c_int64, ctypes.c_char_p,
                                                 ctypes.c_int64]),
}


def load_helper(library: Any = None) -> Any:
    """The helper's functions with their C signatures: from ``library`` (a ``ctypes.CDLL``) or the app binary."""
    lib = library if library is not None else ctypes.CDLL(None)
    for name, (restype, argtypes) in SIGNATURES.items():
        fn = getattr(lib, name)  # AttributeError: the recipe's library is not linked in
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def access_note(status: int) -> str:
    if status == LIMITED:
        return ("Only the photos you selected are indexed. To search all your photos, choose "
                "\"Full Access\" in Settings > Privacy & Security > Photos > PocketClip.")
    return ""


def _grow(call, capacity: int) -> tuple[int, ctypes.Array]:
    """Call ``call(buffer, capacity)``; when it answers -(needed) - 16, again with a buffer that fits."""
    for _ in range(2):
        buf = ctypes.create_string_buffer(capacity)
        n = call(buf, capacity)
        if n > -16:
            return n, buf
        capacity = -n - 16
    return n, buf


class PhotoKitSource:
    """:class:`app.engine.photo_sources.PhotoSource` over the PhotoKit helper."""

    root = ROOT

    def __init__(self, helper: Any):
        self._c = helper
        self._lock = threading.Lock()
        self._listing: dict[str, float] | None = None  # local id -> modification date, as of self._token
        self._token: bytes | None = None
        self.full_listings = 0  # how many times the whole library was listed (the rest were deltas)

    def authorization(self) -> int:
        return int(self._c.pc_photos_authorization())

    def request_authorization(self) -> int:
        """The system dialog when not yet determined; blocks until answered (never on the main thread)."""
        return int(self._c.pc_photos_request_authorization())

    def _token_now(self) -> bytes | None:
        n, buf = _grow(lambda b, cap: self._c.pc_photos_change_token(ctypes.cast(b, ctypes.POINTER(ctypes.c_uint8)), cap),
                       4096)
        return buf.raw[:n] if n > 0 else None

    def _full_listing(self) -> dict[str, float] | None:
        token = self._token_now()  # before the fetch: a change during the listing shows up again next time
        count = int(self._c.pc_photos_fetch())
        if count < 0:
            return None
        listing: dict[str, float] = {}
        ident = ctypes.create_string_buffer(ID_CAPACITY)
        modified = ctypes.c_double()
        for i in range(count):
            if self._c.pc_photos_asset(i, ident, ID_CAPACITY, ctypes.byref(modified)) == PC_OK:
                listing[ident.value.decode()] = modified.value
        self.full_listings += 1
        self._token = token
        return listing

    def _delta(self) -> dict[str, float] | None:
        """The last listing brought up to date with the changes since its token; None: list everything."""
        if self._listing is None or self._token is None:
            return None
        token = (ctypes.c_uint8 * len(self._token)).from_buffer_copy(self._token)
        now = self._token_now()
        n, buf = _grow(lambda b, cap: self._c.pc_photos_changes_since(token, len(self._token), b, cap), 1 << 16)
        if n < 0:  # expired, or no tokens on this iOS
            return None
        listing = dict(self._listing)
        modified = ctypes.c_double()
        for line in buf.raw[:n].decode().splitlines():
            kind, _, local_id = line.partition(" ")
            if kind == "d":
                listing.pop(local_id, None)
            elif kind == "u":
                if self._c.pc_photos_modified(local_id.encode(), ctypes.byref(modified)) == PC_OK:
                    listing[local_id] = modified.value
                else:
                    listing.pop(local_id, None)
        self._token = now
        return listing

    def list_photos(self, report: ScanReport) -> Iterator[ScannedFile]:
        with self._lock:
            if self.authorization() not in (AUTHORIZED, LIMITED):
                listing = None
            else:
                listing = self._delta()
                if listing is None:
                    listing = self._full_listing()
            self._listing = listing
        if listing is None:
            report.unavailable.append(self.root)
            report.skip(NOT_READABLE, self.root)
            return
        for local_id, modified in listing.items():
            report.files += 1
            yield ScannedFile(f"{ROOT}/{local_id}", 0, round(modified * 1e9))

    def image(self, uri: str, side: int) -> Image.Image:
        return self._fetch(uri, side)[1]

    def load(self, uri: str, pre: ImagePreprocess, size: int, mtime_ns: int) -> LoadedPhoto:
        data, image = self._fetch(uri, pre.image_size)
        try:
            pixels = preprocess_image(image, pre)
        except (ValueError, OSError) as e:
            raise PhotoDecodeError(uri, CORRUPT, f"{type(e).__name__}: {e}") from e
        return LoadedPhoto(pixels, size, mtime_ns, fingerprint_bytes(data))

    def _fetch(self, uri: str, side: int) -> tuple[bytes, Image.Image]:
        local_id = uri[len(ROOT) + 1:].encode()
        width, height = ctypes.c_int(), ctypes.c_int()
        capacity = 3 * (3 * side) ** 2  # aspect fill at side x side: up to 3:1 panoramas without a second call
        for _ in range(2):
            buf = (ctypes.c_uint8 * capacity)()
            status = self._c.pc_photos_image(local_id, side, buf, capacity, ctypes.byref(width), ctypes.byref(height))
            if status != PC_TOO_SMALL:
                break
            capacity = 3 * width.value * height.value
        if status == PC_MISSING:
            raise PhotoDecodeError(uri, MISSING)
        if status != PC_OK:
            raise PhotoDecodeError(uri, CORRUPT, "PhotoKit gave no image (iCloud-only without network, or unsupported)")
        data = bytes(memoryview(buf)[: 3 * width.value * height.value])
        return data, Image.frombytes("RGB", (width.value, height.value), data)
