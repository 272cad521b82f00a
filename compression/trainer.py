"""One readable training loop for every phase: AdamW, warmup + cosine LR, per-epoch resumable checkpoints."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from compression.checkpoint import atomic_torch_save
from compression.config import OptimConfig

logger = logging.getLogger(__name__)

LossFn = Callable[[Any], dict[str, torch.Tensor]]


def get_lr(step: int, total_steps: int, cfg: OptimConfig, min_ratio: float = 0.1) -> float:
    """Linear warmup over ``cfg.warmup_steps``, then cosine decay to ``min_ratio * cfg.lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
    return cfg.lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def batch_indices(n_items: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A shuffled epoch in batches; a last batch smaller than 2 is dropped (contrastive losses need 2)."""
    perm = rng.permutation(n_items)
    batches = [perm[s : s + batch_size] for s in range(0, n_items, batch_size)]
    return [b for b in batches if len(b) >= 2]


def make_optimizer(params: list[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay only on matrices (not on norms, biases, scales), as in open_clip."""
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def train_phase(
    name: str,
    module: nn.Module,
    cfg: OptimConfig,
    n_items: int,
    make_batches: Callable[[list[np.ndarray]], Iterable[Any]],
    loss_fn: LossFn,
    checkpoint: Path | None,
    seed: int,
    on_epoch_start: Callable[[int], None] | None = None,
    progress: bool = True,
    clamp_logit_scale: Iterable[nn.Parameter] = (),
) -> dict[str, float]:
    """Train the parameters of ``module`` that require grad for ``cfg.epochs`` epochs over ``n_items``.

    ``make_batches(index_batches)`` turns each epoch's shuffled index batches into the batches that
    ``loss_fn`` takes; ``loss_fn`` returns named ``*_loss`` terms that are summed. After every epoch
    the module and optimizer state go to ``checkpoint`` (atomically), so a killed run resumes at the
    next epoch with the same data order it would have had (epoch RNGs derive from ``seed``).
    Returns the mean of each loss term over the last epoch.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"phase {name}: no trainable parameters")
    optimizer = make_optimizer(params, cfg)
    steps_per_epoch = len(batch_indices(n_items, cfg.batch_size, np.random.default_rng(0)))
    total_steps = cfg.epochs * steps_per_epoch
    start_epoch, last = 0, {}
    if checkpoint is not None and Path(checkpoint).is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, last = state["epoch"] + 1, state.get("losses", {})
        logger.info("%s: resuming after epoch %d from %s", name, state["epoch"] + 1, checkpoint)
    module.train()
    for epoch in range(start_epoch, cfg.epochs):
        rng = np.random.default_rng([seed, epoch])
        torch.manual_seed(int(rng.integers(2**31)))
        if on_epoch_start is not None:
            on_epoch_start(epoch)
            module.train()
        sums: dict[str, float] = {}
        n_steps = 0
        batches = make_batches(batch_indices(n_items, cfg.batch_size, rng))
        bar = tqdm(batches, total=steps_per_epoch, desc=f"{name} {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
        for i, batch in enumerate(bar):
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = get_lr(step, total_steps, cfg)
            terms = loss_fn(batch)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"phase {name}: loss became {loss.item()} at epoch {epoch + 1} step {i}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            with torch.no_grad():
                for p in clamp_logit_scale:
                    p.clamp_(0, math.log(100))
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_steps += 1
            if progress:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        last = {k: v / max(1, n_steps) for k, v in sums.items()}
        logger.info("%s epoch %d/%d: %s", name, epoch + 1, cfg.epochs, " ".join(f"{k}={v:.4f}" for k, v in last.items()))
        if checkpoint is not None:
            atomic_torch_save(
                {"module": module.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch, "losses": last},
                checkpoint,
            )
    module.eval()
    return last
