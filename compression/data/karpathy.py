"""Karpathy-split JSON (``dataset_coco.json``, ``dataset_flickr30k.json``): captioned images of chosen splits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compression.data.captioned import CaptionedImages, FileImages, SkipReport
from compression.data.dataset_files import (
    EMPTY_CAPTION,
    NO_CAPTIONS,
    DataFormatError,
    finish,
    image_root_of,
    require_file,
)
from compression.data.image_checks import check_images


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
    require_file(json_path, "Karpathy JSON")
    root = image_root_of(image_root, json_path)
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
    finish(json_path, report, len(keep))
    return CaptionedImages(
        images=FileImages([paths[k] for k in keep]),
        captions=[captions[k] for k in keep],
        names=[names[k] for k in keep],
        skipped=report,
    )
