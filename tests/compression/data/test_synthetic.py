"""The procedural image-caption benchmark: determinism, split hygiene, caption faithfulness, cache."""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from compression.config import SyntheticDataConfig
from compression.data.captioned import ArrayImages, CaptionedImages
from compression.data.synthetic import (
    SPLIT_IDS,
    SyntheticData,
    cache_path,
    generate_synthetic,
    load_or_generate_synthetic,
    write_split_as_folder,
)
from compression.data.synthetic_captions import alt_text, describe_scene
from compression.data.synthetic_render import render_scene
from compression.data.synthetic_scenes import OBJECT_COLOURS, SHAPES, SIZES, Scene, sample_scene

TINY = SyntheticDataConfig(
    seed=0, image_size=32, n_pretrain=24, n_unpaired_images=10, n_unpaired_texts=12, n_train=20, n_val=6,
    n_test=30, captions_per_image=5,
)
RENDERED = ("pretrain", "unpaired_images", "train", "val", "test")


def _alternation(synonyms: dict[str, tuple[str, ...]]) -> tuple[str, dict[str, str]]:
    """A regex alternation of all synonyms (longest first) and the map synonym -> canonical name."""
    canon = {w: name for name, syns in synonyms.items() for w in syns}
    alts = "|".join(re.escape(w) for w in sorted(canon, key=len, reverse=True))
    return alts, canon


_COLOUR_ALTS, _COLOUR_OF = _alternation({name: syns for name, (_, syns) in OBJECT_COLOURS.items()})
_SHAPE_ALTS, _SHAPE_OF = _alternation(SHAPES)
_MENTION = re.compile(rf"\b({_COLOUR_ALTS}) ({_SHAPE_ALTS})\b")


def mentions(caption: str) -> set[tuple[str, str]]:
    """The (colour, shape) objects a caption names, as canonical names."""
    return {(_COLOUR_OF[c], _SHAPE_OF[s]) for c, s in _MENTION.findall(caption)}


def objects_of(scene: Scene) -> set[tuple[str, str]]:
    return {(o.colour, o.shape) for o in scene.objects}


def scene_of(cfg: SyntheticDataConfig, split: str, index: int) -> Scene:
    """Re-draw the scene behind image ``index`` of ``split`` (the scene is drawn first from its rng)."""
    return sample_scene(np.random.default_rng([cfg.seed, SPLIT_IDS[split], index]))


def arrays(data: SyntheticData) -> dict[str, np.ndarray]:
    out = {s: getattr(data, s).images.array for s in RENDERED if s != "unpaired_images"}
    return {**out, "unpaired_images": data.unpaired_images.array}


def assert_same(a: SyntheticData, b: SyntheticData) -> None:
    for split, arr in arrays(a).items():
        np.testing.assert_array_equal(arr, arrays(b)[split], err_msg=split)
    for split in ("pretrain", "train", "val", "test"):
        assert getattr(a, split).captions == getattr(b, split).captions, split
        assert getattr(a, split).names == getattr(b, split).names, split
    assert a.unpaired_texts == b.unpaired_texts


@pytest.fixture(scope="module")
def tiny() -> SyntheticData:
    return generate_synthetic(TINY, progress=False)


def test_shapes_dtypes_and_counts(tiny: SyntheticData) -> None:
    s = TINY.image_size
    expected = {"pretrain": TINY.n_pretrain, "unpaired_images": TINY.n_unpaired_images, "train": TINY.n_train,
                "val": TINY.n_val, "test": TINY.n_test}
    for split, arr in arrays(tiny).items():
        assert arr.shape == (expected[split], s, s, 3) and arr.dtype == np.uint8, split
    assert isinstance(tiny.unpaired_images, ArrayImages)
    assert len(tiny.unpaired_texts) == TINY.n_unpaired_texts
    assert all(isinstance(t, str) and t for t in tiny.unpaired_texts)
    for split in ("train", "val", "test"):
        ci = getattr(tiny, split)
        assert isinstance(ci, CaptionedImages)
        assert all(len(c) == TINY.captions_per_image for c in ci.captions)
        assert ci.names == [f"{split}-{i:06d}" for i in range(len(ci))]
    assert all(len(c) == 1 for c in tiny.pretrain.captions)
    assert tiny.test.images.load(0).size == (s, s)


def test_other_image_size() -> None:
    cfg = replace(TINY, image_size=48, n_pretrain=2, n_unpaired_images=2, n_train=2, n_val=2, n_test=2)
    assert generate_synthetic(cfg, progress=False).test.images.array.shape == (2, 48, 48, 3)


def test_deterministic_and_seed_dependent(tiny: SyntheticData) -> None:
    assert_same(tiny, generate_synthetic(TINY, progress=False))
    other = generate_synthetic(replace(TINY, seed=1), progress=False)
    for split, arr in arrays(other).items():
        assert not np.array_equal(arr, arrays(tiny)[split]), split
    assert other.test.captions != tiny.test.captions
    assert other.unpaired_texts != tiny.unpaired_texts


