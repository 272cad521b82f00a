"""One readable training loop for every phase: AdamW, warmup + cosine LR, per-epoch resumable checkpoints."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from compression.checkpoint import atomic_torch_save
from compression.config import ConfigError, OptimConfig
from compression.distributed import SINGLE, Dist, gather_rows

logger = logging.getLogger(__name__)

Features = dict[str, torch.Tensor | None]
CPU = torch.device("cpu")
LossFn = Callable[[Features], dict[str, torch.Tensor]]


def get_lr(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Linear warmup over ``cfg.warmup_steps``, then cosine decay to ``cfg.min_lr_ratio * cfg.lr``."""
    min_ratio = cfg.min_lr_ratio
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
    return cfg.lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def batch_indices(n_items: int, batch_size: int, rng: np.random.Generator, min_size: int = 2) -> list[np.ndarray]:
    """A shuffled epoch in global batches; a last batch smaller than ``min_size`` is dropped
    (contrastive losses need 2 rows, and with N ranks x A micro-batches every part needs one)."""
    perm = rng.permutation(n_items)
    batches = [perm[s : s + batch_size] for s in range(0, n_items, batch_size)]
    return [b for b in batches if len(b) >= max(2, min_size)]


def local_micro_batches(batch: np.ndarray, dist: Dist, accum_steps: int) -> list[np.ndarray]:
    """This rank's slice of a global batch, cut into ``accum_steps`` contiguous micro-batches.

    Rank-major order: rank 0's micro-batches, then rank 1's, ... concatenate back to ``batch``, so
    gathered features are in the same row order as in a single process.
    """
    return [m for m in np.array_split(dist.split(batch), accum_steps)]


class PhaseForward(nn.Module):
    """The trainable module plus the phase's forward function, as one module that DDP can wrap.

    ``fn(batch)`` returns the features the loss needs: (B, ...) tensors row-aligned with the batch
    (embeddings, frozen lookups, hard negatives; None where absent) and 0-d tensors shared by all
    rows (a logit scale). Going through DDP's forward is what arms its gradient all-reduce.
    """

    def __init__(self, module: nn.Module, fn: Callable[[Any], Features]):
        super().__init__()
        self.module = module
        self.fn = fn

    def forward(self, batch: Any) -> Features:
        return self.fn(batch)


def gather_features(features: Features, dist: Dist) -> Features:
    """Row-aligned features of every rank, concatenated (trainable ones keep their gradient); fp32."""
    out: Features = {}
    for k, v in features.items():
        if v is not None and v.is_floating_point():
            v = v.float()
        out[k] = v if v is None or v.ndim == 0 else gather_rows(v, dist, with_grad=v.requires_grad)
    return out


def merge_micro(features: Features, cached: list[Features], j: int, last: bool) -> Features:
    """Micro-batch ``j``'s features with gradient, the other micro-batches' from the no-grad pass.

    Shared 0-d features keep their gradient only in the last micro-step, so that accumulating A
    backward passes adds each row's gradient once and the shared parameter's gradient once.
    """
    out: Features = {}
    for k, v in features.items():
        if v is None:
            out[k] = None
        elif v.ndim == 0:
            out[k] = v if last else v.detach()
        else:
            out[k] = torch.cat([v if i == j else c[k] for i, c in enumerate(cached)])
    return out


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The part of ``module.state_dict()`` a phase changes: parameters that require grad, and buffers
    (CPU copies). Frozen weights are left out: they are the phase's starting weights, already on disk."""
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    buffers = {n for n, _ in module.named_buffers()}
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items() if k in trainable or k in buffers}


