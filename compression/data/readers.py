"""Readers for the real datasets: Karpathy-split JSON (COCO, Flickr30K), image/caption TSV,
a folder of images, and a file of sentences.

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

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from compression.data.captioned import CaptionedImages, FileImages, SkipReport
from compression.data.image_checks import (
    CHECK_THREADS,
    EMPTY_IMAGE,
    MISSING_IMAGE,
    TRUNCATED_IMAGE,
    UNREADABLE_IMAGE,
    check_images,
)
from formats.errors import FormatError

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

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")

# Skip reasons, as they appear in SkipReport.counts (the image ones are compression.data.image_checks').
EMPTY_CAPTION = "empty caption"
NO_CAPTIONS = "image with no captions"
MALFORMED_LINE = "malformed line"

# Header lines a pairs TSV may start with: (first column, second column), lower-cased.
_TSV_PATH_HEADERS = {"image", "image_path", "filepath", "filename", "file", "path"}
_TSV_TEXT_HEADERS = {"caption", "title", "text"}


class DataFormatError(FormatError):
    """A dataset file that is missing or malformed, or that yields no usable data; names the file."""


def _finish(source: Path, report: SkipReport, n_kept: int, what: str = "images") -> None:
    """Log the skip summary once; raise if nothing usable is left."""
    if n_kept == 0:
        raise DataFormatError(f"{source}: no usable {what} ({report.summary()})")
    if report.total:
        logger.warning("%s: kept %d %s, skipped %d: %s", source, n_kept, what, report.total, report.summary())


# --------------------------------------------------------------------------- file helpers


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise DataFormatError(f"{path}: {what} not found")
    if not path.is_file():
        raise DataFormatError(f"{path}: {what} is not a regular file")


def _image_root(root: str | Path | None, source: Path) -> Path:
    image_root = source.parent if root is None else Path(root)
    if not image_root.is_dir():
        raise DataFormatError(f"{source}: image root {image_root} is not a directory")
    return image_root


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
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


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")


# --------------------------------------------------------------------------- Karpathy JSON


def _get(entry: dict, key: str, where: str, json_path: Path, types: type | tuple[type, ...]) -> Any:
    if key not in entry or entry[key] is None:
        raise DataFormatError(f"{json_path}: {where} has no {key!r} key")
    value = entry[key]
    if not isinstance(value, types):
        raise DataFormatError(f"{json_path}: {where}[{key!r}] has type {type(value).__name__}")
    return value


def _sentence_text(sentence: Any, where: str, json_path: Path) -> str:
    if not isinstance(sentence, dict):
        raise DataFormatError(f"{json_path}: {where} is a {type(sentence).__name__}, expected an object")
    raw = sentence.get("raw")
    if raw is not None:
        if not isinstance(raw, str):
            raise DataFormatError(f"{json_path}: {where}['raw'] has type {type(raw).__name__}")
        return raw.strip()
    tokens = sentence.get("tokens")
    if tokens is None:
        raise DataFormatError(f"{json_path}: {where} has neither a 'raw' nor a 'tokens' key")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise DataFormatError(f"{json_path}: {where}['tokens'] is not a list of strings")
    return " ".join(tokens).strip()


def read_karpathy(
    json_path: str | Path, image_root: str | Path | None, splits: Sequence[str], check_cache: Path | None = None
) -> CaptionedImages:
    """Images of the given ``splits`` from a Karpathy-split JSON (``dataset_coco.json``,
    ``dataset_flickr30k.json``).

    Format: ``{"images": [{"filepath": "val2014" (COCO only, optional), "filename": "...",
    "split": "train|restval|val|test", "sentences": [{"raw": "...", "tokens": [...]}]}]}``.
    Image path: ``image_root / filepath / filename``; ``image_root`` defaults to the JSON's folder.
    Caption: ``raw`` stripped, or ``" ".join(tokens)`` where ``raw`` is missing. ``names`` are the
    relative paths (``filepath/filename``). A single string for ``splits`` means that one split.

    Empty captions, images left with no captions, and missing or unreadable image files are
    skipped and counted in ``.skipped``. A missing/invalid file, a missing key, or no image of the
    requested splits raises :class:`DataFormatError`.
    """
    json_path = Path(json_path)
    wanted = [splits] if isinstance(splits, str) else list(splits)
    if not wanted:
        raise ValueError("splits must name at least one split")
    _require_file(json_path, "Karpathy JSON")
    root = _image_root(image_root, json_path)
    try:
        data = json.loads(json_path.read_bytes())
    except json.JSONDecodeError as e:
        raise DataFormatError(
            f"{json_path}: not valid JSON: line {e.lineno} column {e.colno}: {e.msg}"
        ) from e
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{json_path}: not valid JSON (not UTF-8 text): {e}") from e
    except OSError as e:
        raise DataFormatError(f"{json_path}: cannot read: {e}") from e
    if not isinstance(data, dict):
        raise DataFormatError(
            f"{json_path}: expected a JSON object with an 'images' key, got {type(data).__name__}"
        )
    if "images" not in data:
        raise DataFormatError(f"{json_path}: no 'images' key (keys: {sorted(data)[:10]})")
    entries = data["images"]
    if not isinstance(entries, list):
        raise DataFormatError(f"{json_path}: 'images' is a {type(entries).__name__}, expected a list")

    report = SkipReport()
    wanted_set = set(wanted)
    present_splits: set[str] = set()
    names: list[str] = []
    captions: list[list[str]] = []
    for i, entry in enumerate(entries):
        where = f"images[{i}]"
        if not isinstance(entry, dict):
            raise DataFormatError(f"{json_path}: {where} is a {type(entry).__name__}, expected an object")
        split = _get(entry, "split", where, json_path, str)
        present_splits.add(split)
        if split not in wanted_set:
            continue
        filename = _get(entry, "filename", where, json_path, str)
        filepath = entry.get("filepath")
        if filepath is not None and not isinstance(filepath, str):
            raise DataFormatError(f"{json_path}: {where}['filepath'] has type {type(filepath).__name__}")
        name = Path(filepath, filename).as_posix() if filepath else filename
        sentences = _get(entry, "sentences", where, json_path, list)
        caps = []
        for j, sentence in enumerate(sentences):
            text = _sentence_text(sentence, f"{where}['sentences'][{j}]", json_path)
            if text:
                caps.append(text)
            else:
                report.add(EMPTY_CAPTION, f"{name} #{j}")
        if not caps:
            report.add(NO_CAPTIONS, name)
            continue
        names.append(name)
        captions.append(caps)

    if not names and not report.total:
        raise DataFormatError(
            f"{json_path}: no images with split in {wanted} (splits present: {sorted(present_splits)})"
        )
    paths = [root / n for n in names]
    checks = check_images(paths, desc=f"checking {json_path.name}", cache_dir=check_cache)
    keep = []
    for k, (path, reason) in enumerate(zip(paths, checks)):
        if reason is None:
            keep.append(k)
        else:
            report.add(reason, str(path))
    _finish(json_path, report, len(keep))
    return CaptionedImages(
        images=FileImages([paths[k] for k in keep]),
        captions=[captions[k] for k in keep],
        names=[names[k] for k in keep],
        skipped=report,
    )


# --------------------------------------------------------------------------- pairs TSV


def read_pairs_tsv(path: str | Path, image_root: str | Path | None, check_cache: Path | None = None) -> CaptionedImages:
    """Images with captions from a UTF-8 TSV of ``image_path<TAB>caption`` lines.

    Lines naming the same image (same path after normalisation) give one image with several
    captions; images come in order of first appearance. An optional header line
    (``image<TAB>caption``, ``filepath<TAB>title``, ...) is skipped, and blank lines are ignored.
    Relative image paths are relative to ``image_root`` (default: the TSV's folder); ``names``
    are the paths as first written in the file.

    A line without exactly one tab, or with an empty path, counts as "malformed line"; an empty
    caption as "empty caption"; an image whose every caption was empty as "image with no
    captions"; missing/unreadable image files as usual. Only TSV is read: a file with no tab at
    all (a CSV, say) raises :class:`DataFormatError`, as do a missing file and invalid UTF-8.
    No quoting is understood: a caption written as ``"a dog"`` keeps its quotes.
    """
    path = Path(path)
    _require_file(path, "pairs TSV")
    root = _image_root(image_root, path)
    report = SkipReport()
    order: list[str] = []  # normalised path keys, in order of first appearance
    names: dict[str, str] = {}
    captions: dict[str, list[str]] = {}
    saw_tab = False
    first_content = True
    n_content = 0
    commas = 0
    for lineno, line in _iter_lines(path):
        if not line.strip():
            continue
        n_content += 1
        commas += "," in line
        if "\t" not in line:
            report.add(MALFORMED_LINE, f"line {lineno}")
            first_content = False
            continue
        saw_tab = True
        fields = line.split("\t")
        if first_content:
            first_content = False
            if (
                len(fields) == 2
                and fields[0].strip().lower() in _TSV_PATH_HEADERS
                and fields[1].strip().lower() in _TSV_TEXT_HEADERS
            ):
                n_content -= 1
                continue
        if len(fields) != 2 or not fields[0].strip():
            report.add(MALFORMED_LINE, f"line {lineno}")
            continue
        image, caption = fields[0].strip(), fields[1].strip()
        key = os.path.normpath(root / image)
        if key not in names:
            order.append(key)
            names[key] = image
            captions[key] = []
        if caption:
            captions[key].append(caption)
        else:
            report.add(EMPTY_CAPTION, f"line {lineno}")

    if n_content and not saw_tab:
        hint = " (it looks comma-separated; only tab-separated files are read)" if commas else ""
        raise DataFormatError(
            f"{path}: no tab characters in any line; expected 'image_path<TAB>caption' lines{hint}"
        )
    keys = []
    for key in order:
        if captions[key]:
            keys.append(key)
        else:
            report.add(NO_CAPTIONS, names[key])
    paths = [Path(k) for k in keys]
    checks = check_images(paths, desc=f"checking {path.name}", cache_dir=check_cache)
    kept = []
    for key, p, reason in zip(keys, paths, checks):
        if reason is None:
            kept.append((key, p))
        else:
            report.add(reason, str(p))
    _finish(path, report, len(kept))
    return CaptionedImages(
        images=FileImages([p for _, p in kept]),
        captions=[captions[k] for k, _ in kept],
        names=[names[k] for k, _ in kept],
        skipped=report,
    )


# --------------------------------------------------------------------------- image folder


def read_image_folder(folder: str | Path, limit: int | None = None, check_cache: Path | None = None) -> FileImages:
    """All image files (``IMAGE_EXTENSIONS``, any case) under ``folder``, recursively, sorted by
    relative path.

    Symlinked directories are not followed (so symlink loops cannot hang the walk); symlinked
    files are listed. Unreadable files are skipped and counted in the returned object's
    ``.skipped`` attribute (a :class:`SkipReport`). ``limit`` keeps the first ``limit`` usable
    images in sorted order (only as many headers as needed are checked). A missing folder, a
    folder with no image files, or one where every file is skipped raises :class:`DataFormatError`.
    """
    _check_limit(limit)
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
    _finish(folder, report, len(kept))
    images = FileImages(kept)
    images.skipped = report  # type: ignore[attr-defined]
    return images


# --------------------------------------------------------------------------- text lines


def read_text_lines(path: str | Path, limit: int | None = None) -> list[str]:
    """Sentences from a UTF-8 file, one a line, stripped, blank lines skipped; the first ``limit``.

    A missing file, invalid UTF-8 (the message names the line) or a file with no non-blank line
    raises :class:`DataFormatError`.
    """
    _check_limit(limit)
    path = Path(path)
    _require_file(path, "text file")
    lines: list[str] = []
    for _, line in _iter_lines(path):
        line = line.strip()
        if line:
            lines.append(line)
            if limit is not None and len(lines) >= limit:
                break
    if not lines:
        raise DataFormatError(f"{path}: no non-blank lines")
    return lines
