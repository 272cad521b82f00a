"""The data types every reader returns: image sources and images with captions."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps

from formats.errors import UserError


class ImageDecodeError(UserError, RuntimeError):
    """An image file that passed the header check but failed to decode; names the file."""


class ImageSource(Protocol):
    """Indexable images: ``len(src)`` and ``src.load(i)`` -> an RGB PIL image."""

    def __len__(self) -> int: ...

    def load(self, index: int) -> Image.Image: ...


class ArrayImages:
    """Images held in memory as one uint8 array of shape (N, H, W, 3)."""

    def __init__(self, array: np.ndarray):
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise ValueError(f"expected a uint8 (N, H, W, 3) array, got {array.dtype} {array.shape}")
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def load(self, index: int) -> Image.Image:
        return Image.fromarray(self.array[index], mode="RGB")

    def subset(self, indices: Sequence[int]) -> ArrayImages:
        return ArrayImages(self.array[np.asarray(indices, dtype=np.int64)])


class FileImages:
    """Images on disk, decoded on demand, turned upright by their EXIF orientation, converted to RGB
    (the app's decoder does the same, so training and search see photos alike)."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Image.Image:
        path = self.paths[index]
        try:
            with Image.open(path) as im:
                im.load()
                return ImageOps.exif_transpose(im).convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise ImageDecodeError(f"cannot decode image {path}: {e}") from e

    def subset(self, indices: Sequence[int]) -> FileImages:
        return FileImages([self.paths[i] for i in indices])


@dataclass
class SkipReport:
    """What a reader skipped, and why: counts per reason plus a few examples each."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, example: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 3:
            ex.append(example)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.counts:
            return "nothing skipped"
        return "; ".join(f"{n} {reason} (e.g. {', '.join(self.examples[reason])})" for reason, n in self.counts.items())


@dataclass
class CaptionedImages:
    """N images with one or more captions each; the unit of pairing and of retrieval evaluation."""

    images: ImageSource
    captions: list[list[str]]  # captions[i]: the captions of image i, never empty
    names: list[str]  # an identifier per image: file path or synthetic id
    skipped: SkipReport = field(default_factory=SkipReport)

    def __post_init__(self) -> None:
        if not (len(self.images) == len(self.captions) == len(self.names)):
            raise ValueError(
                f"images ({len(self.images)}), captions ({len(self.captions)}) and names "
                f"({len(self.names)}) must have the same length"
            )

    def __len__(self) -> int:
        return len(self.captions)

    def flat_captions(self) -> tuple[list[str], np.ndarray]:
        """All captions in one list, and for each the index of its image: (C,) int64."""
        texts = [c for caps in self.captions for c in caps]
        owner = np.repeat(np.arange(len(self.captions)), [len(c) for c in self.captions])
        return texts, owner.astype(np.int64)
