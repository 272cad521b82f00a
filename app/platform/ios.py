"""iOS bridge (imported only on iOS): Photos authorization status and the app's Documents folder as gallery.

Written against Apple's documented PhotoKit API through pyobjus:
``+[PHPhotoLibrary authorizationStatusForAccessLevel:]`` (PHAccessLevelReadWrite = 2; status 3 =
authorized, 4 = limited). The Info.plist must carry NSPhotoLibraryUsageDescription (``ios/``) or
iOS terminates the app when the Photos library is touched.

What the app indexes on iOS is a folder of files: its own Documents folder, which the Files app
shows as "On My iPhone > PocketClip" (UIFileSharingEnabled + LSSupportsOpeningDocumentsInPlace in
``ios/Info.plist.snippet``). Reading the Photos library itself needs PhotoKit asset export through
Objective-C completion blocks, which pyobjus cannot pass; it is not implemented (see app/README.md).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

PH_ACCESS_LEVEL_READ_WRITE = 2
PH_AUTHORIZED, PH_LIMITED = 3, 4


def photos_authorized() -> bool:
    """Whether the user allowed this app into the Photos library (full or limited)."""
    from pyobjus import autoclass  # iOS only (kivy-ios's pyobjus recipe)
    from pyobjus.dylib_manager import load_framework

    load_framework("/System/Library/Frameworks/Photos.framework")
    status = autoclass("PHPhotoLibrary").authorizationStatusForAccessLevel_(PH_ACCESS_LEVEL_READ_WRITE)
    return int(status) in (PH_AUTHORIZED, PH_LIMITED)


def request_photo_access(on_result: Callable[[bool], None]) -> None:
    """The Documents folder needs no permission: access is granted. Logs the Photos authorization."""
    try:
        logger.info("Photos library authorized: %s", photos_authorized())
    except Exception as e:  # noqa: BLE001 - pyobjus raises its own exception types
        logger.info("cannot read the Photos authorization status: %s", e)
    on_result(True)


def documents_dir() -> Path:
    """The app's Documents folder (``~/Documents`` inside the app sandbox)."""
    return Path(os.path.expanduser("~")) / "Documents"


def default_gallery_roots() -> list[str]:
    docs = documents_dir()
    docs.mkdir(parents=True, exist_ok=True)
    return [str(docs)]
