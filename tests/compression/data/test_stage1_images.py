"""Stage 1's further unpaired images for the clip art run: augmented views (a pure function of seed and index)
and synthetic scenes."""
import numpy as np
import pytest
import torch

from compression.data.augment import AugmentedImages
from compression.data.captioned import ArrayImages, CaptionedImages
from compression.data.stage1_images import STAGE1_ONLY, stage1_extra_sets
from compression.data.synthetic import synthetic_unpaired_images


def _drawings(n=4, size=48):
    rng = np.random.default_rng(0)
    arr = np.full((n, size, size, 3), 255, np.uint8)
    for i in range(n):  # a coloured square on white, as a drawing
        arr[i, 8:40, 8:40] = rng.integers(0, 255, 3)
    return ArrayImages(arr)


def test_a_view_is_a_pure_function_of_seed_and_index_and_leaves_the_global_generator_alone():
    views = AugmentedImages(_drawings(), 48, seed=0)
    state = torch.get_rng_state()
    a = np.asarray(views.load(1))
    assert torch.equal(state, torch.get_rng_state())
    assert a.shape == (48, 48, 3) and np.array_equal(a, np.asarray(AugmentedImages(_drawings(), 48, seed=0).load(1)))
    assert not np.array_equal(a, np.asarray(_drawings().load(1)))  # it is augmented
    assert not np.array_equal(a, np.asarray(AugmentedImages(_drawings(), 48, seed=1).load(1)))  # another view
    assert views.names(["x/a"]) != AugmentedImages(_drawings(), 48, seed=1).names(["x/a"])  # so another cache key
    with pytest.raises(IndexError):
        views.load(4)


def test_extra_sets_hold_views_of_drawings_and_photos_and_synthetic_scenes():
    drawings = _drawings()
    sets = {"train": CaptionedImages(drawings, [["a"]] * 4, [f"d{i}" for i in range(4)]),
            "unpaired photos": CaptionedImages(_drawings(2), [["photo"]] * 2, ["p0", "p1"]),
            "test": CaptionedImages(drawings, [["a"]] * 4, [f"t{i}" for i in range(4)])}
    extra = stage1_extra_sets(sets, views=2, synthetic=3, size=48, seed=0)
    assert set(extra) == {"augmented train 0", "augmented train 1", "augmented unpaired photos 0",
                          "augmented unpaired photos 1", "synthetic scenes"}
    assert all(name.startswith(STAGE1_ONLY) for name in extra)  # the pipeline feeds them to stage 1 by prefix
    assert len(extra["augmented train 1"]) == 4 and len(extra["synthetic scenes"]) == 3
    assert extra["synthetic scenes"].images.array.shape == (3, 48, 48, 3)
    assert len({*extra["augmented train 0"].names, *extra["augmented train 1"].names}) == 8
    assert stage1_extra_sets(sets, views=0, synthetic=0, size=48, seed=0) == {}
    with pytest.raises(ValueError, match="stage1_views"):
        stage1_extra_sets(sets, views=-1, synthetic=0, size=48, seed=0)


def test_synthetic_scenes_are_the_benchmarks_unpaired_stream():
    a, b = synthetic_unpaired_images(3, 32), synthetic_unpaired_images(2, 32)
    assert np.array_equal(a.array[:2], b.array)  # the first k of n equal k: a pure function of (seed, index)
    assert a.array.std() > 0
