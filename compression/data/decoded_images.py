"""Images decoded, resized and center-cropped once, kept on disk as one uint8 array per set.

Decoding the clip art PNGs (some are thousands of pixels wide) is most of the cost of computing
tower features on a CPU; every model that looks at the same set (the teacher's Lite2, the student's
Lite0, ConSE) reads this array instead of decoding the files again.
"""
from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision import transforms as T
from tqdm import tqdm

from compression.data.captioned import ArrayImages, CaptionedImages, ImageSource

logger = logging.getLogger(__name__)


class ResizeCrop:
    """PIL image -> (S, S, 3) uint8: shortest side to S (bicubic), center crop, RGB, as
    ``image_transform`` does before its tensor steps, so a tower at size S sees the same pixels."""

    def __init__(self, size: int):
        self.size = size
        self._t = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size)])

    def __call__(self, im: Image.Image) -> np.ndarray:
        return np.asarray(self._t(im.convert("RGB")), dtype=np.uint8)


def _decode_chunk(args: tuple[ImageSource, list[int], int]) -> np.ndarray:
    source, indices, size = args
    crop = ResizeCrop(size)
    return np.stack([crop(source.load(i)) for i in indices])


def decode_images(source: ImageSource, size: int, workers: int = 1, progress: bool = False, desc: str = "") -> np.ndarray:
    """(N, size, size, 3) uint8 of every image of ``source``; ``workers`` processes decode in parallel."""
    n, chunk = len(source), 16
    jobs = [(source, list(range(s, min(n, s + chunk))), size) for s in range(0, n, chunk)]
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    bar = tqdm(total=n, desc=f"decode {desc}".strip(), disable=not progress, leave=False)
    if workers <= 1:
        results = map(_decode_chunk, jobs)
    else:
        pool = ProcessPoolExecutor(workers)
        results = pool.map(_decode_chunk, jobs)
    for (_, idx, _), arr in zip(jobs, results):
        out[idx[0] : idx[-1] + 1] = arr
        bar.update(len(idx))
    bar.close()
    if workers > 1:
        pool.shutdown()
    return out


def _key(names: list[str], size: int) -> str:
    return hashlib.sha1(json.dumps([size, names], ensure_ascii=False).encode()).hexdigest()[:16]


def cached_decoded(
    cache_dir: Path, split: str, source: ImageSource, names: list[str], size: int, workers: int = 1, progress: bool = True
) -> ArrayImages:
    """``source`` decoded at ``size`` from ``cache_dir/<split>-<size>-<key>.npy``, decoding and saving if absent."""
    path = cache_dir / f"{split}-{size}-{_key(names, size)}.npy"
    if path.is_file():
        return ArrayImages(np.load(path))
    arr = decode_images(source, size, workers, progress, split)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    tmp.replace(path)
    logger.info("decoded %d images of %s at %d px into %s", len(arr), split, size, path)
    return ArrayImages(arr)


def decoded_captioned(
    cache_dir: Path, split: str, data: CaptionedImages, size: int, workers: int = 1, progress: bool = True
) -> CaptionedImages:
    """The same captioned set with its images replaced by the cached decoded array."""
    images = cached_decoded(cache_dir, split, data.images, data.names, size, workers, progress)
    return CaptionedImages(images, data.captions, data.names, data.skipped)
