"""Whether an image file is usable, from its header alone: missing, empty, unreadable, truncated or
too large files get a skip reason, so a reader skips and counts them instead of crashing a DataLoader
worker hours into a run. The dataset readers (compression.data.readers and the modules it re-exports) check
every image this way."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from compression.data.check_cache import cached_checks

# Skip reasons, as they appear in SkipReport.counts.
MISSING_IMAGE = "missing image file"
EMPTY_IMAGE = "empty image file"
UNREADABLE_IMAGE = "unreadable image"
TRUNCATED_IMAGE = "truncated image"

CHECK_THREADS = 8  # threads that read headers at once
_PROGRESS_MIN_FILES = 1000

# Where a complete file of a format ends: the marker must be in its last _TAIL_BYTES (JPEGs may carry a
# little padding after their end-of-image marker).
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}
_TAIL_BYTES = 1024


def check_image(path: Path) -> str | None:
    """The skip reason for ``path``, or None if its header says it is a usable image.

    Reads only the header. Any exception PIL raises while identifying the file makes it
    "unreadable": PIL raises a zoo of types (OSError, SyntaxError, struct.error, ValueError,
    DecompressionBombError, ...) on malformed headers, and a reader must not crash on one file.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return MISSING_IMAGE
    except OSError:  # permission denied, name too long, broken link ...
        return UNREADABLE_IMAGE
    if not path.is_file():
        return MISSING_IMAGE
    if st.st_size == 0:
        return EMPTY_IMAGE
    try:
        with Image.open(path) as im:
            width, height = im.size
            fmt = im.format
    except Exception:  # noqa: BLE001 - see docstring
        return UNREADABLE_IMAGE
    if fmt is None or width <= 0 or height <= 0:
        return UNREADABLE_IMAGE
    if fmt in _END_MARKERS and not _ends_complete(path, st.st_size, _END_MARKERS[fmt]):
        return TRUNCATED_IMAGE
    # Image.open raises only above 2x MAX_IMAGE_PIXELS (and warns above 1x); skip anything above 1x.
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        return UNREADABLE_IMAGE
    return None


def _ends_complete(path: Path, size: int, marker: bytes) -> bool:
    """Whether ``marker`` (the format's end) is in the file's last bytes."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, size - _TAIL_BYTES))
            return marker in f.read(_TAIL_BYTES)
    except OSError:
        return False


def check_images(paths: Sequence[Path], desc: str, cache_dir: Path | None = None) -> list[str | None]:
    """``check_image`` over ``paths`` on a thread pool; results in the order of ``paths``; remembered
    under ``cache_dir`` when given (see compression.data.check_cache)."""
    return cached_checks(paths, lambda ps: _check_images_now(ps, desc), cache_dir)


def _check_images_now(paths: Sequence[Path], desc: str) -> list[str | None]:
    if not paths:
        return []
    if len(paths) == 1:
        return [check_image(paths[0])]
    with ThreadPoolExecutor(max_workers=min(CHECK_THREADS, len(paths))) as pool:
        results = pool.map(check_image, paths)
        return list(
            tqdm(
                results,
                total=len(paths),
                desc=desc,
                unit="img",
                disable=len(paths) <= _PROGRESS_MIN_FILES,
            )
        )