def load_trainable_state(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load a ``trainable_state`` back; keys the module does not have are an error naming ``where``."""
    unexpected = sorted(set(state) - set(module.state_dict()))
    if unexpected:
        raise ValueError(f"{where} does not fit this phase's module: unexpected keys {unexpected[:3]}")
    module.load_state_dict(state, strict=False)


def adamw(params: list[nn.Parameter], lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999),
          eps: float = 1e-8) -> torch.optim.Optimizer:
    """AdamW; weight decay only on matrices (not on norms, biases, scales), as in open_clip."""
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def make_optimizer(params: list[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """:func:`adamw` with the config's moments and epsilon."""
    return adamw(params, cfg.lr, cfg.weight_decay, (cfg.adam_beta1, cfg.adam_beta2), cfg.adam_eps)


def autocast(device: torch.device, precision: str):
    """bf16 autocast for the forward passes when the config asks for it; fp32 otherwise."""
    if precision == "fp32":
        return nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise ConfigError(f"precision must be 'fp32' or 'bf16', got {precision!r}")


def train_phase(
    name: str,
    module: nn.Module,
    cfg: OptimConfig,
    n_items: int,
    make_batches: Callable[[list[np.ndarray]], Iterable[Any]],
    forward_fn: Callable[[Any], Features],
    loss_fn: LossFn,
    checkpoint: Path | None,
    seed: int,
    on_epoch_start: Callable[[int], None] | None = None,
    progress: bool = True,
    clamp_logit_scale: Iterable[nn.Parameter] = (),
    dist: Dist = SINGLE,
    device: torch.device = CPU,
    precision: str = "fp32",
    score_fn: Callable[[], float] | None = None,
) -> dict[str, float]:
    """Train the parameters of ``module`` that require grad for ``cfg.epochs`` epochs over ``n_items``.

    Each epoch is a shuffled list of global batches of ``cfg.batch_size`` indices; this rank takes
    its slice of each, cut into ``cfg.accum_steps`` micro-batches, and ``make_batches`` turns those
    index lists into the batches ``forward_fn`` takes. ``forward_fn(batch)`` returns the features
    (see ``PhaseForward``); they are gathered from every rank and ``loss_fn(features)`` returns
    named ``*_loss`` terms, summed. Distributed, the module runs inside DDP.

    Gradient accumulation recomputes features (as open_clip's ``--accum-freq``): a no-grad pass over
    all micro-batches, then one backward per micro-batch with its own rows live and the others
    cached, so every loss sees the whole global batch as negatives and the summed gradient is the
    gradient of the global-batch loss.

    ``score_fn`` (model selection): called after every epoch (on every rank), higher is better; the
    weights of the best epoch are kept aside and put back at the end, and the result gains
    ``val_score`` and ``selected_epoch`` (1-based).

    After every epoch rank 0 writes the trained part of the module (``trainable_state``), the
    optimizer state and the best epoch's weights (no optimizer state) to ``checkpoint``
    (atomically), so a killed run resumes at the next epoch with the same data order it would have
    had (epoch RNGs derive from ``seed``). Returns the mean of each loss term over the last epoch
    (the global loss, the same on every rank).
    """
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"phase {name}: no trainable parameters")
    if cfg.accum_steps < 1:
        raise ConfigError(f"phase {name}: accum_steps must be >= 1, got {cfg.accum_steps}")
    optimizer = make_optimizer(params, cfg)
    min_size = dist.world_size * cfg.accum_steps
    steps_per_epoch = len(batch_indices(n_items, cfg.batch_size, np.random.default_rng(0), min_size))
    total_steps = cfg.epochs * steps_per_epoch
    start_epoch, last = 0, {}
    best: dict[str, Any] = {"score": -math.inf, "epoch": -1, "state": None}
    if checkpoint is not None and Path(checkpoint).is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        load_trainable_state(module, state["module"], str(checkpoint))
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, last = state["epoch"] + 1, state.get("losses", {})
        best = state.get("best") or best
        logger.info("%s: resuming after epoch %d from %s", name, state["epoch"] + 1, checkpoint)
    runner: nn.Module = PhaseForward(module, forward_fn)
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(runner, device_ids=[device] if device.type == "cuda" else None)
    n_micro = cfg.accum_steps

    def step(micro: list[Any]) -> dict[str, torch.Tensor]:
        """Forward + backward of one global batch (this rank's micro-batches); returns the loss terms."""
        if n_micro == 1:
            with autocast(device, precision):
                features = runner(micro[0])
            terms = loss_fn(gather_features(features, dist))
            _backward(terms)
            return terms
        with torch.no_grad(), autocast(device, precision):
            cached = [{k: v if v is None else v.float() for k, v in forward_fn(b).items()} for b in micro]
        for j, b in enumerate(micro):
            last_micro = j == n_micro - 1
            with nullcontext() if last_micro or not dist.enabled else runner.no_sync():
                with autocast(device, precision):
                    features = runner(b)
                features = {k: v if v is None else v.float() for k, v in features.items()}
                terms = loss_fn(gather_features(merge_micro(features, cached, j, last_micro), dist))
                _backward(terms)
        return terms

    def _backward(terms: dict[str, torch.Tensor]) -> None:
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"phase {name}: loss became {loss.item()} at epoch {epoch + 1} step {i}")
        loss.backward()

    show = progress and dist.is_main
    module.train()
    for epoch in range(start_epoch, cfg.epochs):
        rng = np.random.default_rng([seed, epoch])
        torch.manual_seed(int(rng.integers(2**31)))
        if on_epoch_start is not None:
            on_epoch_start(epoch)
            module.train()
        sums: dict[str, float] = {}
        n_steps = 0
        global_batches = batch_indices(n_items, cfg.batch_size, rng, min_size)
        batches = iter(make_batches([m for b in global_batches for m in local_micro_batches(b, dist, n_micro)]))
        bar = tqdm(range(len(global_batches)), total=steps_per_epoch, desc=f"{name} {epoch + 1}/{cfg.epochs}", disable=not show, leave=False)
        for i in bar:
            lr = get_lr(epoch * steps_per_epoch + i, total_steps, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            terms = step([next(batches) for _ in range(n_micro)])
            if cfg.grad_clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm)
            optimizer.step()
            with torch.no_grad():
                for p in clamp_logit_scale:
                    p.clamp_(0, math.log(100))
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_steps += 1
            if show:
                bar.set_postfix(loss=f"{sum(float(v.detach()) for v in terms.values()):.3f}")
        last = {k: v / max(1, n_steps) for k, v in sums.items()}
        if dist.is_main:
            logger.info("%s epoch %d/%d: %s", name, epoch + 1, cfg.epochs, " ".join(f"{k}={v:.4f}" for k, v in last.items()))
        if score_fn is not None:
            module.eval()
            score = float(score_fn())
            module.train()
            if score > best["score"]:
                best = {"score": score, "epoch": epoch, "state": trainable_state(module)}
            if dist.is_main:
                logger.info("%s epoch %d: validation score %.2f (best %.2f at epoch %d)", name, epoch + 1, score, best["score"], best["epoch"] + 1)
        if checkpoint is not None and dist.is_main:
            atomic_torch_save(
                {"module": trainable_state(module), "optimizer": optimizer.state_dict(), "epoch": epoch, "losses": last,
                 "best": best if score_fn is not None else None},
                checkpoint,
            )
    if score_fn is not None and best["state"] is not None:
        load_trainable_state(module, best["state"], f"{name}: best epoch")
        last = {**last, "val_score": best["score"], "selected_epoch": float(best["epoch"] + 1)}
    module.eval()
    return last
