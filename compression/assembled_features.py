"""What the frozen towers make of a captioned set, computed once and cached on disk: the assembled
teacher's training then runs on these tensors only (minutes on a CPU instead of hours)."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from compression.data.captioned import CaptionedImages
from compression.data.datasets import ImageDataset
from compression.data.transforms import image_transform
from compression.models.assembled import image_grid_tokens
from compression.models.pretrained_towers import LITE_MEAN, LITE_STD, SentenceEncoder, input_size, mean_pool
from compression.models.teacher import Preprocess

logger = logging.getLogger(__name__)

TEXT_MAX_LENGTH = 64  # WordPiece tokens per caption (the clip art captions stay well under it)


@dataclass
class FrozenFeatures:
    """Tower outputs for N images and C captions (C >= N; ``text_owner[c]`` = image of caption c)."""

    image_tokens: torch.Tensor  # (N, G*G, 1280) float16: feature map pooled to a grid
    image_pooled: torch.Tensor  # (N, 1280) float32: the tower's global-average features (distillation target)
    image_logits: torch.Tensor  # (N, 1000) float32: ImageNet logits (ConSE)
    text_states: torch.Tensor  # (C, L, 384) float16: last-layer token states, zero-padded
    text_mask: torch.Tensor  # (C, L) bool: real tokens
    text_sentence: torch.Tensor  # (C, 384) float32: mean-pooled, L2-normalised sentence embeddings
    text_owner: torch.Tensor  # (C,) int64

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def image_preprocess(tower_name: str) -> Preprocess:
    """The project's eval transform (shortest-side resize, center crop) at the tower's resolution."""
    return Preprocess(input_size(tower_name), LITE_MEAN, LITE_STD)


@torch.no_grad()
def compute_features(
    data: CaptionedImages,
    image_tower: torch.nn.Module,
    tower_name: str,
    text: SentenceEncoder,
    grid: int,
    batch_size: int = 32,
    desc: str | None = None,
) -> FrozenFeatures:
    loader = DataLoader(ImageDataset(data.images, image_transform(image_preprocess(tower_name))), batch_size=batch_size)
    tokens, pooled, logits = [], [], []
    for images, _ in tqdm(loader, desc=f"{desc}: images" if desc else None, disable=desc is None, leave=False):
        fmap = image_tower.forward_features(images)
        tokens.append(image_grid_tokens(fmap, grid).half())
        feats = image_tower.forward_head(fmap, pre_logits=True)
        pooled.append(feats)
        logits.append(image_tower.get_classifier()(feats))
    texts, owner = data.flat_captions()
    states, masks, sentences = [], [], []
    for s in tqdm(range(0, len(texts), 128), desc=f"{desc}: captions" if desc else None, disable=desc is None, leave=False):
        batch = text.tokenize(texts[s : s + 128], max_length=TEXT_MAX_LENGTH)
        h = text.hidden_states(batch)
        pad = TEXT_MAX_LENGTH - h.shape[1]
        states.append(torch.nn.functional.pad(h, (0, 0, 0, pad)).half())
        masks.append(torch.nn.functional.pad(batch["attention_mask"], (0, pad)).bool())
        sentences.append(torch.nn.functional.normalize(mean_pool(h, batch["attention_mask"]), dim=-1))
    return FrozenFeatures(
        torch.cat(tokens), torch.cat(pooled), torch.cat(logits), torch.cat(states), torch.cat(masks),
        torch.cat(sentences), torch.as_tensor(owner),
    )


def cache_key(data: CaptionedImages, tower_name: str, grid: int) -> str:
    """Changes when the images, their captions, the tower or the grid change."""
    blob = json.dumps([tower_name, grid, TEXT_MAX_LENGTH, data.names, data.captions], ensure_ascii=False)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cached_features(
    cache_dir: Path, split: str, data: CaptionedImages, towers: tuple[torch.nn.Module, SentenceEncoder],
    tower_name: str, grid: int, progress: bool = True,
) -> FrozenFeatures:
    """Features of ``data`` from ``cache_dir/<split>-<key>.pt``, computing and saving them if absent.
    The file holds tensors only and loads with ``weights_only=True``."""
    path = cache_dir / f"{split}-{tower_name}-{cache_key(data, tower_name, grid)}.pt"
    if path.is_file():
        logger.info("frozen features of %s from %s", split, path)
        return FrozenFeatures(**torch.load(path, map_location="cpu", weights_only=True))
    feats = compute_features(data, towers[0], tower_name, towers[1], grid, desc=split if progress else None)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(feats.to_dict(), tmp)
    tmp.replace(path)
    logger.info("cached frozen features of %s (%d images) in %s", split, len(data), path)
    return feats
