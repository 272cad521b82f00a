"""Desktop bridge: no permission to ask for; the default gallery is the bundled sample gallery."""
from __future__ import annotations

import logging
from collections.abc import Callable

from app.platform import SAMPLE_GALLERY

logger = logging.getLogger(__name__)


def request_photo_access(on_result: Callable[[bool], None]) -> None:
    """Files are readable as the user is: access is granted."""
    on_result(True)


def default_gallery_roots() -> list[str]:
    """``assets/sample_gallery`` (60 photos of the offline benchmark's test split) when it is there."""
    return [str(SAMPLE_GALLERY)] if SAMPLE_GALLERY.is_dir() else []
