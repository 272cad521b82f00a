"""Real images and captions of a run's own benchmark: int8 calibration (train) and parity (test)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compression.checkpoint import CheckpointError, read_json
from compression.config import ConfigError, config_from_dict, default_cache_dir
from compression.data.captioned import CaptionedImages
from compression.data.loading import Datasets, load_datasets
from compression.data.transforms import image_transform
from formats.preprocess import Preprocess
from formats.text import cut_row

logger = logging.getLogger(__name__)


def load_run_datasets(run_dir: Path, cache_dir: Path | None = None) -> Datasets:
    """The splits of the benchmark a run was trained and evaluated on, from its config.json.

    Synthetic data comes from ``cache_dir`` (regenerated there, deterministically, if absent).
    """
    path = Path(run_dir) / "config.json"
    try:
        cfg = config_from_dict(read_json(path, "run config"))
    except (ConfigError, KeyError, TypeError) as e:
        raise CheckpointError(f"run config {path} cannot be read as a RunConfig: {e}") from e
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    logger.info("loading the benchmark of %s (cache %s)", run_dir, cache_dir)
    return load_datasets(cfg.data, cache_dir, need_pretrain=False, progress=False)


def preprocess_from_meta(meta: dict[str, Any]) -> Preprocess:
    """The checkpoint's image preprocessing (student.json["preprocess"])."""
    return Preprocess.from_dict(meta.get("preprocess"), "student.json: preprocess")


def spread_indices(total: int, n: int | None) -> list[int]:
    """``n`` indices evenly spread over ``range(total)`` (all of them when n is None or >= total)."""
    if n is None or n >= total:
        return list(range(total))
    return np.linspace(0, total - 1, n).round().astype(int).tolist()


def image_tensors(split: CaptionedImages, pre: Preprocess, indices: Sequence[int]) -> torch.Tensor:
    """(N, 3, S, S) float32: the images at ``indices``, preprocessed as in training."""
    transform = image_transform(pre)
    return torch.stack([transform(split.images.load(i)) for i in indices])


def cut_after_eot(tokens: torch.Tensor) -> list[torch.Tensor]:
    """(C, context) padded ids -> C tensors (1, L_i) cut right after each EOT (the highest id)."""
    return [cut_row(tokens, i).clone() for i in range(tokens.shape[0])]


def token_sequences(
    tokenizer: Callable[[list[str]], torch.Tensor], texts: Sequence[str]
) -> list[torch.Tensor]:
    """Each text as (1, L) int64 ids cut right after its EOT token (L = actual length)."""
    return cut_after_eot(tokenizer(list(texts)))


def captions_of(split: CaptionedImages, image_indices: Sequence[int]) -> tuple[list[str], np.ndarray]:
    """All captions of the chosen images and, for each, the position of its image in ``image_indices``."""
    texts: list[str] = []
    owner: list[int] = []
    for pos, i in enumerate(image_indices):
        texts += split.captions[i]
        owner += [pos] * len(split.captions[i])
    return texts, np.asarray(owner, dtype=np.int64)


def calibration_samples(
    run_dir: Path, meta: dict[str, Any], tokenizer: Callable, n: int, cache_dir: Path | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``n`` real training images (N, 3, S, S) and ``n`` real training captions [(1, L_i)] for int8 calibration."""
    train = load_run_datasets(run_dir, cache_dir).train
    images = image_tensors(train, preprocess_from_meta(meta), spread_indices(len(train), n))
    texts, _ = train.flat_captions()
    texts = [texts[i] for i in spread_indices(len(texts), n)]
    return images, token_sequences(tokenizer, texts)
