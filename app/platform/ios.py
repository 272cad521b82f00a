"""iOS bridge (imported only on iOS): the Photos library as the gallery, through the PhotoKit helper.

The gallery is the user's Photos library: :func:`prepare` (at start) finds the helper's C functions
in the app binary (``app.platform.photokit``; built by the kivy-ios recipe) and registers it as the
engine's photo source. Without the helper (an app built without the recipe) the gallery is the app's
Documents folder, as described below.

Written against Apple's documented PhotoKit API through pyobjus:
``+[PHPhotoLibrary authorizationStatusForAccessLevel:]`` (PHAccessLevelReadWrite = 2; status 3 =
authorized, 4 = limited). The Info.plist must carry NSPhotoLibraryUsageDescription (``ios/``) or
iOS terminates the app when the Photos library is touched.

The fallback gallery is a folder of files: the app's Documents folder, which the Files app shows as
"On My iPhone > PocketClip" (UIFileSharingEnabled + LSSupportsOpeningDocumentsInPlace in
``ios/Info.additions.plist``). PhotoKit answers through Objective-C blocks, which pyobjus cannot pass:
hence the C helper of the kivy-ios recipe.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

_state: dict[str, object] = {}  # "source": the registered PhotoKitSource (or None); "status": last authorization


def prepare(helper: object = None) -> object:
    """Register the Photos library as the gallery (``helper``: the C functions; default: the app binary's)."""
    if "source" not in _state or helper is not None:
        from app.engine import photo_sources
        from app.platform.photokit import PhotoKitSource, load_helper

        try:
            source = PhotoKitSource(helper if helper is not None else load_helper())
        except (AttributeError, OSError) as e:  # the recipe's library is not linked in
            logger.warning("PhotoKit helper unavailable (%s): the gallery is the Documents folder", e)
            _state["source"] = None
            return None
        photo_sources.register(source)
        _state["source"] = source
    return _state["source"]


def photo_access_note() -> str:
    """A line for the UI under limited access ("Select Photos"), else ""."""
    from app.platform.photokit import access_note

    status = _state.get("status")
    return access_note(status) if isinstance(status, int) else ""


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
    """With the Photos library as gallery: ask (the system dialog) from a worker thread, since the helper
    waits for the answer; ``on_result(granted)`` comes on that thread (the caller posts it to the UI).
    Limited access is access. Without the helper: the Documents folder needs no permission."""
    source = _state.get("source")
    if source is not None:
        def ask() -> None:
            status = source.request_authorization()  # type: ignore[attr-defined]
            _state["status"] = status
            logger.info("Photos authorization: %d", status)
            on_result(status in (3, 4))

        threading.Thread(target=ask, name="photos-permission", daemon=True).start()
        return
    try:
        logger.info("Photos library authorized: %s", photos_authorized())
    except Exception as e:  # noqa: BLE001 - pyobjus raises its own exception types
        logger.info("cannot read the Photos authorization status: %s", e)
    on_result(True)


def documents_dir() -> Path:
    """The app's Documents folder (``~/Documents`` inside the app sandbox)."""
    return Path(os.path.expanduser("~")) / "Documents"


def default_gallery_roots() -> list[str]:
    source = _state.get("source")
    if source is not None:
        return [source.root]  # type: ignore[attr-defined]
    docs = documents_dir()
    docs.mkdir(parents=True, exist_ok=True)
    return [str(docs)]
