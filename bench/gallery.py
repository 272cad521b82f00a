"""What the indexing section feeds: a gallery of real-sized phone JPEGs (textured, so JPEG decode
costs what a photo's does) and the input size of the real-size models it is also measured at."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

PHOTO_SIZE = (4000, 3000)  # a 12 MP phone photo
JPEG_QUALITY = 90
REAL_MODEL_SIZE = 224  # input size of ViT-S/16 and ViT-B/32


def _texture(width: int, height: int, rng: np.random.Generator) -> Any:
    """A photo-like RGB canvas: noise at four scales (smooth regions to fine detail) plus sensor grain."""
    from PIL import Image

    acc = np.zeros((height, width, 3), dtype=np.float32)
    for (gw, gh), weight in (((6, 5), 0.45), ((24, 18), 0.25), ((96, 72), 0.15), ((384, 288), 0.10)):
        small = Image.fromarray(rng.integers(0, 256, (gh, gw, 3), dtype=np.uint8))
        acc += weight * np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    acc += rng.normal(0, 8, acc.shape).astype(np.float32)
    return Image.fromarray(np.clip(acc, 0, 255).astype(np.uint8))


def write_gallery(root: Path, n: int, size: tuple[int, int] = PHOTO_SIZE, seed: int = 0) -> dict[str, Any]:
    """``n`` distinct textured JPEGs of ``size`` under ``root`` (crops of one canvas, each tinted and with
    its own shapes); returns their count, mean bytes and the seconds it took."""
    from PIL import ImageDraw

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    w, h = size
    margin = 256
    canvas = _texture(w + margin, h + margin, rng)
    total = 0
    for i in range(n):
        x, y = (int(v) for v in rng.integers(0, margin, 2))
        tint = rng.uniform(0.7, 1.3, 3)
        im = canvas.crop((x, y, x + w, y + h)).point(
            [min(255, int(v * tint[c])) for c in range(3) for v in range(256)]
        )
        draw = ImageDraw.Draw(im)
        for _ in range(6):
            cx, cy, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(w // 40, w // 7))
            draw.ellipse(
                (cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3))
            )
        path = root / f"DCIM{i // 50:03d}" / f"IMG_{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, "JPEG", quality=JPEG_QUALITY)
        total += path.stat().st_size
    return {
        "photos": n,
        "width": w,
        "height": h,
        "jpeg_quality": JPEG_QUALITY,
        "mean_bytes": total / max(n, 1),
        "seconds": time.perf_counter() - t0,
    }
