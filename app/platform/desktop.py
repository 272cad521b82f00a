"""Desktop bridge: no permission to ask for; the default gallery is the repository's real gallery."""
from __future__ import annotations

import logging
from collections.abc import Callable

from app.platform import REAL_GALLERY, SAMPLE_GALLERY

logger = logging.getLogger(__name__)


def request_photo_access(on_result: Callable[[bool], None]) -> None:
    """Files are readable as the user is: access is granted."""
    on_result(True)


def default_gallery_roots() -> list[str]:
    """``assets/real_gallery`` (real photos and clip art drawings, the kind of pictures the offline default
    model knows) when it is there, else ``assets/sample_gallery`` (the synthetic benchmark's first 60 test
    photos), else none."""
    return [str(g) for g in (REAL_GALLERY, SAMPLE_GALLERY) if g.is_dir()][:1]
