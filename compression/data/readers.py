"""Readers for the real datasets: Karpathy-split JSON (COCO, Flickr30K; :mod:`compression.data.karpathy`),
image/caption TSV (:mod:`compression.data.pairs_tsv`), and here the unpaired ones: a folder of images and a
file of sentences. Their shared checks are :mod:`compression.data.dataset_files`; every name is importable here.

Every reader checks its images up front (compression.data.image_checks) so that a bad file is
skipped and counted here, with one summary ``logger.warning``, instead of crashing a DataLoader
worker hours into a run:

* a missing image file, a zero-byte file, a file PIL cannot identify from its header (e.g. a text
  file named ``.jpg``), and a header declaring more than ``Image.MAX_IMAGE_PIXELS`` pixels
  (a decompression bomb) are skipped and counted in a :class:`SkipReport`;
* the check reads only the header (``Image.open`` does not decode pixels), so it stays cheap for
  COCO's 123k images; it runs on a small thread pool, with a progress bar past ~1000 files.

* a JPEG or PNG cut short (an interrupted download: the header is intact, the end is missing) is
  found by its last bytes (JPEG's end-of-image marker, PNG's IEND chunk) and counted as
  "truncated image"; one seek and one small read per file.

What these checks cannot see: pixel data corrupt in the middle of a file that ends properly passes
here, and :meth:`FileImages.load` raises :class:`ImageDecodeError` naming the file when it is
decoded. That is accepted: finding those would mean decoding every image.

A missing or malformed top-level file (not found, not JSON, wrong structure, missing key, no tab
in a TSV, undecodable UTF-8) raises :class:`DataFormatError`, whose message names the file and
the key or line. So does a reader that ends up with nothing usable (every image skipped): the
message then names the file and carries the skip summary.
"""

from __future__ import annotations

import os
from pathlib import Path

from compression.data.captioned import FileImages, SkipReport
from compression.data.dataset_files import (
    EMPTY_CAPTION,
    IMAGE_EXTENSIONS,
    MALFORMED_LINE,
    NO_CAPTIONS,
    DataFormatError,
    check_limit,
    finish,
    iter_lines,
    require_file,
)
from compression.data.image_checks import (
    CHECK_THREADS,
    EMPTY_IMAGE,
    MISSING_IMAGE,
    TRUNCATED_IMAGE,
    UNREADABLE_IMAGE,
    check_images,
)
from compression.data.karpathy import read_karpathy
from compression.data.pairs_tsv import read_pairs_tsv

__all__ = [
    "EMPTY_CAPTION",
    "EMPTY_IMAGE",
    "IMAGE_EXTENSIONS",
    "MALFORMED_LINE",
    "MISSING_IMAGE",
    "NO_CAPTIONS",
    "TRUNCATED_IMAGE",
    "UNREADABLE_IMAGE",
    "DataFormatError",
    "read_image_folder",
    "read_karpathy",
    "read_pairs_tsv",
    "read_text_lines",
]


def read_image_folder(folder: str | Path, limit: int | None = None, check_cache: Path | None = None) -> FileImages:
    """All image files (``IMAGE_EXTENSIONS``, any case) under ``folder``, recursively, sorted by
    relative path.

    Symlinked directories are not followed (so symlink loops cannot hang the walk); symlinked
    files are listed. Unreadable files are skipped and counted in the returned object's
    ``.skipped`` attribute (a :class:`SkipReport`). ``limit`` keeps the first ``limit`` usable
    images in sorted order (only as many headers as needed are checked). A missing folder, a
    folder with no image files, or one where every file is skipped raises :class:`DataFormatError`.
    """
    check_limit(limit)
    folder = Path(folder)
    if not folder.exists():
        raise DataFormatError(f"{folder}: image folder not found")
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: not a directory")
    candidates: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for fn in filenames:
            if fn.lower().endswith(IMAGE_EXTENSIONS):
                p = Path(dirpath, fn)
                candidates.append((p.relative_to(folder).as_posix(), p))
    candidates.sort(key=lambda c: c[0])
    if not candidates:
        raise DataFormatError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
    all_paths = [p for _, p in candidates]

    report = SkipReport()
    kept: list[Path] = []
    start = 0
    while start < len(all_paths) and (limit is None or len(kept) < limit):
        # Without a limit, one pass over everything; with one, batches just big enough to fill it.
        end = len(all_paths) if limit is None else start + max(limit - len(kept), 4 * CHECK_THREADS)
        batch = all_paths[start:end]
        for p, reason in zip(batch, check_images(batch, desc=f"checking {folder.name or folder}", cache_dir=check_cache)):
            if limit is not None and len(kept) >= limit:
                break  # files past the limit are neither kept nor counted as skipped
            if reason is not None:
                report.add(reason, str(p))
            else:
                kept.append(p)
        start = end
    finish(folder, report, len(kept))
    images = FileImages(kept)
    images.skipped = report  # type: ignore[attr-defined]
    return images


def read_text_lines(path: str | Path, limit: int | None = None) -> list[str]:
    """Sentences from a UTF-8 file, one a line, stripped, blank lines skipped; the first ``limit``.

    A missing file, invalid UTF-8 (the message names the line) or a file with no non-blank line
    raises :class:`DataFormatError`.
    """
    check_limit(limit)
    path = Path(path)
    require_file(path, "text file")
    lines: list[str] = []
    for _, line in iter_lines(path):
        line = line.strip()
        if line:
            lines.append(line)
            if limit is not None and len(lines) >= limit:
                break
    if not lines:
        raise DataFormatError(f"{path}: no non-blank lines")
    return lines
