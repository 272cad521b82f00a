"""The phases of the recipe: teacher pre-training / fine-tuning, stage 1 and stage 2 distillation.

Each phase trains one tower (or both, for the non-sequential ablation) while the frozen side's
embeddings are computed once up front: the frozen teacher never runs inside the training loop,
and the hard negatives of stage 2 are lookups into those fixed embedding tables.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from compression.config import OptimConfig, Stage2Config
from compression.data.captioned import CaptionedImages, ImageSource
from compression.data.datasets import ImageDataset, PairIndex
from compression.distributed import SINGLE, Dist, broadcast_array
from compression.embedding import encode_images, encode_tokens, tokenize_all
from compression.hard_negatives import mine_hard_negatives
from compression.losses import DistillClipLoss, contrastive_distillation_loss, info_nce_loss
from compression.models.teacher import text_encoder
from compression.trainer import Features, train_phase
from formats.text import cut_batch

logger = logging.getLogger(__name__)


@dataclass
class PhaseContext:
    """What every phase needs besides its data: preprocessing, tokenizer, device, where to checkpoint."""

    transform: Callable
    tokenizer: Callable
    device: torch.device
    seed: int
    checkpoint: Path | None
    num_workers: int = 0
    progress: bool = True
    dist: Dist = SINGLE
    precision: str = "fp32"
    student_transform: Callable | None = None  # the student backbone's own preprocessing; None: the teacher's
    tables_built: int = 0  # names the files distributed tables are gathered through (the same on every rank)

    def student_images(self) -> Callable:
        """The student image tower's transform (its backbone's pretrained preprocessing, or the teacher's)."""
        return self.student_transform or self.transform

    def bar(self, desc: str) -> str | None:
        """A progress-bar label, or None (no bar) when progress is off or on ranks other than 0."""
        return desc if self.progress and self.dist.is_main else None

    def images_table(self, encode: Callable, source: ImageSource, desc: str, transform: Callable | None = None) -> torch.Tensor:
        """(N, D) normalised embeddings of every image (``transform``: default the teacher's), encoded in shards across ranks."""
        return encode_images(encode, source, transform or self.transform, device=self.device, num_workers=self.num_workers,
                             desc=self.bar(desc), dist=self.dist, table_file=self.table_file())

    def texts_table(self, encode: Callable, tokens: torch.Tensor, desc: str) -> torch.Tensor:
        """(C, D) normalised embeddings of every token sequence, encoded in shards across ranks."""
        return encode_tokens(encode, tokens, device=self.device, desc=self.bar(desc), dist=self.dist, table_file=self.table_file())

    def table_file(self) -> Path | None:
        """Where the next distributed table is gathered: beside the phase's checkpoint, seen by every rank."""
        if not self.dist.enabled or self.checkpoint is None:
            return None
        self.tables_built += 1
        return Path(self.checkpoint).with_name(f"{Path(self.checkpoint).name}.table{self.tables_built}.npy")

    def train(self, name: str, module: nn.Module, cfg: OptimConfig, n_items: int, make_batches: Callable,
              forward_fn: Callable[[object], Features], loss_fn: Callable, **kwargs) -> dict[str, float]:
        """``train_phase`` with this context's checkpoint, seed, progress, ranks, device and precision."""
        return train_phase(
            name, module, cfg, n_items, make_batches, forward_fn, loss_fn, self.checkpoint, self.seed,
            progress=self.progress, dist=self.dist, device=self.device, precision=self.precision, **kwargs,
        )


def image_batches(source: ImageSource, ctx: PhaseContext, index_batches: list[np.ndarray], transform: Callable) -> Iterator:
    """Decode + preprocess each index batch (workers optional); yields (images (B,3,S,S), idx (B,))."""
    loader = DataLoader(
        ImageDataset(source, transform),
        batch_sampler=[b.tolist() for b in index_batches],
        num_workers=ctx.num_workers,
    )
    for images, idx in loader:
        yield images.to(ctx.device), idx


def trim_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """Cut a (B, L) batch after its longest sequence's EOT (the highest id): same embeddings, less work."""
    return cut_batch(tokens)


