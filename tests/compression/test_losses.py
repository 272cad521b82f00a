"""Each loss against a small case worked out by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from compression.losses import DistillClipLoss, contrastive_distillation_loss, info_nce_loss, matching_kd_loss


def test_contrastive_distillation_two_items_by_hand():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # row 0 logits [1, 0.6]/T, target 0; row 1 logits [0, 0.8]/T, target 1
    T = 0.5
    expected = (-math.log(math.exp(2) / (math.exp(2) + math.exp(1.2))) - math.log(math.exp(1.6) / (1 + math.exp(1.6)))) / 2
    torch.testing.assert_close(contrastive_distillation_loss(s, t, T), torch.tensor(expected))


def test_contrastive_distillation_prefers_matching_teacher():
    t = F.normalize(torch.randn(8, 16), dim=-1)
    good = contrastive_distillation_loss(t, t, 0.05)
    bad = contrastive_distillation_loss(t.roll(1, 0), t, 0.05)
    assert good < 0.01 < bad


def test_info_nce_by_hand_and_symmetric():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    # logits = 2 * img @ txt.T = [[1.6, 0], [1.2, 2]]
    i2t = (-math.log(math.exp(1.6) / (math.exp(1.6) + 1)) - math.log(math.exp(2) / (math.exp(1.2) + math.exp(2)))) / 2
    t2i = (-math.log(math.exp(1.6) / (math.exp(1.6) + math.exp(1.2))) - math.log(math.exp(2) / (1 + math.exp(2)))) / 2
    torch.testing.assert_close(info_nce_loss(img, txt, 2.0), torch.tensor((i2t + t2i) / 2))


def test_info_nce_hard_negatives_are_extra_columns():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = img.clone()
    hard = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]])  # (B, K=1, D): for image 0 the text [0, 1] ...
    scale = 1.0
    # image 0: candidates [1, 0] + hard [0] -> -log(e/(e+1+1)); same for image 1
    i2t = -math.log(math.e / (math.e + 2))
    t2i = -math.log(math.e / (math.e + 1))
    torch.testing.assert_close(info_nce_loss(img, txt, scale, hard_texts=hard), torch.tensor((i2t + t2i) / 2))
    # an empty K changes nothing
    torch.testing.assert_close(info_nce_loss(img, txt, scale, hard_texts=hard[:, :0]), info_nce_loss(img, txt, scale))


def test_matching_kd_zero_when_equal_and_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    assert matching_kd_loss(logits, logits).item() == pytest.approx(0.0, abs=1e-7)
    student = torch.zeros(2, 2)  # uniform
    p = torch.softmax(logits, 1)
    q = torch.softmax(logits.T, 1)
    kl_rows = (p * (p / 0.5).log()).sum(1).mean()
    kl_cols = (q * (q / 0.5).log()).sum(1).mean()
    torch.testing.assert_close(matching_kd_loss(student, logits), (kl_rows + kl_cols) / 2)


def test_matching_kd_temperature_scaling():
    s, t = torch.randn(4, 4), torch.randn(4, 4)
    torch.testing.assert_close(matching_kd_loss(s, t, 2.0), 4.0 * matching_kd_loss(s / 2, t / 2, 1.0))


def test_distill_clip_loss_terms_switch_off():
    torch.manual_seed(0)
    e = [F.normalize(torch.randn(6, 8), dim=-1) for _ in range(4)]
    full = DistillClipLoss(1.0, 1.0, 1.0)(e[0], e[1], torch.tensor(10.0), e[2], e[3], 10.0, trained="image")
    assert set(full) == {"infonce_loss", "kd_loss", "distill_loss"}
    no_kd = DistillClipLoss(1.0, 0.0, 1.0)(e[0], e[1], torch.tensor(10.0), e[2], e[3], 10.0, trained="image")
    assert set(no_kd) == {"infonce_loss", "distill_loss"}
    torch.testing.assert_close(full["distill_loss"], contrastive_distillation_loss(e[0], e[2], 0.05))
    text_side = DistillClipLoss(0.0, 0.0, 1.0)(e[0], e[1], torch.tensor(10.0), e[2], e[3], 10.0, trained="text")
    torch.testing.assert_close(text_side["distill_loss"], contrastive_distillation_loss(e[1], e[3], 0.05))
    with pytest.raises(ValueError, match="weight 0"):
        DistillClipLoss(0.0, 0.0, 0.0)(e[0], e[1], torch.tensor(10.0), e[2], e[3], 10.0, trained="image")


def test_info_nce_direction_weight_is_explicit():
    """MoTIS eq. 1 sums the two directions; CLIP averages them. The weight says which."""
    torch.manual_seed(0)
    img, txt = F.normalize(torch.randn(4, 8), dim=-1), F.normalize(torch.randn(4, 8), dim=-1)
    logits = 10 * img @ txt.T
    targets = torch.arange(4)
    both = F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)
    torch.testing.assert_close(info_nce_loss(img, txt, 10.0, direction_weight=1.0), both)
    torch.testing.assert_close(info_nce_loss(img, txt, 10.0), both / 2)
    loss = DistillClipLoss(kd_weight=0, distill_weight=0, infonce_direction_weight=1.0)
    out = loss(img, txt, torch.tensor(10.0), img, txt, 10.0, trained="image")
    torch.testing.assert_close(out["infonce_loss"], both)
