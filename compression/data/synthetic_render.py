"""Rendering of a synthetic scene to pixels: patterned background, supersampled shapes."""

from __future__ import annotations

import math
from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageDraw

from compression.data.synthetic_scenes import Background, Scene, SceneObject

SUPERSAMPLE = 4  # shapes are drawn at 4x the image size and box-downsampled (anti-aliasing)


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in fractions of the side: x (1, n), y (n, 1)."""
    c = (np.arange(n, dtype=np.float32) + 0.5) / n
    return c[None, :], c[:, None]


def _two_colour(mask: np.ndarray, c1: tuple[int, int, int], c2: tuple[int, int, int]) -> Image.Image:
    """An RGB image that is c1 where ``mask`` is 0 and c2 where it is 1 (via a palette image: fast)."""
    im = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="P")
    im.putpalette([*c1, *c2])
    return im.convert("RGB")


def _render_background(bg: Background, n: int, image_size: int, rng: np.random.Generator) -> Image.Image:
    """The background at the supersampled resolution n = SUPERSAMPLE * image_size: an (n, n) RGB image."""
    x, y = _grid(n)
    p = bg.params
    if bg.pattern == "plain":
        return Image.new("RGB", (n, n), bg.rgb)
    if bg.pattern == "stripes":
        orient, period, phase = int(p[0]), p[1], p[2]
        coord = (y, x, x + y, x - y)[orient]
        mask = np.broadcast_to(((coord / period + phase) % 1.0) < 0.5, (n, n))
    elif bg.pattern == "dots":
        spacing, rad, px, py = p
        dx = (x / spacing + px) % 1.0 - 0.5
        dy = (y / spacing + py) % 1.0 - 0.5
        mask = (dx * dx + dy * dy) < rad * rad
    elif bg.pattern == "checker":
        cell, px, py = p
        mask = (np.floor(x / cell + px).astype(np.int32) + np.floor(y / cell + py).astype(np.int32)) & 1
    elif bg.pattern == "gradient":
        # 256 shades from rgb to rgb2 along direction theta, as a palette image
        theta = p[0]
        cos, sin = math.cos(theta), math.sin(theta)
        lo = min(0.0, cos) + min(0.0, sin)
        hi = max(0.0, cos) + max(0.0, sin)
        t = (x * cos + y * sin - lo) * (255.0 / (hi - lo))
        im = Image.fromarray(np.clip(t, 0, 255).astype(np.uint8), mode="P")
        ramp = np.linspace(0.0, 1.0, 256)[:, None]
        c1, c2 = np.asarray(bg.rgb, dtype=np.float64), np.asarray(bg.rgb2, dtype=np.float64)
        im.putpalette(np.round(c1 + (c2 - c1) * ramp).astype(np.uint8).ravel().tolist())
        return im.convert("RGB")
    elif bg.pattern == "noise":
        # grey noise at the output resolution, upsampled by repetition so it survives the downsample
        noise = rng.normal(0.0, p[0], size=(image_size, image_size, 1))
        small = np.clip(np.asarray(bg.rgb, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
        return Image.fromarray(small, mode="RGB").resize((n, n), Image.NEAREST)
    else:
        raise ValueError(f"unknown background pattern {bg.pattern!r}")
    return _two_colour(mask, bg.rgb, bg.rgb2)


@cache
def _unit_outline(shape: str) -> np.ndarray:
    """(K, 2) polygon of a shape with circumscribed radius about 1, centred at the origin, y down."""
    if shape == "square":
        h = 0.78
        return np.array([(-h, -h), (h, -h), (h, h), (-h, h)], dtype=np.float64)
    if shape == "triangle":
        a = np.deg2rad([-90, 30, 150])
        pts = np.stack([np.cos(a), np.sin(a)], axis=1) * 1.05
        return pts + np.array([0.0, 0.12])  # centroid-centred looks low; shift to balance
    if shape == "star":
        a = np.deg2rad(-90 + 36 * np.arange(10))
        r = np.where(np.arange(10) % 2 == 0, 1.05, 0.48)
        return np.stack([np.cos(a) * r, np.sin(a) * r], axis=1)
    if shape == "diamond":
        return np.array([(0, -1.0), (0.68, 0), (0, 1.0), (-0.68, 0)], dtype=np.float64)
    if shape == "cross":
        w, l = 0.34, 0.95
        return np.array([(-w, -l), (w, -l), (w, -w), (l, -w), (l, w), (w, w), (w, l), (-w, l), (-w, w),
                         (-l, w), (-l, -w), (-w, -w)], dtype=np.float64)
    if shape == "heart":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        hx = 16 * np.sin(t) ** 3
        hy = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([hx, hy], axis=1)
        pts -= (pts.max(0) + pts.min(0)) / 2
        return pts / np.abs(pts).max() * 0.98
    raise ValueError(f"no polygon for shape {shape!r}")


def _draw_object(draw: ImageDraw.ImageDraw, obj: SceneObject, n: int) -> None:
    cx, cy, r = obj.x * n, obj.y * n, obj.radius * n
    if obj.shape == "circle":
        rr = 0.92 * r
        draw.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=obj.rgb)
        return
    if obj.shape == "ring":
        rr = 0.95 * r
        draw.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), outline=obj.rgb, width=max(2, round(0.4 * rr)))
        return
    pts = _unit_outline(obj.shape)
    a = math.radians(obj.angle)
    ca, sa = math.cos(a), math.sin(a)
    xs = (pts[:, 0] * ca - pts[:, 1] * sa) * r + cx
    ys = (pts[:, 0] * sa + pts[:, 1] * ca) * r + cy
    draw.polygon(list(zip(xs.tolist(), ys.tolist())), fill=obj.rgb)


def render_scene(scene: Scene, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``scene`` at 4x supersampling and box-downsample: (image_size, image_size, 3) uint8.

    ``rng`` supplies the render-time randomness (the noise of a "noise" background).
    """
    n = SUPERSAMPLE * image_size
    canvas = _render_background(scene.background, n, image_size, rng)
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        _draw_object(draw, obj, n)
    return np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.uint8)
