"""A procedurally generated image-caption retrieval benchmark, deterministic from a seed.

It stands in for COCO/Flickr on a machine without network. A scene is a background (a colour
and a pattern) with one to three coloured shapes placed on a 3x3 grid; it is rendered with PIL at
4x supersampling and box-downsampled to ``image_size``. Captions come in two styles:

* full captions (``describe_scene``): several paraphrases per image from varied templates and
  synonyms; every object is named by colour and shape, while size, position, a relation between
  objects and the background are mentioned only in some of them;
* alt text (``alt_text``): one terse web-style caption naming a random subset of the objects,
  used to pre-train the teacher so that fine-tuning on full captions has something to add.

Image ``i`` of a split is a pure function of ``(seed, split, i)``: it is drawn from
``np.random.default_rng([seed, split_id, i])``, so the first k images of a split of n equal a
split of k, and no two splits share a stream of scenes.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from compression.config import SyntheticDataConfig, config_digest
from compression.data.captioned import ArrayImages, CaptionedImages

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when scenes, rendering or captions change: invalidates caches
SUPERSAMPLE = 4

# split ids feed the per-image seed; never renumber them
SPLIT_IDS = {"pretrain": 0, "unpaired_images": 1, "unpaired_texts": 2, "train": 3, "val": 4, "test": 5}

# --------------------------------------------------------------------------------------------
# vocabulary
# --------------------------------------------------------------------------------------------

# object colours: name -> (rgb, synonyms used in captions; the first is the canonical word)
OBJECT_COLOURS: dict[str, tuple[tuple[int, int, int], tuple[str, ...]]] = {
    "red": ((215, 25, 30), ("red", "crimson", "scarlet")),
    "orange": ((245, 135, 15), ("orange",)),
    "yellow": ((250, 225, 25), ("yellow", "lemon yellow")),
    "green": ((30, 165, 45), ("green", "bright green")),
    "blue": ((25, 75, 225), ("blue", "royal blue")),
    "purple": ((135, 40, 185), ("purple", "violet")),
    "pink": ((250, 115, 185), ("pink", "hot pink")),
    "brown": ((125, 70, 25), ("brown", "chocolate brown")),
    "white": ((250, 250, 250), ("white", "snow white")),
    "black": ((10, 10, 10), ("black", "jet black")),
}

# background colours: deliberately muted, named apart from the object colours where possible
BACKGROUND_COLOURS: dict[str, tuple[tuple[int, int, int], tuple[str, ...]]] = {
    "white": ((235, 235, 230), ("white", "off white")),
    "light gray": ((185, 185, 185), ("light gray", "light grey", "pale gray")),
    "dark gray": ((75, 75, 75), ("dark gray", "dark grey", "charcoal")),
    "black": ((25, 25, 25), ("black",)),
    "beige": ((215, 200, 160), ("beige", "sand colored", "tan")),
    "navy": ((25, 35, 85), ("navy", "navy blue")),
    "teal": ((30, 110, 110), ("teal",)),
    "olive": ((105, 110, 45), ("olive", "olive green")),
    "lavender": ((195, 180, 225), ("lavender", "lilac")),
    "mint": ((175, 225, 195), ("mint", "mint green")),
    "sky blue": ((150, 195, 235), ("sky blue", "light blue")),
}

SHAPES: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "round disc"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "triangular shape"),
    "star": ("star", "five pointed star"),
    "diamond": ("diamond", "rhombus", "lozenge"),
    "cross": ("cross", "plus sign"),
    "heart": ("heart", "heart shape", "love heart"),
    "ring": ("ring", "hoop", "donut"),
}

SIZES: dict[str, tuple[float, tuple[str, ...]]] = {
    # name -> (circumscribed radius as a fraction of the image side, synonyms)
    "small": (0.13, ("small", "tiny", "little")),
    "medium": (0.18, ("medium sized", "mid sized", "medium")),
    "large": (0.24, ("large", "big", "huge")),
}

PATTERNS = ("plain", "stripes", "dots", "checker", "gradient", "noise")

_BG_PATTERN_PHRASES: dict[str, tuple[str, ...]] = {
    "plain": ("{c} background", "plain {c} background", "solid {c} background", "{c} backdrop"),
    "stripes": ("{c} striped background", "{c} background with stripes", "striped {c} backdrop"),
    "dots": ("{c} polka dot background", "dotted {c} background", "{c} background with dots"),
    "checker": ("{c} checkered background", "{c} checkerboard background", "checked {c} backdrop"),
    "gradient": ("{c} gradient background", "softly shaded {c} background", "{c} gradient backdrop"),
    "noise": ("noisy {c} background", "grainy {c} background", "speckled {c} backdrop"),
}

_REL_PHRASES = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over", "higher than"),
    "below": ("below", "under", "beneath"),
}

_CELL_CENTRES = (0.2, 0.5, 0.8)  # 3x3 grid: row/col index -> centre as a fraction of the side
_MIN_COLOUR_DISTANCE = 120.0  # RGB distance an object colour keeps from its background colours
_N_OBJECTS_P = (0.3, 0.4, 0.3)  # probability of 1, 2, 3 objects


def _position_phrases(row: int, col: int) -> tuple[str, ...]:
    vert = {0: ("top", "upper"), 2: ("bottom", "lower")}
    horiz = {0: "left", 2: "right"}
    if row == 1 and col == 1:
        return ("in the center", "in the middle", "at the center of the image",
                "in the middle of the picture")
    if row != 1 and col != 1:
        h = horiz[col]
        out = []
        for v in vert[row]:
            out += [f"in the {v} {h} corner", f"at the {v} {h}", f"in the {v} {h} of the image"]
        return tuple(out)
    if row != 1:  # top or bottom middle
        v0, v1 = vert[row]
        return (f"at the {v0}", f"at the {v0} center", f"near the {v0} edge", f"in the {v1} middle")
    h = horiz[col]
    return (f"on the {h}", f"on the {h} side", f"near the {h} edge", f"at the middle {h}")


POSITION_NAMES: dict[tuple[int, int], str] = {
    (r, c): " ".join(w for w in (("top", "", "bottom")[r], ("left", "", "right")[c]) if w) or "center"
    for r in range(3) for c in range(3)
}  # (row, col) -> "top left", "top", ..., "center", ..., "bottom right"
POSITION_PHRASES = {rc: _position_phrases(*rc) for rc in POSITION_NAMES}


# --------------------------------------------------------------------------------------------
# scenes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneObject:
    """One shape; geometry in fractions of the image side so a scene renders at any size."""

    shape: str  # a key of SHAPES
    colour: str  # a key of OBJECT_COLOURS
    size: str  # "small" | "medium" | "large"
    row: int  # grid cell, 0 (top) .. 2 (bottom)
    col: int  # grid cell, 0 (left) .. 2 (right)
    x: float  # centre, fraction of the width
    y: float  # centre, fraction of the height
    radius: float  # circumscribed radius, fraction of the side
    angle: float  # rotation in degrees (0 for circle and ring)
    rgb: tuple[int, int, int]  # the colour actually drawn (the named colour, slightly jittered)

    @property
    def position(self) -> str:
        """Grid cell name: "top left", "top", ..., "center", ..., "bottom right"."""
        return POSITION_NAMES[(self.row, self.col)]


@dataclass(frozen=True)
class Background:
    colour: str  # a key of BACKGROUND_COLOURS
    pattern: str  # one of PATTERNS
    rgb: tuple[int, int, int]
    rgb2: tuple[int, int, int]  # second pattern colour (a lighter or darker shade of rgb)
    params: tuple[float, ...] = ()  # pattern parameters (period, phase, orientation, amplitude ...)


@dataclass(frozen=True)
class Scene:
    """A background and 1-3 objects in distinct grid cells, with distinct (colour, shape) pairs."""

    background: Background
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)

    def relations(self, i: int, j: int) -> list[str]:
        """Relations of object i to object j from their grid cells: subset of left of/right of/above/below."""
        a, b = self.objects[i], self.objects[j]
        out = []
        if a.col < b.col:
            out.append("left of")
        elif a.col > b.col:
            out.append("right of")
        if a.row < b.row:
            out.append("above")
        elif a.row > b.row:
            out.append("below")
        return out


def _randint(rng: np.random.Generator, n: int) -> int:
    """Uniform integer in [0, n); a scalar rng.random() is several times faster than rng.integers."""
    return min(int(rng.random() * n), n - 1)


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * rng.random()


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int) -> tuple[int, int, int]:
    d = rng.random(3).tolist()
    out = tuple(min(255, max(0, v + round((2 * u - 1) * amount))) for v, u in zip(rgb, d))
    return out  # type: ignore[return-value]


def _shade(rgb: tuple[int, int, int], delta: int) -> tuple[int, int, int]:
    """A lighter (dark colours) or darker (light colours) shade of ``rgb``."""
    sign = 1 if sum(rgb) / 3 < 128 else -1
    return tuple(min(255, max(0, v + sign * delta)) for v in rgb)  # type: ignore[return-value]


_BG_NAMES = tuple(BACKGROUND_COLOURS)
_OBJ_COLOUR_NAMES = tuple(OBJECT_COLOURS)
_OBJ_RGB = np.array([OBJECT_COLOURS[c][0] for c in _OBJ_COLOUR_NAMES], dtype=np.float64)  # (10, 3)
_SHAPE_NAMES = tuple(SHAPES)
_SIZE_NAMES = tuple(SIZES)
_N_OBJECTS_CDF = tuple(np.cumsum(_N_OBJECTS_P).tolist())


def _sample_background(rng: np.random.Generator) -> Background:
    colour = _BG_NAMES[_randint(rng, len(_BG_NAMES))]
    pattern = PATTERNS[_randint(rng, len(PATTERNS))]
    rgb = _jitter(BACKGROUND_COLOURS[colour][0], rng, 8)
    rgb2 = _shade(rgb, 70 if pattern == "gradient" else 40)
    if pattern == "stripes":  # orientation (0 horiz, 1 vert, 2/3 diagonals), period, phase
        params: tuple[float, ...] = (float(_randint(rng, 4)), _uniform(rng, 0.12, 0.25), rng.random())
    elif pattern == "dots":  # spacing, dot radius (fraction of spacing), x/y phase
        params = (_uniform(rng, 0.12, 0.2), _uniform(rng, 0.2, 0.3), rng.random(), rng.random())
    elif pattern == "checker":  # cell size, x/y phase
        params = (_uniform(rng, 0.1, 0.22), rng.random(), rng.random())
    elif pattern == "gradient":  # direction in radians
        params = (_uniform(rng, 0.0, 2 * math.pi),)
    elif pattern == "noise":  # amplitude (std of the grey noise, in 0..255)
        params = (_uniform(rng, 10.0, 22.0),)
    else:
        params = ()
    return Background(colour=colour, pattern=pattern, rgb=rgb, rgb2=rgb2, params=params)


def _overlap_ok(objs: list[SceneObject], x: float, y: float, radius: float) -> bool:
    # circumscribed circles may overlap by at most 10% of their summed radii (the shapes themselves,
    # which do not fill their circles, then touch at most)
    return all(math.hypot(o.x - x, o.y - y) >= 0.9 * (o.radius + radius) for o in objs)


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a random scene: a background and 1-3 non-overlapping objects in distinct grid cells.

    Object colours keep an RGB distance of at least 120 from both background shades, and no two
    objects share both colour and shape, so every caption is unambiguous about what it names.
    """
    bg = _sample_background(rng)
    dist = np.minimum(np.linalg.norm(_OBJ_RGB - np.asarray(bg.rgb), axis=1),
                      np.linalg.norm(_OBJ_RGB - np.asarray(bg.rgb2), axis=1))
    colours = [c for c, d in zip(_OBJ_COLOUR_NAMES, dist.tolist()) if d >= _MIN_COLOUR_DISTANCE]
    u = rng.random()
    n_objects = 1 + sum(u >= c for c in _N_OBJECTS_CDF[:-1])
    objs: list[SceneObject] = []
    used_pairs: set[tuple[str, str]] = set()
    for cell in rng.permutation(9).tolist():
        if len(objs) == n_objects:
            break
        row, col = divmod(cell, 3)
        for _attempt in range(3):  # geometry first: a size and place that leave the others clear
            size = _SIZE_NAMES[_randint(rng, len(_SIZE_NAMES))]
            radius = SIZES[size][0] * _uniform(rng, 0.93, 1.07)
            lo, hi = radius + 0.01, 1 - radius - 0.01
            x = min(hi, max(lo, _CELL_CENTRES[col] + _uniform(rng, -0.04, 0.04)))
            y = min(hi, max(lo, _CELL_CENTRES[row] + _uniform(rng, -0.04, 0.04)))
            if _overlap_ok(objs, x, y, radius):
                break
        else:
            continue  # this cell is too crowded; try the next one
        while True:  # at most 3 pairs are taken of >= 5 colours x 8 shapes
            shape = _SHAPE_NAMES[_randint(rng, len(_SHAPE_NAMES))]
            colour = colours[_randint(rng, len(colours))]
            if (colour, shape) not in used_pairs:
                break
        angle = 0.0 if shape in ("circle", "ring") else _uniform(rng, -12.0, 12.0)
        rgb = _jitter(OBJECT_COLOURS[colour][0], rng, 12)
        objs.append(SceneObject(shape, colour, size, row, col, x, y, radius, angle, rgb))
        used_pairs.add((colour, shape))
    # the first object always fits, so objs is never empty
    return Scene(background=bg, objects=tuple(objs))


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


