"""The Open Clip Art Library (Debian ``openclipart-png`` + ``openclipart-svg``, public domain) as
image-caption pairs: PNG pixels, captions from the SVG metadata (rules in ``clipart_captions``),
duplicates merged, and a deterministic train/val/test split by content hash."""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from compression.data.captioned import CaptionedImages, FileImages, ImageDecodeError, SkipReport
from compression.data.clipart_captions import (
    ClipArtMeta,
    MetadataError,
    build_caption,
    load_dictionary,
    read_metadata,
    series_titles,
)
from formats.errors import UserError

logger = logging.getLogger(__name__)

OPENCLIPART_ROOT = Path("/usr/share/openclipart")
SPLIT_PERCENT = {"test": 10, "val": 10}  # the rest is train; by the drawing's content hash
MAX_SAME_CAPTION = 2  # rule 8
MAX_PIXELS = 16_000_000  # a few PNGs are rendered at up to 15000 x 15000: not worth decoding


class MissingClipArtError(UserError, FileNotFoundError):
    """The clip art packages are not installed; names the folder and the apt command."""


class ClipArtImages(FileImages):
    """PNG drawings decoded on demand, transparent parts composited onto white (as they are seen on a
    page: dropping the alpha channel would show whatever colour hides under it, often black)."""

    def load(self, index: int) -> Image.Image:
        path = self.paths[index]
        try:
            with Image.open(path) as im:
                page = Image.new("RGBA", im.size, (255, 255, 255, 255))
                return Image.alpha_composite(page, im.convert("RGBA")).convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise ImageDecodeError(f"cannot decode clip art {path}: {e}") from e

    def subset(self, indices: Sequence[int]) -> ClipArtImages:
        return ClipArtImages([self.paths[i] for i in indices])


@dataclass
class ClipArtCorpus:
    """The splits and the counts behind them (``counts`` is what the README's table reports)."""

    splits: dict[str, CaptionedImages]
    counts: dict[str, int] = field(default_factory=dict)
    dropped: SkipReport = field(default_factory=SkipReport)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk, without handing the file to a decoder."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ImageDecodeError(f"{path}: not a PNG file")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def split_of(digest: str) -> str:
    """"test", "val" or "train" from a hex content hash: stable across machines and file orders."""
    bucket = int(digest[:8], 16) % 100
    if bucket < SPLIT_PERCENT["test"]:
        return "test"
    if bucket < SPLIT_PERCENT["test"] + SPLIT_PERCENT["val"]:
        return "val"
    return "train"


def _scan(root: Path) -> list[str]:
    png, svg = root / "png", root / "svg"
    if not png.is_dir() or not svg.is_dir():
        raise MissingClipArtError(
            f"clip art not found under {root} (need png/ and svg/); apt-get install openclipart-png openclipart-svg"
        )
    keys = {str(p.relative_to(png).with_suffix("")) for p in png.rglob("*.png")}
    return sorted(k for k in keys if (svg / f"{k}.svg").is_file())


def _merge(metas: list[ClipArtMeta]) -> ClipArtMeta:
    """One drawing filed under several categories: the first path's metadata, the other paths'
    folders added as keywords."""
    first = metas[0]
    extra = tuple(f for m in metas[1:] for f in m.key.split("/")[:-1])
    return ClipArtMeta(first.key, first.title, first.description, first.subjects + extra, first.creator)


def load_openclipart(
    root: Path = OPENCLIPART_ROOT, dictionary: frozenset[str] | None = None, progress: bool = False
) -> ClipArtCorpus:
    """Read, caption, filter, deduplicate and split the whole library (about 10 s)."""
    dictionary = load_dictionary() if dictionary is None else dictionary
    keys = _scan(root)
    dropped = SkipReport()
    groups: dict[str, list[ClipArtMeta]] = {}
    for key in tqdm(keys, desc="clip art metadata", disable=not progress, leave=False):
        try:
            meta = read_metadata(root / "svg" / f"{key}.svg", key)
            width, height = png_size(root / "png" / f"{key}.png")
        except (MetadataError, ImageDecodeError) as e:
            dropped.add("unreadable SVG metadata or PNG", str(e))
            continue
        if width * height > MAX_PIXELS:
            dropped.add(f"PNG over {MAX_PIXELS // 1_000_000} Mpx", key)
            continue
        digest = hashlib.sha1((root / "png" / f"{key}.png").read_bytes()).hexdigest()
        groups.setdefault(digest, []).append(meta)
    drawings = {d: _merge(ms) for d, ms in groups.items()}
    series = series_titles(drawings.values())
    by_caption: dict[str, list[str]] = {}
    for digest, meta in sorted(drawings.items()):
        caption, reason = build_caption(meta, series, dictionary)
        if reason:
            dropped.add(reason, meta.key)
        else:
            by_caption.setdefault(caption, []).append(digest)
    kept: dict[str, str] = {}
    for caption, digests in by_caption.items():
        for i, digest in enumerate(digests):  # digests are sorted: the choice is deterministic
            if i < MAX_SAME_CAPTION:
                kept[digest] = caption
            else:
                dropped.add("same caption as 2 others (series)", drawings[digest].key)
    splits = {}
    for name in ("train", "val", "test"):
        chosen = sorted((drawings[d].key, c) for d, c in kept.items() if split_of(d) == name)
        splits[name] = CaptionedImages(
            ClipArtImages([root / "png" / f"{k}.png" for k, _ in chosen]), [[c] for _, c in chosen], [k for k, _ in chosen]
        )
    counts = {"files": len(keys), "drawings (distinct PNG content)": len(drawings), "kept": len(kept)}
    counts |= {f"dropped: {reason}": n for reason, n in dropped.counts.items()}
    counts |= {name: len(s) for name, s in splits.items()}
    logger.info("clip art: %s", counts)
    return ClipArtCorpus(splits, counts, dropped)
