"""Android bridge (imported only on Android): photo permission at run time, the photo library from MediaStore.

The gallery is MediaStore itself: :func:`prepare` (main thread, at start) makes the APK's
``org.pocketclip.MediaStoreGallery`` and registers it as the engine's photo source
(``app.platform.mediastore``), and :func:`default_gallery_roots` names its content URI root. Photos are
then content URIs, listed and loaded on the indexer's threads without any Java class lookup. When the
helper cannot be made, the gallery falls back to the folders below (file paths, as before).

Written against python-for-android's ``android.permissions`` module (``check_permission``,
``request_permissions(permissions, callback)``, callback ``(permissions, grant_results)``) and the
Android SDK through pyjnius: ``Build.VERSION.SDK_INT``, ``ContentResolver.query`` on
``MediaStore.Images.Media.EXTERNAL_CONTENT_URI`` for the ``_data`` column (a readable file path for
apps holding the photo permission, Android 11+ included), and
``Environment.getExternalStoragePublicDirectory(DIRECTORY_DCIM / DIRECTORY_PICTURES)``. It cannot
run on the development machine; the selection logic it calls (``app.platform.roots``) is tested there.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from jnius import autoclass  # Android only: python-for-android's pyjnius recipe

from app.engine import photo_sources
from app.platform.mediastore import MediaStoreSource
from app.platform.roots import PhotoAccess, photo_access, photo_permissions, roots_from_media_paths

logger = logging.getLogger(__name__)

GALLERY_CLASS = "org.pocketclip.MediaStoreGallery"
_state: dict[str, object] = {}  # "source": the registered MediaStoreSource; "access": the last PhotoAccess


def prepare() -> MediaStoreSource | None:
    """Make the MediaStore helper and register it as the gallery. Main thread only (class lookups)."""
    if "source" not in _state:
        try:
            activity = autoclass("org.kivy.android.PythonActivity").mActivity
            source = MediaStoreSource(autoclass(GALLERY_CLASS)(activity))
        except Exception as e:  # noqa: BLE001 - jnius.JavaException: the helper missing from the APK
            logger.warning("MediaStore helper unavailable (%s): the gallery is read as folders", e)
            _state["source"] = None
            return None
        photo_sources.register(source)
        _state["source"] = source
    return _state["source"]  # type: ignore[return-value]


def photo_access_note() -> str:
    """A line for the UI when the user allowed only some photos (Android 14's "select photos"), else ""."""
    if _state.get("access") == "partial":
        return ("Only the photos you selected are indexed. To search all your photos, allow "
                "\"All photos\" in Settings > Apps > PocketClip > Permissions > Photos and videos.")
    return ""


def api_level() -> int:
    """This device's Android API level (``Build.VERSION.SDK_INT``)."""
    return int(autoclass("android.os.Build$VERSION").SDK_INT)


def request_photo_access(on_result: Callable[[bool], None]) -> None:
    """Ask for READ_MEDIA_IMAGES (Android 13+) or READ_EXTERNAL_STORAGE (before); ``on_result(granted)``.

    The callback comes on the Android UI thread: the caller posts it to Kivy's main thread.
    """
    from android.permissions import check_permission, request_permissions  # python-for-android

    level = api_level()
    wanted = photo_permissions(level)
    access: PhotoAccess = photo_access({p: check_permission(p) for p in wanted}, level)
    _state["access"] = access
    if access == "full":
        on_result(True)
        return  # partial access asks again at each start: Android then lets the user select more photos

    def answered(permissions: list[str], grants: list[bool]) -> None:
        access = photo_access(dict(zip(permissions, grants)), level)
        _state["access"] = access
        logger.info("photo permission %s: %s access", ", ".join(permissions), access)
        on_result(access != "none")

    request_permissions(wanted, answered)


def _media_store_paths() -> list[str]:
    activity = autoclass("org.kivy.android.PythonActivity").mActivity
    media = autoclass("android.provider.MediaStore$Images$Media")
    cursor = activity.getContentResolver().query(media.EXTERNAL_CONTENT_URI, ["_data"], None, None, None)
    paths: list[str] = []
    if cursor is None:
        return paths
    try:
        column = cursor.getColumnIndexOrThrow("_data")
        while cursor.moveToNext():
            paths.append(cursor.getString(column))
    finally:
        cursor.close()
    return paths


def default_gallery_roots() -> list[str]:
    """MediaStore's images (content URIs) when the helper is there; else DCIM and Pictures, plus every
    other folder MediaStore lists images in (WhatsApp, Downloads...)."""
    source = _state.get("source")
    if isinstance(source, MediaStoreSource):
        return [source.root]
    env = autoclass("android.os.Environment")
    standard = [env.getExternalStoragePublicDirectory(d).getAbsolutePath()
                for d in (env.DIRECTORY_DCIM, env.DIRECTORY_PICTURES)]
    try:
        media = _media_store_paths()
    except Exception as e:  # noqa: BLE001 - jnius.JavaException (no permission yet, provider missing)
        logger.warning("MediaStore query failed (%s); scanning DCIM and Pictures only", e)
        media = []
    return roots_from_media_paths(media, standard)
