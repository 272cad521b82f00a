"""Captions of a synthetic scene: paraphrased full descriptions and terse web-style alt text."""

from __future__ import annotations

import numpy as np

from compression.data.synthetic_scenes import (
    BACKGROUND_COLOURS,
    OBJECT_COLOURS,
    PATTERN_PHRASES,
    POSITION_PHRASES,
    RELATION_PHRASES,
    SHAPES,
    SIZES,
    Background,
    Scene,
    SceneObject,
    randint,
)

# --------------------------------------------------------------------------------------------
# captions
# --------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[randint(rng, len(options))]


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
    return _article(_pick(rng, PATTERN_PHRASES[bg.pattern]).format(c=colour))


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
        rel_words = _pick(rng, RELATION_PHRASES[rel])
        a, b = nps[0], nps[1]
        form = randint(rng, 4)
        tail = ""
        if len(objs) == 3:
            k = order[2]
            if rng.random() < 0.5:
                rel2 = _pick(rng, scene.relations(k, j))
                tail = f" and {nps[2]} {_pick(rng, RELATION_PHRASES[rel2])} it"
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
        form = randint(rng, 3)
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
