"""Epochs of the paired phases: over images (one caption each) or over captions (every pair once)."""
import numpy as np
import torch

from compression.config import OptimConfig
from compression.data.captioned import ArrayImages, CaptionedImages
from compression.stages import PairSampler
from compression.trainer import get_lr


def captioned(n_captions: list[int]) -> CaptionedImages:
    caps = [[f"image {i} caption {j}" for j in range(n)] for i, n in enumerate(n_captions)]
    return CaptionedImages(ArrayImages(np.zeros((len(caps), 4, 4, 3), np.uint8)), caps, [str(i) for i in range(len(caps))])


def test_epoch_over_captions_is_every_pair_once():
    data = captioned([5, 3, 1, 4])
    sampler = PairSampler(data, seed=0, over="captions")
    assert len(sampler) == 13
    images, captions = sampler.lookup(torch.arange(13))
    _texts, owner = data.flat_captions()
    assert sorted(captions.tolist()) == list(range(13))
    assert images.tolist() == owner[captions.numpy()].tolist()


def test_epoch_over_images_is_each_image_once_with_one_of_its_captions():
    data = captioned([5, 3, 1, 4])
    sampler = PairSampler(data, seed=0, over="images")
    assert len(sampler) == 4
    seen = set()
    for epoch in range(20):
        sampler.new_epoch(epoch)
        images, captions = sampler.lookup(torch.arange(4))
        assert images.tolist() == [0, 1, 2, 3]
        _, owner = data.flat_captions()
        assert owner[captions.numpy()].tolist() == [0, 1, 2, 3]
        seen.update(captions.tolist())
    assert len(seen) > 4  # a new caption draw every epoch


def test_cosine_can_decay_to_zero():
    cfg = OptimConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.0)
    assert get_lr(9, 100, cfg) == 1.0
    assert get_lr(100, 100, cfg) == 0.0
    assert get_lr(100, 100, OptimConfig(lr=1.0, warmup_steps=10)) == 0.1  # the default keeps 10%
