"""What every dataset reader shares: :class:`DataFormatError`, the skip reasons, the checks of a dataset's
top-level file, and the closing skip summary (one ``logger.warning`` per file, or an error when nothing is left)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from compression.data.captioned import SkipReport
from formats.errors import FormatError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")

# Skip reasons, as they appear in SkipReport.counts (the image ones are compression.data.image_checks').
EMPTY_CAPTION = "empty caption"
NO_CAPTIONS = "image with no captions"
MALFORMED_LINE = "malformed line"


class DataFormatError(FormatError):
    """A dataset file that is missing or malformed, or that yields no usable data; names the file."""


def finish(source: Path, report: SkipReport, n_kept: int, what: str = "images") -> None:
    """Log the skip summary of ``source`` once; raise if nothing usable is left."""
    if n_kept == 0:
        raise DataFormatError(f"{source}: no usable {what} ({report.summary()})")
    if report.total:
        logger.warning("%s: kept %d %s, skipped %d: %s", source, n_kept, what, report.total, report.summary())


def require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise DataFormatError(f"{path}: {what} not found")
    if not path.is_file():
        raise DataFormatError(f"{path}: {what} is not a regular file")


def image_root_of(root: str | Path | None, source: Path) -> Path:
    image_root = source.parent if root is None else Path(root)
    if not image_root.is_dir():
        raise DataFormatError(f"{source}: image root {image_root} is not a directory")
    return image_root


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line ending), streamed; UTF-8 errors name the line."""
    try:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataFormatError(f"{path}: line {lineno} is not valid UTF-8: {e}") from e
                if lineno == 1:
                    line = line.removeprefix("\ufeff")
                yield lineno, line.rstrip("\r\n")
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read: {e}") from e


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
