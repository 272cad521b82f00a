"""Pure selection logic behind the phone bridges (no pyjnius, no pyobjus): tested on the desktop."""
from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Mapping
from typing import Literal

logger = logging.getLogger(__name__)

READ_MEDIA_IMAGES = "android.permission.READ_MEDIA_IMAGES"
READ_EXTERNAL_STORAGE = "android.permission.READ_EXTERNAL_STORAGE"
READ_MEDIA_VISUAL_USER_SELECTED = "android.permission.READ_MEDIA_VISUAL_USER_SELECTED"
TIRAMISU = 33  # Android 13: photo access moved from READ_EXTERNAL_STORAGE to READ_MEDIA_IMAGES
UPSIDE_DOWN_CAKE = 34  # Android 14: the user may allow only the photos they select

PhotoAccess = Literal["full", "partial", "none"]


def photo_permissions(api_level: int) -> list[str]:
    """The run-time permissions to read photos on Android ``api_level``.

    Android 13+ (API 33) grants photos through READ_MEDIA_IMAGES and ignores READ_EXTERNAL_STORAGE;
    before it READ_EXTERNAL_STORAGE is the one (READ_MEDIA_IMAGES does not exist there).
    Android 14+ (API 34) adds READ_MEDIA_VISUAL_USER_SELECTED: asking for both lets the user choose
    "select photos", which grants only that one (see :func:`photo_access`).
    """
    if api_level < 1:
        raise ValueError(f"not an Android API level: {api_level}")
    if api_level >= UPSIDE_DOWN_CAKE:
        return [READ_MEDIA_IMAGES, READ_MEDIA_VISUAL_USER_SELECTED]
    return [READ_MEDIA_IMAGES] if api_level >= TIRAMISU else [READ_EXTERNAL_STORAGE]


def photo_access(granted: Mapping[str, bool], api_level: int) -> PhotoAccess:
    """What the granted permissions allow: every photo, only the photos the user selected (Android 14+),
    or none. Partial access is access: the app indexes what it can see (MediaStore lists only those)."""
    wanted = photo_permissions(api_level)
    if granted.get(wanted[0], False):
        return "full"
    if api_level >= UPSIDE_DOWN_CAKE and granted.get(READ_MEDIA_VISUAL_USER_SELECTED, False):
        return "partial"
    return "none"


def collapse_roots(folders: Iterable[str]) -> list[str]:
    """Folders with every one inside another listed folder dropped, sorted: a minimal set of scan roots."""
    unique = sorted({posixpath.normpath(f) for f in folders if f})
    kept: list[str] = []
    for folder in unique:  # sorted, so an ancestor comes before its descendants
        if not any(folder == k or folder.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(folder)
    return kept


def roots_from_media_paths(media_paths: Iterable[str | None], standard_folders: Iterable[str]) -> list[str]:
    """Gallery roots from MediaStore's file paths of the device's images, plus the standard photo folders.

    ``standard_folders`` (DCIM and Pictures) are always roots, so that photos saved there later are
    found by the next scan even when MediaStore listed none; each other folder MediaStore knows
    images in is a root unless it lies inside one. Entries without a path (MediaStore rows of
    cloud-only items) are ignored.
    """
    folders = [posixpath.dirname(p) for p in media_paths if p and p.startswith("/")]
    return collapse_roots([*standard_folders, *folders])