def test_prefix_property(tiny: SyntheticData) -> None:
    small_cfg = replace(TINY, n_pretrain=5, n_unpaired_images=3, n_unpaired_texts=4, n_train=7, n_val=2,
                        n_test=9)
    small = generate_synthetic(small_cfg, progress=False)
    for split, arr in arrays(small).items():
        np.testing.assert_array_equal(arr, arrays(tiny)[split][: len(arr)], err_msg=split)
    for split in ("pretrain", "train", "val", "test"):
        k = len(getattr(small, split))
        assert getattr(small, split).captions == getattr(tiny, split).captions[:k]
    assert small.unpaired_texts == tiny.unpaired_texts[:4]


def test_splits_do_not_share_scenes(tiny: SyntheticData) -> None:
    owner: dict[str, str] = {}
    for split, arr in arrays(tiny).items():
        for img in arr:
            h = hashlib.sha1(img.tobytes()).hexdigest()
            assert h not in owner, f"an image of {split} repeats one of {owner.get(h)}"
            owner[h] = split
    # unpaired texts come from scenes of their own stream, never from a captioned split
    n = 50
    scenes = {split: [scene_of(TINY, split, i) for i in range(n)] for split in SPLIT_IDS}
    for a in SPLIT_IDS:
        for b in SPLIT_IDS:
            if a < b:
                assert not set(scenes[a]) & set(scenes[b]), (a, b)


def test_captions_are_distinct_paraphrases_naming_the_scene(tiny: SyntheticData) -> None:
    for split in ("train", "val", "test"):
        for i, caps in enumerate(getattr(tiny, split).captions):
            scene = scene_of(TINY, split, i)
            assert len(set(caps)) == TINY.captions_per_image
            for cap in caps:
                assert cap == cap.lower() and cap == " ".join(cap.split())
                assert 5 <= len(cap.split()) <= 25, cap
                assert not re.search(r"\d", cap), cap
                # every object is named by colour and shape, and nothing absent is named
                assert mentions(cap) == objects_of(scene), (cap, objects_of(scene))


def test_captions_vary_their_details() -> None:
    rng = np.random.default_rng(0)
    size_words = {w for _, syns in SIZES.values() for w in syns}
    n_size = n_bg = n_rel = n_total = 0
    for _ in range(200):
        scene = sample_scene(rng)
        caps = describe_scene(scene, rng, 5)
        assert len(set(caps)) == 5
        for cap in caps:
            n_total += 1
            n_size += any(re.search(rf"\b{w}\b", cap) for w in size_words)
            n_bg += "background" in cap or "backdrop" in cap
            n_rel += bool(re.search(r"\b(left of|right of|above|over|below|under|beneath|higher than)\b",
                                    cap))
    for name, k in (("size", n_size), ("background", n_bg), ("relation", n_rel)):
        assert 0.1 < k / n_total < 0.9, f"{name} mentioned in {k}/{n_total} captions"


def test_many_distinct_captions_available() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        caps = describe_scene(sample_scene(rng), rng, 12)
        assert len(set(caps)) == 12


def test_alt_text_names_a_subset(tiny: SyntheticData) -> None:
    for i, (cap,) in enumerate(tiny.pretrain.captions):
        named, present = mentions(cap), objects_of(scene_of(TINY, "pretrain", i))
        assert named and named <= present, (cap, present)
    rng = np.random.default_rng(1)
    partial = 0
    lengths = []
    for _ in range(300):
        scene = sample_scene(rng)
        text = alt_text(scene, rng)
        named = mentions(text)
        assert named and named <= objects_of(scene), text
        partial += len(named) < len(scene.objects)
        lengths.append(len(text.split()))
    assert partial > 30  # multi-object scenes often get alt text naming only some objects
    assert np.mean(lengths) < 8  # terse


def test_scene_geometry_and_relations() -> None:
    rng = np.random.default_rng(2)
    for _ in range(300):
        scene = sample_scene(rng)
        objs = scene.objects
        assert 1 <= len(objs) <= 3
        assert len({(o.row, o.col) for o in objs}) == len(objs)
        assert len(objects_of(scene)) == len(objs)
        for o in objs:
            assert o.radius * 2 * 32 >= 7  # even small objects span >= 7 px at 32x32
            assert 0 <= o.x - o.radius and o.x + o.radius <= 1 and 0 <= o.y - o.radius and o.y + o.radius <= 1
            bg = np.asarray(scene.background.rgb, dtype=float)
            assert np.linalg.norm(np.asarray(OBJECT_COLOURS[o.colour][0], dtype=float) - bg) >= 100
        for i in range(len(objs)):
            for j in range(len(objs)):
                if i == j:
                    continue
                rels = scene.relations(i, j)
                assert rels, "objects in distinct cells always have a relation"
                a, b = objs[i], objs[j]
                assert ("left of" in rels) == (a.x < b.x - 0.05) or a.col == b.col
                assert ("above" in rels) == (a.y < b.y - 0.05) or a.row == b.row
                assert ("right of" in rels) == ("left of" in scene.relations(j, i))
                assert ("below" in rels) == ("above" in scene.relations(j, i))
                # circumscribed circles overlap little
                assert np.hypot(a.x - b.x, a.y - b.y) >= 0.8 * (a.radius + b.radius)


