"""What the frozen towers make of a captioned set, computed once and cached on disk: the assembled
teacher's training then runs on these tensors only (minutes on a CPU instead of hours)."""
from __future__ import annotations

import copy
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


class _FeatureMap(torch.nn.Module):
    def __init__(self, tower: torch.nn.Module):
        super().__init__()
        self.tower = tower

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tower.forward_features(x)


class OnnxFeatureMap:
    """A frozen image tower's ``forward_features`` run by ONNX Runtime: on a CPU it is several times
    faster than eager PyTorch for EfficientNet-Lite's depthwise convolutions (Lite2, 8 images at 260 px,
    one thread: 1.5-3 s against 10.8 s on this machine; outputs equal to 2e-5). The tower is exported
    once (from a copy: the export must not touch the model in use) to ``path``."""

    def __init__(self, tower: torch.nn.Module, size: int, path: Path):
        import onnxruntime as ort

        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.onnx")
            torch.onnx.export(_FeatureMap(copy.deepcopy(tower).eval()), (torch.zeros(2, 3, size, size),), str(tmp),
                              input_names=["images"], output_names=["features"], dynamic_axes={"images": {0: "batch"}},
                              dynamo=False)
            tmp.replace(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"images": images.numpy()})[0])


def feature_map_fn(tower: torch.nn.Module, tower_name: str, cache_dir: Path | None):
    """(B, 3, S, S) -> (B, C, h, w): ONNX Runtime where it is installed and a cache folder is given,
    else eager PyTorch."""
    if cache_dir is not None:
        try:
            return OnnxFeatureMap(tower, input_size(tower_name), cache_dir / "onnx" / f"{tower_name}-features.onnx")
        except ImportError:
            logger.info("onnxruntime not installed: %s features with eager PyTorch (slower)", tower_name)
    return tower.forward_features


@torch.no_grad()
def compute_features(
    data: CaptionedImages,
    image_tower: torch.nn.Module,
    tower_name: str,
    text: SentenceEncoder,
    grid: int,
    batch_size: int = 32,
    desc: str | None = None,
    feature_map=None,
) -> FrozenFeatures:
    loader = DataLoader(ImageDataset(data.images, image_transform(image_preprocess(tower_name))), batch_size=batch_size)
    feature_map = feature_map or image_tower.forward_features
    tokens, pooled, logits = [], [], []
    for images, _ in tqdm(loader, desc=f"{desc}: images" if desc else None, disable=desc is None, leave=False):
        fmap = feature_map(images)
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
    tower_name: str, grid: int, progress: bool = True, onnx: bool = True,
) -> FrozenFeatures:
    """Features of ``data`` from ``cache_dir/<split>-<key>.pt``, computing and saving them if absent.
    The file holds tensors only and loads with ``weights_only=True``."""
    path = cache_dir / f"{split}-{tower_name}-{cache_key(data, tower_name, grid)}.pt"
    if path.is_file():
        logger.info("frozen features of %s from %s", split, path)
        return FrozenFeatures(**torch.load(path, map_location="cpu", weights_only=True))
    feats = compute_features(data, towers[0], tower_name, towers[1], grid, desc=split if progress else None,
                             feature_map=feature_map_fn(towers[0], tower_name, cache_dir if onnx else None))
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(feats.to_dict(), tmp)
    tmp.replace(path)
    logger.info("cached frozen features of %s (%d images) in %s", split, len(data), path)
    return feats
