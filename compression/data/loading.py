"""One entry point from a DataConfig to every split the pipeline needs, synthetic or on disk."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from compression.config import ConfigError, DataConfig
from compression.data.captioned import CaptionedImages, ImageSource

logger = logging.getLogger(__name__)


@dataclass
class Datasets:
    """Every split of a run. ``pretrain`` is only needed when the teacher is trained from scratch."""

    pretrain: CaptionedImages | None
    unpaired_images: ImageSource
    unpaired_texts: list[str]
    train: CaptionedImages
    val: CaptionedImages
    test: CaptionedImages


def load_datasets(cfg: DataConfig, cache_dir: Path, need_pretrain: bool, progress: bool = True) -> Datasets:
    if cfg.source == "synthetic":
        from compression.data.synthetic import load_or_generate_synthetic

        syn = load_or_generate_synthetic(cfg.synthetic, Path(cache_dir) / "data", progress=progress)
        return Datasets(syn.pretrain, syn.unpaired_images, syn.unpaired_texts, syn.train, syn.val, syn.test)

    from compression.data.readers import read_image_folder, read_karpathy, read_pairs_tsv, read_text_lines

    checks = Path(cache_dir) / "image-checks"  # a restart does not open every image header again

    def paired(path: str, splits: list[str]) -> CaptionedImages:
        if path.endswith(".json"):
            return read_karpathy(path, cfg.image_root, splits, checks)
        if len(splits) and splits != ["all"]:
            logger.info("%s is a TSV: it has no splits, %s ignored", path, splits)
        return read_pairs_tsv(path, cfg.image_root, checks)

    if not cfg.paired.endswith(".json"):
        raise ConfigError(f"data.paired: {cfg.paired!r} must be a Karpathy dataset_*.json (it defines the splits)")
    train = paired(cfg.paired, cfg.train_splits)
    val = paired(cfg.paired, [cfg.val_split])
    test = paired(cfg.paired, [cfg.test_split])
    unpaired_images: ImageSource = read_image_folder(cfg.unpaired_images, cfg.max_unpaired, checks) if cfg.unpaired_images else train.images
    unpaired_texts = read_text_lines(cfg.unpaired_texts, cfg.max_unpaired) if cfg.unpaired_texts else train.flat_captions()[0]
    pretrain = paired(cfg.pretrain_pairs, ["all"]) if need_pretrain else None
    return Datasets(pretrain, unpaired_images, unpaired_texts, train, val, test)