# --------------------------------------------------------------------------------------------
# captions
# --------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[_randint(rng, len(options))]


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _object_np(obj: SceneObject, rng: np.random.Generator, with_size: bool, with_pos: bool) -> str:
    """ "a [size] colour shape [position]"; colour and shape are always adjacent in that order."""
    colour = _pick(rng, OBJECT_COLOURS[obj.colour][1])
    shape = _pick(rng, SHAPES[obj.shape])
    words = f"{colour} {shape}"
    if with_size:
        words = f"{_pick(rng, SIZES[obj.size][1])} {words}"
    phrase = _article(words)
    if with_pos:
        phrase += " " + _pick(rng, POSITION_PHRASES[(obj.row, obj.col)])
    return phrase


def _background_np(bg: Background, rng: np.random.Generator) -> str:
    colour = _pick(rng, BACKGROUND_COLOURS[bg.colour][1])
    if rng.random() < 0.15:  # colour only, pattern left out
        return _article(f"{colour} background")
    return _article(_pick(rng, _BG_PATTERN_PHRASES[bg.pattern]).format(c=colour))


_NP_PREFIXES = ("", "", "a photo of ", "a picture of ", "an image of ", "a drawing of ", "a rendering of ",
                "a simple graphic of ", "an illustration of ")
_SENTENCE_PREFIXES = ("", "", "", "in this picture ", "in the image ", "here ")
_THERE_IS = ("there is ", "we can see ", "you can see ", "this image shows ", "the picture contains ")
_THERE_IS_AFTER_PREFIX = ("there is ", "we can see ", "you can see ")  # after "in the image ..."
_BG_JOINERS = ("on", "against", "in front of", "set against")  # not "over": a relation word


