"""MoTIS on the assembled teacher, on cached frozen features: stage 1 (contrastive distillation of the
teacher's embeddings on unpaired images and unpaired texts, one tower at a time) and stage 2 (sequential
on pairs: the student image tower against the teacher's texts, then the student text tower against the
trained student images; InfoNCE with hard negatives mined by FAISS + matching KD + the stage-1 term).

The same losses as the open_clip recipe (compression/losses.py, compression/hard_negatives.py). The
image tower's backbone is frozen, so its grid tokens are cached and only the image path of the shared
part trains; the text tower (3 MiniLM layers + its shared part) trains on token ids.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from compression.evaluate import recall_at_k
from compression.hard_negatives import mine_hard_negatives
from compression.losses import DistillClipLoss, contrastive_distillation_loss
from compression.models.assembled_student import AssembledStudent
from compression.trainer import adamw

logger = logging.getLogger(__name__)


@dataclass
class PhaseConfig:
    epochs: int = 10  # passes over the phase's items
    batch_size: int = 64
    lr: float = 5e-4  # AdamW peak, linear warm-up then cosine to 0
    weight_decay: float = 0.05
    warmup_steps: int = 30


@dataclass
class Stage2Loss:
    infonce_weight: float = 1.0
    kd_weight: float = 1.0  # KL between teacher and student matching distributions
    distill_weight: float = 1.0  # the stage-1 term on the trained tower
    kd_temperature: float = 1.0
    distill_temperature: float = 0.05  # also stage 1's
    hard_negatives: int = 8  # per row, drawn from the nearest non-matches below
    hard_negative_pool: int = 64


@dataclass
class StudentData:
    """What the student phases read: student-side inputs and teacher embeddings (L2-normalised)."""

    image_tokens: torch.Tensor  # (N, G*G, 1280) Lite0 grid tokens of the paired images
    token_ids: torch.Tensor  # (C, L) WordPiece ids of the captions, 0 = padding
    owner: torch.Tensor  # (C,) image of each caption
    t_image: torch.Tensor  # (N, D) teacher image embeddings
    t_text: torch.Tensor  # (C, D) teacher text embeddings


def _lr(step: int, total: int, cfg: PhaseConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def trim(ids: torch.Tensor) -> torch.Tensor:
    """Cut (B, L) ids after the longest row's last real token."""
    return ids[:, : max(1, int((ids != 0).sum(1).max()))]


