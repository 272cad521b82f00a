"""The synthetic benchmark's vocabulary (shapes, colours, sizes, positions) and random scenes drawn from it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

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

PATTERN_PHRASES: dict[str, tuple[str, ...]] = {
    "plain": ("{c} background", "plain {c} background", "solid {c} background", "{c} backdrop"),
    "stripes": ("{c} striped background", "{c} background with stripes", "striped {c} backdrop"),
    "dots": ("{c} polka dot background", "dotted {c} background", "{c} background with dots"),
    "checker": ("{c} checkered background", "{c} checkerboard background", "checked {c} backdrop"),
    "gradient": ("{c} gradient background", "softly shaded {c} background", "{c} gradient backdrop"),
    "noise": ("noisy {c} background", "grainy {c} background", "speckled {c} backdrop"),
}

RELATION_PHRASES = {
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


def randint(rng: np.random.Generator, n: int) -> int:
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
    colour = _BG_NAMES[randint(rng, len(_BG_NAMES))]
    pattern = PATTERNS[randint(rng, len(PATTERNS))]
    rgb = _jitter(BACKGROUND_COLOURS[colour][0], rng, 8)
    rgb2 = _shade(rgb, 70 if pattern == "gradient" else 40)
    if pattern == "stripes":  # orientation (0 horiz, 1 vert, 2/3 diagonals), period, phase
        params: tuple[float, ...] = (float(randint(rng, 4)), _uniform(rng, 0.12, 0.25), rng.random())
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
            size = _SIZE_NAMES[randint(rng, len(_SIZE_NAMES))]
            radius = SIZES[size][0] * _uniform(rng, 0.93, 1.07)
            lo, hi = radius + 0.01, 1 - radius - 0.01
            x = min(hi, max(lo, _CELL_CENTRES[col] + _uniform(rng, -0.04, 0.04)))
            y = min(hi, max(lo, _CELL_CENTRES[row] + _uniform(rng, -0.04, 0.04)))
            if _overlap_ok(objs, x, y, radius):
                break
        else:
            continue  # this cell is too crowded; try the next one
        while True:  # at most 3 pairs are taken of >= 5 colours x 8 shapes
            shape = _SHAPE_NAMES[randint(rng, len(_SHAPE_NAMES))]
            colour = colours[randint(rng, len(colours))]
            if (colour, shape) not in used_pairs:
                break
        angle = 0.0 if shape in ("circle", "ring") else _uniform(rng, -12.0, 12.0)
        rgb = _jitter(OBJECT_COLOURS[colour][0], rng, 12)
        objs.append(SceneObject(shape, colour, size, row, col, x, y, radius, angle, rgb))
        used_pairs.add((colour, shape))
    # the first object always fits, so objs is never empty
    return Scene(background=bg, objects=tuple(objs))