def _join_list(items: list[str], rng: np.random.Generator) -> str:
    if len(items) == 1:
        return items[0]
    if len(items) == 2:
        return f"{items[0]} {_pick(rng, ('and', 'as well as', 'together with'))} {items[1]}" \
            if rng.random() < 0.3 else f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + " and " + items[-1]


def _one_caption(scene: Scene, rng: np.random.Generator) -> str:
    objs = list(scene.objects)
    order = rng.permutation(len(objs)).tolist()
    multi = len(objs) > 1
    with_size = [bool(rng.random() < 0.4) for _ in objs]
    use_relation = multi and rng.random() < 0.65
    # positions are mentioned less when a relation already says where things are
    p_pos = 0.2 if use_relation else 0.4
    with_pos = [bool(rng.random() < p_pos) for _ in objs]
    nps = [_object_np(objs[k], rng, with_size[k], with_pos[k]) for k in order]
    bg = _background_np(scene.background, rng) if rng.random() < 0.4 else None
    np_prefix: str | None = None  # set when the core is a bare noun phrase: "a photo of " or ""

    if use_relation:
        i, j = order[0], order[1]
        rel = _pick(rng, scene.relations(i, j))
        rel_words = _pick(rng, _REL_PHRASES[rel])
        a, b = nps[0], nps[1]
        form = _randint(rng, 4)
        tail = ""
        if len(objs) == 3:
            k = order[2]
            if rng.random() < 0.5:
                rel2 = _pick(rng, scene.relations(k, j))
                tail = f" and {nps[2]} {_pick(rng, _REL_PHRASES[rel2])} it"
            else:
                tail = f" and {nps[2]}"
        if form == 0:  # noun phrase
            np_prefix, core = _pick(rng, _NP_PREFIXES), f"{a} {rel_words} {b}{tail}"
        elif form == 1:  # "... is left of ..."
            core = _pick(rng, _SENTENCE_PREFIXES) + f"{a} is {rel_words} {b}{tail}"
        elif form == 2:  # "left of X there is Y"
            core = f"{rel_words} {b} {_pick(rng, _THERE_IS)}{a}{tail}"
        else:  # "X with Y left of it"
            np_prefix, core = _pick(rng, _NP_PREFIXES), f"{b} with {a} {rel_words} it{tail}"
    else:
        listed = _join_list(nps, rng)
        form = _randint(rng, 3)
        if form == 0:
            np_prefix, core = _pick(rng, _NP_PREFIXES), listed
        elif form == 1:
            prefix = _pick(rng, _SENTENCE_PREFIXES)
            core = prefix + _pick(rng, _THERE_IS_AFTER_PREFIX if prefix else _THERE_IS) + listed
        else:
            # a lone object with its position leads with the position
            if not multi and rng.random() < 0.5:
                o = objs[0]
                pos = _pick(rng, POSITION_PHRASES[(o.row, o.col)])
                core = f"{pos} {_pick(rng, _THERE_IS)}{_object_np(o, rng, with_size[0], False)}"
            else:
                core = listed + " " + _pick(rng, ("is shown", "can be seen", "appears", "is visible")
                                             if not multi else ("are shown", "can be seen", "appear"))
    if bg is not None:
        if np_prefix is not None and rng.random() < 0.3:  # "a striped gray background with a red star"
            core = f"{bg} {_pick(rng, ('with', 'showing'))} {core}"
        else:
            core = f"{core} {_pick(rng, _BG_JOINERS)} {bg}"
    if np_prefix:
        core = np_prefix + core
    return " ".join(core.split())