def test_render_draws_objects_where_they_are() -> None:
    rng = np.random.default_rng(4)
    checked = 0
    while checked < 40:
        scene = sample_scene(rng)
        img = render_scene(scene, 32, rng)
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        for o in scene.objects:
            if o.shape in ("ring", "cross", "star", "heart"):
                continue  # their centre pixel may be background (ring) or thin at small sizes
            px = img[int(o.y * 32), int(o.x * 32)].astype(float)
            assert np.linalg.norm(px - np.asarray(o.rgb, dtype=float)) < 60, (o, px)
            checked += 1


def test_benchmark_is_not_trivially_solvable() -> None:
    cfg = replace(TINY, n_pretrain=0, n_unpaired_images=0, n_unpaired_texts=0, n_train=0, n_val=0, n_test=300)
    data = generate_synthetic(cfg, progress=False)
    texts, owner = data.test.flat_captions()
    owners: dict[str, set[int]] = {}
    for t, o in zip(texts, owner.tolist()):
        owners.setdefault(t, set()).add(o)
    shared = sum(len(owners[t]) > 1 for t in texts)
    assert shared / len(texts) < 0.03, f"{shared} of {len(texts)} captions are word-for-word another image's"
    combos = set().union(*(objects_of(scene_of(cfg, "test", i)) for i in range(300)))
    assert len(combos) >= 60  # of 10 colours x 8 shapes
    assert {s for _, s in combos} == set(SHAPES) and {c for c, _ in combos} == set(OBJECT_COLOURS)
    # the images themselves are diverse too
    assert len({hashlib.sha1(a.tobytes()).digest() for a in data.test.images.array}) == 300


def test_cache_round_trip_and_corruption(tmp_path: Path, tiny: SyntheticData, caplog) -> None:
    first = load_or_generate_synthetic(TINY, tmp_path, progress=False)
    assert_same(first, tiny)
    folder = cache_path(TINY, tmp_path)
    assert folder.name.startswith("synthetic-")
    assert sorted(p.name for p in folder.iterdir()) == ["captions.json", "images.npz"]
    assert_same(load_or_generate_synthetic(TINY, tmp_path, progress=False), tiny)

    npz = folder / "images.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])  # a half-written file
    with caplog.at_level(logging.WARNING, logger="compression.data.synthetic"):
        again = load_or_generate_synthetic(TINY, tmp_path, progress=False)
    assert any("regenerat" in r.getMessage() for r in caplog.records)
    assert_same(again, tiny)
    assert_same(load_or_generate_synthetic(TINY, tmp_path, progress=False), tiny)

    caplog.clear()
    (folder / "captions.json").write_text('{"version": 1, "splits": {')
    with caplog.at_level(logging.WARNING, logger="compression.data.synthetic"):
        assert_same(load_or_generate_synthetic(TINY, tmp_path, progress=False), tiny)
    assert any("regenerat" in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in folder.iterdir()) == ["captions.json", "images.npz"]


def test_cache_is_keyed_by_config(tmp_path: Path) -> None:
    a = replace(TINY, n_pretrain=2, n_unpaired_images=2, n_unpaired_texts=2, n_train=2, n_val=2, n_test=2)
    b = replace(a, seed=5)
    load_or_generate_synthetic(a, tmp_path, progress=False)
    load_or_generate_synthetic(b, tmp_path, progress=False)
    assert cache_path(a, tmp_path) != cache_path(b, tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_write_split_as_folder(tmp_path: Path, tiny: SyntheticData) -> None:
    json_path = write_split_as_folder(tiny.val, tmp_path / "out", split_name="val")
    assert json_path == tmp_path / "out" / "dataset_synthetic.json"
    meta = json.loads(json_path.read_text())
    assert meta["dataset"] == "synthetic" and len(meta["images"]) == len(tiny.val)
    for i, entry in enumerate(meta["images"]):
        assert entry["filename"] == f"val-{i:06d}.png" and entry["filepath"] == "images"
        assert entry["split"] == "val" and entry["imgid"] == i
        assert [s["raw"] for s in entry["sentences"]] == tiny.val.captions[i]
        for s in entry["sentences"]:
            assert s["tokens"] == re.findall(r"[a-z0-9]+", s["raw"]) and s["tokens"]
        with Image.open(tmp_path / "out" / entry["filepath"] / entry["filename"]) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(im), tiny.val.images.array[i])
