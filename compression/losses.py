"""Losses of the two-stage recipe: contrastive distillation, InfoNCE with hard negatives, matching KD."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compression.config import ConfigError


def contrastive_distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Intra-modal contrastive KD (stage 1): student embedding i must pick teacher embedding i in the batch.

    student, teacher: (B, D), L2-normalised, same modality. Returns the mean cross-entropy of
    ``student @ teacher.T / temperature`` against the diagonal.
    """
    logits = student @ teacher.T / temperature
    targets = torch.arange(student.shape[0], device=student.device)
    return F.cross_entropy(logits, targets)


def info_nce_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor | float,
    hard_texts: torch.Tensor | None = None,
    hard_images: torch.Tensor | None = None,
    direction_weight: float = 0.5,
) -> torch.Tensor:
    """Symmetric CLIP InfoNCE over in-batch pairs, optionally with extra per-row hard negatives.

    image, text: (B, D) L2-normalised, row i of each is a positive pair.
    hard_texts: (B, K, D) extra negative texts for image i; hard_images: (B, K, D) for text i.
    Each direction is the cross-entropy over [B in-batch candidates, K hard negatives]; the loss is
    ``direction_weight * (i2t + t2i)``: 0.5 is their mean (CLIP, open_clip), 1.0 their sum (MoTIS eq. 1).
    """
    logits = logit_scale * image @ text.T  # (B, B)
    targets = torch.arange(image.shape[0], device=image.device)
    i2t, t2i = logits, logits.T
    if hard_texts is not None and hard_texts.shape[1] > 0:
        i2t = torch.cat([i2t, logit_scale * torch.einsum("bd,bkd->bk", image, hard_texts)], dim=1)
    if hard_images is not None and hard_images.shape[1] > 0:
        t2i = torch.cat([t2i, logit_scale * torch.einsum("bd,bkd->bk", text, hard_images)], dim=1)
    return direction_weight * (F.cross_entropy(i2t, targets) + F.cross_entropy(t2i, targets))


def matching_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher matching distribution || student's), both directions (rows and columns), averaged.

    *_logits: (B, B) image-text similarity logits of the same batch, rows = images. The loss is
    ``T**2 * KL`` so its gradient scale does not depend on the temperature (Hinton et al.).
    """
    t = temperature

    def kl(s: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return F.kl_div(F.log_softmax(s / t, dim=1), F.log_softmax(q / t, dim=1), log_target=True, reduction="batchmean")

    return t * t * (kl(student_logits, teacher_logits) + kl(student_logits.T, teacher_logits.T)) / 2


class DistillClipLoss(nn.Module):
    """Stage-2 loss: weighted InfoNCE (+ hard negatives) + matching KD + contrastive distillation.

    ``forward`` returns a dict of named ``*_loss`` terms (only the enabled ones); the trainer sums
    and logs them one by one. A weight of 0 switches a term off (the paper's ablations).
    """

    def __init__(
        self,
        infonce_weight: float = 1.0,
        kd_weight: float = 1.0,
        distill_weight: float = 1.0,
        kd_temperature: float = 1.0,
        distill_temperature: float = 0.05,
        infonce_direction_weight: float = 0.5,
    ):
        super().__init__()
        self.infonce_weight = infonce_weight
        self.kd_weight = kd_weight
        self.distill_weight = distill_weight
        self.kd_temperature = kd_temperature
        self.distill_temperature = distill_temperature
        self.infonce_direction_weight = infonce_direction_weight

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        logit_scale: torch.Tensor,
        teacher_image: torch.Tensor,
        teacher_text: torch.Tensor,
        teacher_logit_scale: torch.Tensor | float,
        trained: str,
        hard_texts: torch.Tensor | None = None,
        hard_images: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """All embeddings (B, D) L2-normalised. ``trained`` names the tower(s) being trained:
        "image", "text" or "both"; the distillation term applies to those towers only."""
        out: dict[str, torch.Tensor] = {}
        if self.infonce_weight > 0:
            out["infonce_loss"] = self.infonce_weight * info_nce_loss(
                image, text, logit_scale, hard_texts, hard_images, self.infonce_direction_weight
            )
        if self.kd_weight > 0:
            s_logits = logit_scale * image @ text.T
            t_logits = teacher_logit_scale * teacher_image @ teacher_text.T
            out["kd_loss"] = self.kd_weight * matching_kd_loss(s_logits, t_logits.detach(), self.kd_temperature)
        if self.distill_weight > 0:
            terms = []
            if trained in ("image", "both"):
                terms.append(contrastive_distillation_loss(image, teacher_image.detach(), self.distill_temperature))
            if trained in ("text", "both"):
                terms.append(contrastive_distillation_loss(text, teacher_text.detach(), self.distill_temperature))
            out["distill_loss"] = self.distill_weight * sum(terms) / len(terms)
        if not out:
            raise ConfigError("every stage-2 loss term has weight 0: nothing to train")
        return out