@torch.no_grad()
def student_image_table(student: AssembledStudent, tokens: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    was = student.training
    student.eval()
    out = torch.cat([student.embed_image_tokens(tokens[s : s + batch_size].float()) for s in range(0, len(tokens), batch_size)])
    student.train(was)
    return out


@torch.no_grad()
def student_text_table(student: AssembledStudent, ids: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    was = student.training
    student.eval()
    out = torch.cat([student.encode_text(trim(ids[s : s + batch_size]), normalize=True) for s in range(0, len(ids), batch_size)])
    student.train(was)
    return out


def text_params(student: AssembledStudent) -> list[nn.Parameter]:
    """The text tower's trainable parameters: all but the word embedding table, which stays the teacher's.
    It is half of the text tower's weights (30522 x 384) and a dense AdamW step over it cost ~10x the
    rest of a training step on this CPU; a student that keeps the teacher's vocabulary loses little."""
    student.text_model.requires_grad_(True)
    student.text_shared.requires_grad_(True)
    student.text_model.embeddings.word_embeddings.requires_grad_(False)
    return [p for p in [*student.text_model.parameters(), *student.text_shared.parameters()] if p.requires_grad]


def train_phase(
    name: str, params: list[nn.Parameter], n_items: int, cfg: PhaseConfig, seed: int,
    loss_fn: Callable[[torch.Tensor], dict[str, torch.Tensor]], module: nn.Module,
    score_fn: Callable[[], float] | None = None, on_epoch: Callable[[int], None] | None = None, progress: bool = True,
) -> list[dict[str, float]]:
    """A readable loop: AdamW, warm-up + cosine, one history row per epoch; with ``score_fn`` the best
    epoch's weights of ``module`` are loaded back at the end (model selection on validation RSUM)."""
    torch.manual_seed(seed)
    opt = adamw(params, cfg.lr, cfg.weight_decay, betas=(0.9, 0.98), eps=1e-6)  # CLIP's moments, as OptimConfig
    steps_per_epoch = max(1, n_items // cfg.batch_size)  # InfoNCE wants full batches of negatives
    total, step = steps_per_epoch * cfg.epochs, 0
    gen = torch.Generator().manual_seed(seed)
    best, best_state, history = -math.inf, None, []
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        if on_epoch is not None:
            on_epoch(epoch)
        module.train()
        perm = torch.randperm(n_items, generator=gen)
        sums: dict[str, float] = {}
        bar = tqdm(range(steps_per_epoch), desc=f"{name} {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
        for b in bar:
            for g in opt.param_groups:
                g["lr"] = _lr(step, total, cfg)
            terms = loss_fn(perm[b * cfg.batch_size : (b + 1) * cfg.batch_size])
            loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item() / steps_per_epoch
            bar.set_postfix(loss=f"{loss.item():.3f}")
        row = {"epoch": epoch + 1, **sums}
        if score_fn is not None:
            row["val_rsum"] = score_fn()
            if row["val_rsum"] >= best:  # a tie goes to the later, longer-trained epoch
                best, best_state = row["val_rsum"], copy.deepcopy(module.state_dict())
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        logger.info("%s epoch %d: %s", name, epoch + 1, " ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "epoch"))
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return history


def _val_rsum(img: torch.Tensor, txt: torch.Tensor, owner: torch.Tensor) -> float:
    return recall_at_k(img, txt, owner)["rsum"]


def stage1_image(student: AssembledStudent, tokens: torch.Tensor, t_image: torch.Tensor, val: StudentData,
                 cfg: PhaseConfig, temperature: float, seed: int, progress: bool) -> list[dict]:
    """Student image path vs teacher image embeddings of unpaired images (contrastive KD)."""
    params = [p for p in student.image_shared.parameters()]
    student.image_shared.requires_grad_(True)

    def loss_fn(idx):
        s = student.embed_image_tokens(tokens[idx].float())
        return {"distill_loss": contrastive_distillation_loss(s, t_image[idx], temperature)}

    def score():  # student images against the teacher's texts
        return _val_rsum(student_image_table(student, val.image_tokens), val.t_text, val.owner)

    return train_phase("stage1 image", params, len(tokens), cfg, seed, loss_fn, student.image_shared, score, None, progress)


def stage1_text(student: AssembledStudent, ids: torch.Tensor, t_text: torch.Tensor, val: StudentData,
                cfg: PhaseConfig, temperature: float, seed: int, progress: bool) -> list[dict]:
    """Student text tower vs teacher text embeddings of unpaired texts (contrastive KD)."""
    text = nn.ModuleDict({"model": student.text_model, "shared": student.text_shared})
    params = text_params(student)

    def loss_fn(idx):
        s = student.encode_text(trim(ids[idx]), normalize=True)
        return {"distill_loss": contrastive_distillation_loss(s, t_text[idx], temperature)}

    def score():  # the teacher's images against student texts
        return _val_rsum(val.t_image, student_text_table(student, val.token_ids), val.owner)

    return train_phase("stage1 text", params, len(ids), cfg, seed, loss_fn, text, score, None, progress)


def stage2(student: AssembledStudent, scale: nn.Parameter, t_scale: float, tower: str, data: StudentData,
           val: StudentData, cfg: PhaseConfig, loss_cfg: Stage2Loss, seed: int, progress: bool) -> list[dict]:
    """One sequential phase on pairs. ``tower`` = "image": student images vs the teacher's texts, hard
    negative texts per image; "text": student texts vs the (trained, fixed) student images, hard negative
    images per caption. Hard negatives are re-mined from the whole training set every epoch."""
    loss = DistillClipLoss(loss_cfg.infonce_weight, loss_cfg.kd_weight, loss_cfg.distill_weight, loss_cfg.kd_temperature,
                           loss_cfg.distill_temperature, 0.5)
    owner = data.owner
    image_ids = np.arange(len(data.image_tokens))
    state: dict[str, torch.Tensor | None] = {"hard": None}
    s_img_fixed = student_image_table(student, data.image_tokens) if tower == "text" else None
    if tower == "image":
        module = nn.ModuleDict({"shared": student.image_shared})
    else:
        module = nn.ModuleDict({"model": student.text_model, "shared": student.text_shared})
    params = (list(student.image_shared.parameters()) if tower == "image" else text_params(student)) + [scale]
    if tower == "image":
        student.image_shared.requires_grad_(True)
    max_caps = int(torch.bincount(owner).max())

    def on_epoch(epoch: int) -> None:
        if loss_cfg.hard_negatives <= 0:
            return
        rng = np.random.default_rng([seed, 10_000 + epoch])
        if tower == "image":  # image queries against the teacher's caption corpus
            q = student_image_table(student, data.image_tokens)
            state["hard"] = torch.from_numpy(mine_hard_negatives(q, data.t_text, image_ids, owner.numpy(),
                                                                 loss_cfg.hard_negatives, loss_cfg.hard_negative_pool, rng, max_caps))
        else:  # caption queries against the student's image corpus
            q = student_text_table(student, data.token_ids)
            state["hard"] = torch.from_numpy(mine_hard_negatives(q, s_img_fixed, owner.numpy(), image_ids,
                                                                 loss_cfg.hard_negatives, loss_cfg.hard_negative_pool, rng, 1))

    def loss_fn(cap):
        img_ids = owner[cap]
        # one caption per image in a batch: a second caption of the same image would be a false negative
        _, first = np.unique(img_ids.numpy(), return_index=True)
        cap, img_ids = cap[first], img_ids[first]
        hard_texts = hard_images = None
        if tower == "image":
            img = student.embed_image_tokens(data.image_tokens[img_ids].float())
            txt = data.t_text[cap]
            if state["hard"] is not None:
                hard_texts = data.t_text[state["hard"][img_ids]]
        else:
            img = s_img_fixed[img_ids]
            txt = student.encode_text(trim(data.token_ids[cap]), normalize=True)
            if state["hard"] is not None:
                hard_images = s_img_fixed[state["hard"][cap]]
        return loss(img, txt, scale.exp().clamp(max=100.0), data.t_image[img_ids], data.t_text[cap], t_scale, trained=tower,
                    hard_texts=hard_texts, hard_images=hard_images)

    def score():
        img = student_image_table(student, val.image_tokens)
        txt = val.t_text if tower == "image" else student_text_table(student, val.token_ids)
        return _val_rsum(img, txt, val.owner)

    # model selection restores the tower's weights; the logit scale is kept as trained
    return train_phase(f"stage2 {tower}", params, len(owner), cfg, seed, loss_fn, module, score, on_epoch, progress)


def phase_configs_to_dict(**phases: PhaseConfig) -> dict:
    return {k: asdict(v) for k, v in phases.items()}