def _norm(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


class PairSampler:
    """The items of a paired phase's epoch: item j is (image ``images[j]``, caption ``captions[j]``).

    ``over="images"``: an epoch is every image once, each with one of its captions, drawn anew every
    epoch. ``over="captions"``: every (image, caption) pair once, as the paper's epochs must be (with
    COCO's 5 captions an epoch is 5x the steps); a batch may then hold two captions of one image,
    which InfoNCE counts as negatives of each other (rare at the paper's batch sizes).
    """

    def __init__(self, data: CaptionedImages, seed: int, over: str = "images"):
        if over not in ("images", "captions"):
            raise ValueError(f"an epoch is over 'images' or 'captions', got {over!r}")
        self.pairs = PairIndex(data)
        self.seed, self.over = seed, over
        if over == "captions":
            self.images, self.captions = self.pairs.owner, np.arange(len(self.pairs.owner), dtype=np.int64)
        else:
            self.images = np.arange(len(self.pairs.n_captions), dtype=np.int64)
            self.captions = self.pairs.sample_caption_per_image(np.random.default_rng([seed, 0]))

    def __len__(self) -> int:
        return len(self.images)

    def new_epoch(self, epoch: int) -> None:
        if self.over == "images":
            self.captions = self.pairs.sample_caption_per_image(np.random.default_rng([self.seed, 1 + epoch]))

    def lookup(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(image ids, caption ids) of a batch of item ids."""
        j = items.numpy()
        return torch.from_numpy(self.images[j]), torch.from_numpy(self.captions[j])

    def batches(self, source: ImageSource, ctx: PhaseContext, index_batches: list[np.ndarray], transform: Callable | None) -> Iterator:
        """(images or None when ``transform`` is None (the image side is a frozen table), item ids (B,))."""
        if transform is None:
            for idx in index_batches:
                yield None, torch.from_numpy(idx)
            return
        loaded = image_batches(source, ctx, [self.images[b] for b in index_batches], transform)
        for (images, _), idx in zip(loaded, index_batches):
            yield images, torch.from_numpy(idx)


def train_clip(
    name: str,
    model: nn.Module,
    data: CaptionedImages,
    towers: str,
    cfg: OptimConfig,
    ctx: PhaseContext,
    epoch_over: str = "images",
    direction_weight: float = 0.5,
) -> dict[str, float]:
    """InfoNCE training of an open_clip CLIP: ``towers`` = "both" (pre-training, joint fine-tuning),
    "image" (text tower frozen) or "text" (image tower frozen; the sequential fine-tuning).
    ``epoch_over`` and ``direction_weight``: see PairSampler and info_nce_loss."""
    from compression.models.teacher import set_trainable_towers

    texts, _ = data.flat_captions()
    tokens = tokenize_all(ctx.tokenizer, texts)
    sampler = PairSampler(data, ctx.seed, epoch_over)
    model.eval()
    frozen_text = frozen_image = None
    if towers == "image":
        frozen_text = ctx.texts_table(text_encoder(model), tokens, f"{name}: text side")
    elif towers == "text":
        frozen_image = ctx.images_table(model.encode_image, data.images, f"{name}: image side")
    elif towers != "both":
        raise ValueError(f"towers must be 'image', 'text' or 'both', got {towers!r}")
    set_trainable_towers(model, image=towers in ("image", "both"), text=towers in ("text", "both"))

    def make_batches(index_batches):
        yield from sampler.batches(data.images, ctx, index_batches, None if towers == "text" else ctx.transform)

    def forward_fn(batch) -> Features:
        images, items = batch
        img_ids, cap = sampler.lookup(items)
        if towers == "text":
            img = frozen_image[img_ids].to(ctx.device)
        else:
            img = _norm(model.encode_image(images))
        if towers == "image":
            txt = frozen_text[cap].to(ctx.device)
        else:
            txt = _norm(text_encoder(model)(trim_tokens(tokens[cap]).to(ctx.device)))
        return {"image": img, "text": txt, "scale": model.logit_scale.exp()}

    def loss_fn(f: Features):
        return {"infonce_loss": info_nce_loss(f["image"], f["text"], f["scale"], direction_weight=direction_weight)}

    result = ctx.train(
        name, model, cfg, len(sampler), make_batches, forward_fn, loss_fn,
        on_epoch_start=sampler.new_epoch, clamp_logit_scale=[model.logit_scale],
    )
    model.requires_grad_(False)
    return result


def stage1_image(
    student: nn.Module, teacher: nn.Module, images: ImageSource, cfg: OptimConfig, temperature: float, ctx: PhaseContext
) -> dict[str, float]:
    """Stage 1, images alone: the student image embedding of x must pick the teacher's embedding of x."""
    target = ctx.images_table(teacher.encode_image, images, "stage1 image: teacher")
    student.requires_grad_(False)
    student.visual.requires_grad_(True)

    def forward_fn(batch) -> Features:
        x, idx = batch
        return {"student": _norm(student.visual(x)), "teacher": target[idx].to(ctx.device)}

    def loss_fn(f: Features):
        return {"distill_loss": contrastive_distillation_loss(f["student"], f["teacher"], temperature)}

    out = ctx.train("stage1-image", student.visual, cfg, len(images), lambda b: image_batches(images, ctx, b, ctx.student_images()),
                    forward_fn, loss_fn)
    student.requires_grad_(False)
    return out


def stage1_text(
    student: nn.Module, teacher: nn.Module, texts: list[str], cfg: OptimConfig, temperature: float, ctx: PhaseContext
) -> dict[str, float]:
    """Stage 1, texts alone: the student text embedding of t must pick the teacher's embedding of t."""
    tokens = tokenize_all(ctx.tokenizer, texts)
    target = ctx.texts_table(text_encoder(teacher), tokens, "stage1 text: teacher")
    student.requires_grad_(False)
    student.text.requires_grad_(True)

    def forward_fn(idx) -> Features:
        idx = torch.from_numpy(idx)
        return {"student": _norm(student.text(trim_tokens(tokens[idx]).to(ctx.device))), "teacher": target[idx].to(ctx.device)}

    def loss_fn(f: Features):
        return {"distill_loss": contrastive_distillation_loss(f["student"], f["teacher"], temperature)}

    out = ctx.train("stage1-text", student.text, cfg, len(texts), lambda b: iter(b), forward_fn, loss_fn)
    student.requires_grad_(False)
    return out


def stage2_student(
    name: str,
    student: nn.Module,
    teacher: nn.Module,
    data: CaptionedImages,
    towers: str,
    cfg: OptimConfig,
    s2: Stage2Config,
    distill_temperature: float,
    ctx: PhaseContext,
    val: CaptionedImages | None = None,
) -> dict[str, float]:
    """Stage 2 for one student tower (``towers`` = "image" or "text") or both jointly ("both").

    "image": student images against the frozen (fine-tuned) teacher text tower; hard negative texts
    per image. "text": student texts against the frozen, already trained student image tower; hard
    negative images per caption. "both": the non-sequential ablation; hard negatives come from
    embedding banks refreshed with the encoders. Loss: DistillClipLoss (InfoNCE + KD + distill).

    Model selection (``s2.select_best`` and a ``val`` split): after every epoch, the validation RSUM
    of the pair this phase trains (student images vs teacher texts; student images vs student texts)
    is measured and the best epoch's weights are the phase's result.
    """
    texts, owner = data.flat_captions()
    tokens = tokenize_all(ctx.tokenizer, texts)
    sampler = PairSampler(data, ctx.seed, s2.epoch_over)
    s_transform = ctx.student_images()
    teacher.eval()
    student.eval()
    t_img = ctx.images_table(teacher.encode_image, data.images, f"{name}: teacher images")
    t_txt = ctx.texts_table(text_encoder(teacher), tokens, f"{name}: teacher texts")
    t_scale = teacher.logit_scale.exp().detach().to(ctx.device)
    image_ids = np.arange(len(data))
    max_caps = int(max(len(c) for c in data.captions))
    loss = DistillClipLoss(s2.infonce_weight, s2.kd_weight, s2.distill_weight, s2.kd_temperature, distill_temperature,
                           s2.infonce_direction_weight)
    state: dict[str, torch.Tensor | np.ndarray | None] = {"s_img": None, "s_txt": None, "hard_txt": None, "hard_img": None}

    if towers == "text":  # the image tower is done and frozen: its embeddings are a fixed table
        state["s_img"] = ctx.images_table(student.encode_image, data.images, f"{name}: student images", s_transform)

    def on_epoch_start(epoch: int) -> None:
        sampler.new_epoch(epoch)
        if s2.hard_negatives == 0 or epoch % s2.hard_negative_refresh:
            return
        rng = np.random.default_rng([ctx.seed, 10_000 + epoch])
        student.eval()
        # queries encoded in shards across ranks; one FAISS index and search on rank 0, answer broadcast
        main = ctx.dist.is_main
        if towers in ("image", "both"):  # image queries against the text corpus
            s_img = ctx.images_table(student.encode_image, data.images, f"{name}: mining", s_transform)
            corpus = t_txt if towers == "image" else ctx.texts_table(student.encode_text, tokens, f"{name}: mining")
            hard = mine_hard_negatives(s_img, corpus, image_ids, owner, s2.hard_negatives, s2.hard_negative_pool, rng, max_caps) if main else None
            state["hard_txt"] = broadcast_array(hard, ctx.dist)
            if towers == "both":
                state["s_txt"], state["s_img"] = corpus, s_img
        if towers in ("text", "both"):  # caption queries against the image corpus
            s_txt = ctx.texts_table(student.encode_text, tokens, f"{name}: mining")
            hard = mine_hard_negatives(s_txt, state["s_img"], owner, image_ids, s2.hard_negatives, s2.hard_negative_pool, rng, 1) if main else None
            state["hard_img"] = broadcast_array(hard, ctx.dist)

    student.requires_grad_(False)
    if towers in ("image", "both"):
        student.visual.requires_grad_(True)
    if towers in ("text", "both"):
        student.text.requires_grad_(True)
    student.logit_scale.requires_grad_(True)

    def make_batches(index_batches):
        yield from sampler.batches(data.images, ctx, index_batches, None if towers == "text" else s_transform)

    def forward_fn(batch) -> Features:
        images, items = batch
        img_ids, cap = sampler.lookup(items)
        img = state["s_img"][img_ids].to(ctx.device) if towers == "text" else _norm(student.encode_image(images))
        txt = t_txt[cap].to(ctx.device) if towers == "image" else _norm(student.encode_text(trim_tokens(tokens[cap]).to(ctx.device)))
        hard_texts = hard_images = None
        if state["hard_txt"] is not None:
            bank = t_txt if towers == "image" else state["s_txt"]
            hard_texts = bank[torch.from_numpy(state["hard_txt"][img_ids.numpy()])].to(ctx.device)
        if state["hard_img"] is not None:
            hard_images = state["s_img"][torch.from_numpy(state["hard_img"][cap.numpy()])].to(ctx.device)
        return {
            "image": img, "text": txt, "scale": student.logit_scale.exp(), "t_image": t_img[img_ids].to(ctx.device),
            "t_text": t_txt[cap].to(ctx.device), "hard_texts": hard_texts, "hard_images": hard_images,
        }

    def loss_fn(f: Features):
        return loss(
            f["image"], f["text"], f["scale"], f["t_image"], f["t_text"], t_scale,
            trained=towers, hard_texts=f["hard_texts"], hard_images=f["hard_images"],
        )

    score_fn = None
    if s2.select_best and val is not None:
        score_fn = validation_rsum(name, student, teacher, val, towers, ctx)
    out = ctx.train(
        name, student, cfg, len(sampler), make_batches, forward_fn, loss_fn,
        on_epoch_start=on_epoch_start, clamp_logit_scale=[student.logit_scale], score_fn=score_fn,
    )
    student.requires_grad_(False)
    return out


def validation_rsum(name: str, student: nn.Module, teacher: nn.Module, val: CaptionedImages, towers: str, ctx: PhaseContext) -> Callable[[], float]:
    """The score of a stage-2 epoch: validation RSUM of the student tower being trained against its
    partner (the frozen teacher text tower when the image tower trains alone, else the student's);
    the frozen side is encoded once."""
    from compression.evaluate import recall_at_k

    texts, owner = val.flat_captions()
    tokens = tokenize_all(ctx.tokenizer, texts)
    fixed_text = ctx.texts_table(text_encoder(teacher), tokens, f"{name}: validation texts") if towers == "image" else None
    fixed_image = ctx.images_table(student.encode_image, val.images, f"{name}: validation images", ctx.student_images()) if towers == "text" else None

    def score() -> float:
        img = fixed_image if fixed_image is not None else ctx.images_table(student.encode_image, val.images, f"{name}: validation", ctx.student_images())
        txt = fixed_text if fixed_text is not None else ctx.texts_table(text_encoder(student), tokens, f"{name}: validation")
        return recall_at_k(img, txt, owner)["rsum"]

    return score