def describe_scene(scene: Scene, rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct full-style paraphrases of ``scene``, lowercase, 5-25 words each.

    Every caption names every object by colour and shape (a synonym of each, adjacent, colour
    first); size, grid position, a relation between objects and the background appear only in
    some captions.
    """
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(200 * max(n, 1)):
        if len(out) == n:
            return out
        cap = _one_caption(scene, rng)
        words = len(cap.split())
        if cap in seen or not 5 <= words <= 25:
            continue
        seen.add(cap)
        out.append(cap)
    if len(out) == n:
        return out
    raise RuntimeError(f"could not write {n} distinct captions for {scene}")


_ALT_PREFIXES = ("photo of ", "image: ", "stock picture ", "picture of ", "img ", "clipart ", "graphic: ",
                 "free download ", "vector ")
_ALT_SUFFIXES = (" icon", " clipart", " png", " stock image", " illustration", " wallpaper")


def alt_text(scene: Scene, rng: np.random.Generator) -> str:
    """One terse web-alt-text caption naming a random non-empty subset of the objects.

    Mostly colour + shape only (canonical words, occasionally a synonym or a size), sometimes
    with a distracting prefix or suffix.
    """
    n = len(scene.objects)
    k = 1 + int(rng.binomial(n - 1, 0.35)) if n > 1 else 1
    chosen = rng.permutation(n)[:k].tolist()
    parts = []
    for idx in chosen:
        obj = scene.objects[idx]
        syn = rng.random() < 0.15
        colour = _pick(rng, OBJECT_COLOURS[obj.colour][1]) if syn else obj.colour
        shape = _pick(rng, SHAPES[obj.shape]) if syn else obj.shape
        phrase = f"{colour} {shape}"
        if rng.random() < 0.1:
            phrase = f"{SIZES[obj.size][1][0]} {phrase}"
        parts.append(phrase)
    text = _pick(rng, (" and ", ", ", " with ", " ")).join(parts) if len(parts) > 1 else parts[0]
    if rng.random() < 0.4:
        text = _pick(rng, _ALT_PREFIXES) + text
    if rng.random() < 0.2:
        text += _pick(rng, _ALT_SUFFIXES)
    return text


# --------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------


@dataclass
class SyntheticData:
    pretrain: CaptionedImages  # n_pretrain images, one alt-text caption each
    unpaired_images: ArrayImages  # n_unpaired_images images; their captions are never generated
    unpaired_texts: list[str]  # n_unpaired_texts full-style captions of scenes never rendered
    train: CaptionedImages  # n_train images x captions_per_image captions
    val: CaptionedImages
    test: CaptionedImages


_CAPTIONED_SPLITS = ("pretrain", "train", "val", "test")


def _split_rngs(seed: int, split: str, n: int) -> Iterator[tuple[int, np.random.Generator]]:
    """Image index and its own generator, seeded by (seed, split id, index)."""
    sid = SPLIT_IDS[split]
    for i in range(n):
        yield i, np.random.default_rng([seed, sid, i])


def _generate_images(cfg: SyntheticDataConfig, split: str, n: int, captions: str | None,
                     progress: bool) -> tuple[np.ndarray, list[list[str]]]:
    """Render ``n`` scenes of ``split``: (n, S, S, 3) uint8 and per image its captions ([] if none).

    ``captions``: None, "alt" (one alt text) or "full" (captions_per_image paraphrases).
    """
    s = cfg.image_size
    images = np.empty((n, s, s, 3), dtype=np.uint8)
    caps: list[list[str]] = []
    for i, rng in tqdm(_split_rngs(cfg.seed, split, n), total=n, desc=f"synthetic {split}",
                       disable=not progress, leave=False):
        scene = sample_scene(rng)
        images[i] = render_scene(scene, s, rng)
        if captions == "alt":
            caps.append([alt_text(scene, rng)])
        elif captions == "full":
            caps.append(describe_scene(scene, rng, cfg.captions_per_image))
        else:
            caps.append([])
    return images, caps


def _names(split: str, n: int) -> list[str]:
    return [f"{split}-{i:06d}" for i in range(n)]


def generate_synthetic(cfg: SyntheticDataConfig, progress: bool = True) -> SyntheticData:
    """Generate every split of the benchmark from ``cfg`` (a pure function of the config)."""
    if cfg.image_size < 8 or cfg.captions_per_image < 1:
        raise ValueError(f"image_size must be >= 8 and captions_per_image >= 1, got {cfg}")
    out: dict[str, CaptionedImages] = {}
    for split, n, style in (("pretrain", cfg.n_pretrain, "alt"), ("train", cfg.n_train, "full"),
                            ("val", cfg.n_val, "full"), ("test", cfg.n_test, "full")):
        images, caps = _generate_images(cfg, split, n, style, progress)
        out[split] = CaptionedImages(ArrayImages(images), caps, _names(split, n))
    unpaired, _ = _generate_images(cfg, "unpaired_images", cfg.n_unpaired_images, None, progress)
    texts = []
    for _i, rng in tqdm(_split_rngs(cfg.seed, "unpaired_texts", cfg.n_unpaired_texts),
                        total=cfg.n_unpaired_texts, desc="synthetic unpaired_texts",
                        disable=not progress, leave=False):
        texts.append(describe_scene(sample_scene(rng), rng, 1)[0])
    return SyntheticData(pretrain=out["pretrain"], unpaired_images=ArrayImages(unpaired),
                         unpaired_texts=texts,
                         train=out["train"], val=out["val"], test=out["test"])


# --------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------


def cache_path(cfg: SyntheticDataConfig, cache_dir: Path) -> Path:
    """The folder holding the cache of ``cfg``: ``cache_dir / f"synthetic-{config_digest(cfg)}"``."""
    return Path(cache_dir) / f"synthetic-{config_digest(cfg)}"


def _save(data: SyntheticData, cfg: SyntheticDataConfig, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {split: getattr(data, split).images.array for split in _CAPTIONED_SPLITS}
    arrays["unpaired_images"] = data.unpaired_images.array
    meta = {
        "version": GENERATOR_VERSION,
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "splits": {split: {"captions": getattr(data, split).captions, "names": getattr(data, split).names}
                   for split in _CAPTIONED_SPLITS},
        "unpaired_texts": data.unpaired_texts,
    }
    pid = os.getpid()
    tmp_npz, tmp_json = folder / f"images.npz.tmp{pid}", folder / f"captions.json.tmp{pid}"
    try:
        with open(tmp_npz, "wb") as f:
            np.savez(f, **arrays)
        tmp_json.write_text(json.dumps(meta))
        # the json goes last: a cache is complete only once both files are in place
        os.replace(tmp_npz, folder / "images.npz")
        os.replace(tmp_json, folder / "captions.json")
    finally:
        for p in (tmp_npz, tmp_json):
            p.unlink(missing_ok=True)


def _load(cfg: SyntheticDataConfig, folder: Path) -> SyntheticData:
    """Read a cache; raises ValueError/OSError/KeyError on anything missing, stale or inconsistent."""
    meta = json.loads((folder / "captions.json").read_text())
    if meta.get("version") != GENERATOR_VERSION:
        raise ValueError(f"generator version {meta.get('version')} != {GENERATOR_VERSION}")
    s = cfg.image_size
    expected = {"pretrain": cfg.n_pretrain, "train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test,
                "unpaired_images": cfg.n_unpaired_images}
    with np.load(folder / "images.npz", allow_pickle=False) as npz:
        arrays = {k: np.array(npz[k]) for k in expected}
    for k, n in expected.items():
        if arrays[k].shape != (n, s, s, 3) or arrays[k].dtype != np.uint8:
            raise ValueError(f"{k}: cached array {arrays[k].dtype} {arrays[k].shape}, "
                             f"expected ({n}, {s}, {s}, 3)")
    splits = {}
    for split in _CAPTIONED_SPLITS:
        caps, names = meta["splits"][split]["captions"], meta["splits"][split]["names"]
        per = 1 if split == "pretrain" else cfg.captions_per_image
        if len(caps) != expected[split] or any(len(c) != per for c in caps):
            raise ValueError(f"{split}: cached captions do not match the config")
        splits[split] = CaptionedImages(ArrayImages(arrays[split]), caps, names)
    texts = meta["unpaired_texts"]
    if len(texts) != cfg.n_unpaired_texts:
        raise ValueError("unpaired_texts: cached count does not match the config")
    return SyntheticData(pretrain=splits["pretrain"], unpaired_images=ArrayImages(arrays["unpaired_images"]),
                         unpaired_texts=texts, train=splits["train"], val=splits["val"], test=splits["test"])


def load_or_generate_synthetic(cfg: SyntheticDataConfig, cache_dir: Path,
                               progress: bool = True) -> SyntheticData:
    """Load the benchmark of ``cfg`` from ``cache_dir``, generating and caching it when absent.

    The cache is ``cache_dir/synthetic-<config digest>/{images.npz,captions.json}``; both files are
    written under temporary names and moved into place, so an interrupt never leaves a half-written
    cache. A corrupt, partial or stale cache is regenerated with a logged warning.
    """
    folder = cache_path(cfg, cache_dir)
    if (folder / "captions.json").exists() or (folder / "images.npz").exists():
        try:
            data = _load(cfg, folder)
            logger.info("loaded synthetic data from %s", folder)
            return data
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
            logger.warning("synthetic data cache %s is unusable (%s: %s); regenerating", folder,
                           type(e).__name__, e)
    logger.info("generating synthetic data into %s", folder)
    data = generate_synthetic(cfg, progress=progress)
    _save(data, cfg, folder)
    return data


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[a-z0-9]+")


def write_split_as_folder(split: CaptionedImages, out_dir: Path, split_name: str = "test") -> Path:
    """Write ``split`` as PNGs in ``out_dir/images`` and a Karpathy-format ``out_dir/dataset_synthetic.json``.

    Each image is saved as ``<name>.png`` (its ``split.names`` entry, with any path separators
    replaced); returns the path of the json.
    """
    out_dir = Path(out_dir)
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    sentid = 0
    for i in range(len(split)):
        filename = Path(str(split.names[i])).name.replace(os.sep, "_") + ".png"
        split.images.load(i).save(img_dir / filename, format="PNG")
        sentences, sentids = [], []
        for raw in split.captions[i]:
            tokens = _TOKEN_RE.findall(raw.lower())
            sentences.append({"raw": raw, "tokens": tokens, "imgid": i, "sentid": sentid})
            sentids.append(sentid)
            sentid += 1
        entries.append({"filename": filename, "filepath": "images", "split": split_name, "imgid": i,
                        "sentids": sentids, "sentences": sentences})
    json_path = out_dir / "dataset_synthetic.json"
    tmp = json_path.with_name(json_path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"dataset": "synthetic", "images": entries}))
    os.replace(tmp, json_path)
    return json_path
