"""A UTF-8 TSV of ``image_path<TAB>caption`` lines: captioned images, several captions per image."""

from __future__ import annotations

import os
from pathlib import Path

from compression.data.captioned import CaptionedImages, FileImages, SkipReport
from compression.data.dataset_files import (
    EMPTY_CAPTION,
    MALFORMED_LINE,
    NO_CAPTIONS,
    DataFormatError,
    finish,
    image_root_of,
    iter_lines,
    require_file,
)
from compression.data.image_checks import check_images

# Header lines a pairs TSV may start with: (first column, second column), lower-cased.
_TSV_PATH_HEADERS = {"image", "image_path", "filepath", "filename", "file", "path"}
_TSV_TEXT_HEADERS = {"caption", "title", "text"}


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
    require_file(path, "pairs TSV")
    root = image_root_of(image_root, path)
    report = SkipReport()
    order: list[str] = []  # normalised path keys, in order of first appearance
    names: dict[str, str] = {}
    captions: dict[str, list[str]] = {}
    saw_tab = False
    first_content = True
    n_content = 0
    commas = 0
    for lineno, line in iter_lines(path):
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
    finish(path, report, len(kept))
    return CaptionedImages(
        images=FileImages([p for _, p in kept]),
        captions=[captions[k] for k, _ in kept],
        names=[names[k] for k, _ in kept],
        skipped=report,
    )
