"""Training the assembled teacher's shared encoder on cached frozen features: symmetric InfoNCE at a
small batch plus distillation of the frozen image model's pooled features (seed 002's two terms),
with the best validation RSUM kept."""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from compression.assembled_features import FrozenFeatures
from compression.evaluate import recall_at_k
from compression.losses import info_nce_loss
from compression.models.assembled import SharedEncoder
from compression.trainer import adamw

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharedTrainConfig:
    epochs: int = 10  # passes over the training captions (val RSUM plateaus from epoch 6 on the clip art)
    batch_size: int = 64  # small on purpose: the recipe aligns at small batch
    lr: float = 5e-4  # AdamW peak learning rate, cosine decay after warmup
    warmup_steps: int = 50
    weight_decay: float = 0.05
    distill_weight: float = 1.0  # weight of (1 - cos) between predicted and frozen image features
    class_name_weight: float = 0.0  # weight of InfoNCE between images and their top ImageNet class's name
    class_name_min_prob: float = 0.2  # only images the classifier is this sure about get a class-name pair
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class LogitScale(nn.Module):
    """CLIP's learnable inverse temperature, stored as its log, capped at 100."""

    def __init__(self, init: float = math.log(1 / 0.07)):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(init))

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=100.0)


def _lr(step: int, total: int, cfg: SharedTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def text_batch(feats: FrozenFeatures, rows: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached text states and mask of some captions, cut after the longest one's last real token
    (the cache pads to 64; captions average far fewer, and attention cost grows with length)."""
    mask = feats.text_mask[rows]
    length = max(1, int(mask.sum(1).max()))
    return feats.text_states[rows][:, :length].float(), mask[:, :length]


@dataclass
class ClassNameTexts:
    """MiniLM token states of the 1000 ImageNet class names: texts for ConSE-style extra pairs."""

    states: torch.Tensor  # (1000, L, 384)
    mask: torch.Tensor  # (1000, L) bool


def batch_loss(
    shared: SharedEncoder, scale: LogitScale, feats: FrozenFeatures, captions: torch.Tensor, distill_weight: float,
    class_names: ClassNameTexts | None = None, class_name_weight: float = 0.0, min_prob: float = 0.2,
) -> dict[str, torch.Tensor]:
    """Named loss terms for a batch of caption indices (each paired with its own image)."""
    images = feats.text_owner[captions]
    img_states = shared.image_states(feats.image_tokens[images].float())
    txt_states = shared.text_states(*text_batch(feats, captions))
    out = {"contrastive_loss": info_nce_loss(shared.embed(img_states), shared.embed(txt_states), scale())}
    if distill_weight > 0:
        target = feats.image_pooled[images].float()
        cos = F.cosine_similarity(shared.distill_head(img_states), target, dim=-1)
        out["distill_loss"] = distill_weight * (1 - cos).mean()
    if class_names is not None and class_name_weight > 0:
        prob, cls = feats.image_logits[images].float().softmax(-1).max(-1)
        sure = prob >= min_prob
        if int(sure.sum()) >= 2:
            names = cls[sure]
            z_c = shared.embed(shared.text_states(class_names.states[names], class_names.mask[names]))
            out["class_name_loss"] = class_name_weight * info_nce_loss(shared.embed(img_states[sure]), z_c, scale())
    return out


@torch.no_grad()
def embed_features(shared: SharedEncoder, feats: FrozenFeatures, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) image and (C, D) text embeddings, L2-normalised, from cached tower features."""
    was_training = shared.training
    shared.eval()
    img = torch.cat([
        shared.embed(shared.image_states(feats.image_tokens[s : s + batch_size].float()))
        for s in range(0, feats.image_tokens.shape[0], batch_size)
    ])
    txt = torch.cat([
        shared.embed(shared.text_states(*text_batch(feats, slice(s, s + batch_size))))
        for s in range(0, feats.text_states.shape[0], batch_size)
    ])
    shared.train(was_training)
    return img, txt


def evaluate_shared(shared: SharedEncoder, feats: FrozenFeatures) -> dict[str, float]:
    img, txt = embed_features(shared, feats)
    return recall_at_k(img, txt, feats.text_owner)


def train_shared(
    shared: SharedEncoder, train: FrozenFeatures, val: FrozenFeatures, cfg: SharedTrainConfig, progress: bool = True,
    class_names: ClassNameTexts | None = None,
) -> tuple[LogitScale, list[dict[str, float]]]:
    """Trains ``shared`` in place and loads the epoch with the best validation RSUM back into it.
    Returns the matching logit scale and one history row per epoch (losses, val recalls, seconds)."""
    torch.manual_seed(cfg.seed)
    scale = LogitScale()
    params = list(shared.parameters()) + list(scale.parameters())
    opt = adamw(params, cfg.lr, cfg.weight_decay)  # PyTorch's default moments (the measured teacher's)
    n = train.text_owner.shape[0]
    steps_per_epoch = max(1, n // cfg.batch_size)  # drop the last partial batch: InfoNCE needs negatives
    total = steps_per_epoch * cfg.epochs
    gen = torch.Generator().manual_seed(cfg.seed)
    best, best_state, history, step = -1.0, None, [], 0
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        shared.train()
        perm = torch.randperm(n, generator=gen)
        sums: dict[str, float] = {}
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
        for b in bar:
            for group in opt.param_groups:
                group["lr"] = _lr(step, total, cfg)
            terms = batch_loss(shared, scale, train, perm[b * cfg.batch_size : (b + 1) * cfg.batch_size], cfg.distill_weight,
                               class_names, cfg.class_name_weight, cfg.class_name_min_prob)
            loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item() / steps_per_epoch
            bar.set_postfix(loss=f"{loss.item():.3f}")
        metrics = evaluate_shared(shared, val)
        row = {"epoch": epoch + 1, **sums, **{f"val_{k}": v for k, v in metrics.items()},
               "seconds": time.perf_counter() - t0}
        history.append(row)
        logger.info("epoch %d: %s val rsum %.1f (%.1fs)", epoch + 1,
                    " ".join(f"{k} {v:.3f}" for k, v in sums.items()), metrics["rsum"], row["seconds"])
        if metrics["rsum"] > best:
            best, best_state = metrics["rsum"], (copy.deepcopy(shared.state_dict()), scale.log_scale.detach().clone())
    if best_state is not None:
        shared.load_state_dict(best_state[0])
        scale.log_scale.data.copy_(best_state[1])
    shared.eval()
    return scale, history
