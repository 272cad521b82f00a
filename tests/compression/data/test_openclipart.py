"""Clip art captions and splits, on a few fixture drawings written here (not the Debian packages)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from compression.data.clipart_captions import ClipArtMeta, build_caption, read_metadata, series_titles
from compression.data.openclipart import ClipArtImages, MissingClipArtError, load_openclipart, split_of
from compression.data.real_photos import CHECK_SET, real_photo_check, unpaired_real_photos
from tests.compression.clipart_fixture import write_drawing

DICTIONARY = frozenset(
    ["bird", "animal", "animals", "mammal", "mammals", "horse", "horses", "dog", "dogs", "bored", "red", "flower", "flowers", "plant", "plants", "star", "stars", "shape", "shapes", "geometry", "card", "cards", "white", "people", "computer", "light", "bulb", "ring", "key", "swan", "sign", "signs"]
)

def _meta(key, title="", subjects=(), creator="", description=""):
    return ClipArtMeta(key, title, description, tuple(subjects), creator)


def test_title_is_the_works_own_not_the_publishers(tmp_path):
    write_drawing(tmp_path, "animals/birds/red_bird_ann_autho_01", title="", subjects=["bird"])
    meta = read_metadata(tmp_path / "svg/animals/birds/red_bird_ann_autho_01.svg", "animals/birds/red_bird_ann_autho_01")
    assert meta.title == "" and meta.creator == "Ann Author"
    caption, reason = build_caption(meta, frozenset(), DICTIONARY)
    assert reason == "" and caption == "red bird, animals"  # file name, author truncation cut; bird not repeated


def test_series_title_is_dropped_and_the_file_name_names_the_drawing():
    metas = [_meta(f"shapes/stars/star_{i}pt", "Red Shape", ["stars", "shapes"]) for i in range(5)]
    series = series_titles(metas)
    assert series == frozenset({"red shape"})
    assert build_caption(metas[0], series, DICTIONARY)[0] == "star, shapes"
    assert build_caption(metas[0], series_titles(metas[:4]), DICTIONARY)[0] == "red shape, stars"


def test_non_english_title_is_dropped_but_english_keywords_stay():
    meta = _meta("animals/birds/cigno_architetto_frances_01", "Cigno", ["bird"], "Architetto Francesco Rollandin")
    assert build_caption(meta, frozenset(), DICTIONARY) == ("", "no descriptive title or file name")
    meta = _meta("animals/birds/swan_architetto_frances_01", "Cigno", ["bird"], "Architetto Francesco Rollandin")
    assert build_caption(meta, frozenset(), DICTIONARY)[0] == "swan, bird, animals"


def test_boilerplate_author_and_compound_words():
    meta = _meta("plants/lightbulb_ann_01", "Clipart by Ann Author - red flower", ["plants", "hash", "0x8b7"],
                 "Ann Author", "HASH(0x862bbb8)")
    assert build_caption(meta, frozenset(), DICTIONARY)[0] == "red flower, plants"
    meta = _meta("plants/lightbulb_ann_01", "", [], "Ann Author")
    assert build_caption(meta, frozenset(), DICTIONARY)[0] == "lightbulb, plants"


def test_icon_themes_are_dropped():
    meta = _meta("computer/icons/lemon-theme/actions/red_flower", "red flower", ["icons"])
    assert build_caption(meta, frozenset(), DICTIONARY) == ("", "icon theme")


def test_corpus_merges_duplicates_caps_series_and_splits_deterministically(tmp_path):
    write_drawing(tmp_path, "animals/bored_dog_01", "Bored dog", ["dog"], colour=(1, 2, 3))
    write_drawing(tmp_path, "animals/mammals/bored_dog_01", "Bored dog", ["dog"], colour=(1, 2, 3))  # same pixels
    for i in range(4):  # four drawings with one caption: two survive
        write_drawing(tmp_path, f"recreation/cards/white_{i}", "card", ["card"], colour=(10 + i, 0, 0))
    write_drawing(tmp_path, "computer/icons/flat-theme/white", "white", colour=(50, 50, 50))
    corpus = load_openclipart(tmp_path, DICTIONARY)
    c = corpus.counts
    assert c["files"] == 7 and c["drawings (distinct PNG content)"] == 6 and c["kept"] == 3
    assert c["dropped: icon theme"] == 1 and c["dropped: same caption as 2 others (series)"] == 2
    assert c["train"] + c["val"] + c["test"] == 3
    names = [n for s in corpus.splits.values() for n in s.names]
    assert sorted(names) == sorted(set(names)) and "animals/bored_dog_01" in names
    caps = {n: cap[0] for s in corpus.splits.values() for n, cap in zip(s.names, s.captions)}
    assert caps["animals/bored_dog_01"] == "bored dog, animals, mammals"  # other category merged in
    again = load_openclipart(tmp_path, DICTIONARY)
    assert {k: v.names for k, v in again.splits.items()} == {k: v.names for k, v in corpus.splits.items()}


def test_split_of_is_a_stable_function_of_the_hash():
    digests = [f"{i:08x}" + "0" * 32 for i in range(0, 2**32, 2**32 // 1000)]
    shares = {s: sum(split_of(d) == s for d in digests) / len(digests) for s in ("train", "val", "test")}
    assert split_of("00000000") == "test" and split_of("0000000a") == "val" and split_of("00000014") == "train"
    assert 0.05 < shares["test"] < 0.15 and 0.05 < shares["val"] < 0.15


def test_transparent_pixels_become_white(tmp_path):
    im = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    im.putpixel((0, 0), (255, 0, 0, 255))
    im.save(tmp_path / "a.png")
    rgb = np.asarray(ClipArtImages([tmp_path / "a.png"]).load(0))
    assert rgb[0, 0].tolist() == [255, 0, 0] and rgb[3, 3].tolist() == [255, 255, 255]


def test_missing_packages_name_the_folder_and_the_fix(tmp_path):
    with pytest.raises(MissingClipArtError, match="apt-get install openclipart-png openclipart-svg"):
        load_openclipart(tmp_path / "nowhere", DICTIONARY)


def test_real_photo_check_set_decodes_with_one_caption_each():
    check = real_photo_check()
    assert len(check) == len(CHECK_SET) and all(len(c) == 1 and len(c[0].split()) >= 3 for c in check.captions)
    assert check.images.load(0).mode == "RGB" and len(unpaired_real_photos()) > len(check)
