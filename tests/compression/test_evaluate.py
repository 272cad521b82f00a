"""recall@K against a case computed by hand."""
import numpy as np
import pytest
import torch

from compression.evaluate import caption_ranks, recall_at_k


def _unit(*angles_deg):
    a = np.deg2rad(angles_deg)
    return torch.tensor(np.stack([np.cos(a), np.sin(a)], 1), dtype=torch.float32)


def test_recall_hand_computed():
    # 3 images on the unit circle at 0, 90, 180 degrees; 2 captions each
    images = _unit(0, 90, 180)
    # captions: image 0 -> at 10 and 100 deg; image 1 -> at 80 and 95; image 2 -> at 0 and 45
    texts = _unit(10, 100, 80, 95, 0, 45)
    owner = np.array([0, 0, 1, 1, 2, 2])
    t2i, i2t = caption_ranks(images, texts, torch.as_tensor(owner))
    # caption at 100 deg: cos(100) to its image, but cos(10) to image 1 and cos(80) to image 2 -> rank 2
    # captions at 0 and 45 deg are nearer both other images than image 2 (180 deg) -> rank 2
    assert t2i.tolist() == [0, 2, 0, 0, 2, 2]
    # image 0 ranks the 0-deg caption (image 2's) above its own 10-deg one -> rank 1
    # image 1's best caption is its own 95-deg one -> rank 0
    # image 2 (180 deg): cos(80), cos(85), cos(100) of captions 100, 95, 80 beat its own best cos(135) -> rank 3
    assert i2t.tolist() == [1, 0, 3]
    r = recall_at_k(images, texts, owner, ks=(1, 2, 5))
    assert r["t2i_R@1"] == pytest.approx(100 * 3 / 6)
    assert r["t2i_R@2"] == pytest.approx(100 * 3 / 6)
    assert r["t2i_R@5"] == pytest.approx(100.0)
    assert r["i2t_R@1"] == pytest.approx(100 / 3)
    assert r["i2t_R@2"] == pytest.approx(200 / 3)
    assert r["i2t_R@5"] == pytest.approx(100.0)
    assert r["rsum"] == pytest.approx(sum(v for k, v in r.items() if "R@" in k))


def test_chunking_does_not_change_ranks():
    g = torch.Generator().manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(50, 8, generator=g), dim=-1)
    texts = torch.nn.functional.normalize(torch.randn(120, 8, generator=g), dim=-1)
    owner = torch.randint(0, 50, (120,), generator=g)
    a = caption_ranks(images, texts, owner, chunk=7)
    b = caption_ranks(images, texts, owner, chunk=10_000)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_perfect_embeddings_give_full_recall():
    images = torch.eye(4)
    texts = torch.eye(4).repeat_interleave(2, 0)
    r = recall_at_k(images, texts, np.repeat(np.arange(4), 2), ks=(1,))
    assert r["t2i_R@1"] == 100.0 and r["i2t_R@1"] == 100.0 and r["rsum"] == 200.0


def test_recall_over_folds_is_the_mean_of_each_fold_alone():
    """COCO 1K: each fold of 1000 images is searched on its own (its own captions only), then averaged."""
    from compression.evaluate import recall_over_folds

    torch.manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    owner = np.repeat(np.arange(6), 2)
    texts = torch.nn.functional.normalize(images[owner] + 0.9 * torch.randn(12, 8), dim=-1)
    folds = recall_over_folds(images, texts, owner, [1, 2], fold_size=3)
    first = recall_at_k(images[:3], texts[:6], owner[:6], [1, 2])
    second = recall_at_k(images[3:], texts[6:], owner[6:] - 3, [1, 2])
    for key in first:
        assert folds[key] == pytest.approx((first[key] + second[key]) / 2)
    assert folds["n_folds"] == 2
    # searching a third of the pool is easier than searching all of it
    assert folds["rsum"] >= recall_at_k(images, texts, owner, [1, 2])["rsum"]
