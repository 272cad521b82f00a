"""A procedurally generated image-caption retrieval benchmark, deterministic from a seed.

It stands in for COCO/Flickr on a machine without network. A scene is a background (a colour
and a pattern) with one to three coloured shapes placed on a 3x3 grid; it is rendered with PIL at
4x supersampling and box-downsampled to ``image_size``. Captions come in two styles:

* full captions (``describe_scene``): several paraphrases per image from varied templates and
  synonyms; every object is named by colour and shape, while size, position, a relation between
  objects and the background are mentioned only in some of them;
* alt text (``alt_text``): one terse web-style caption naming a random subset of the objects,
  used to pre-train the teacher so that fine-tuning on full captions has something to add.

Image ``i`` of a split is a pure function of ``(seed, split, i)``: it is drawn from
``np.random.default_rng([seed, split_id, i])``, so the first k images of a split of n equal a
split of k, and no two splits share a stream of scenes.
"""
from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from compression.config import SyntheticDataConfig, config_digest
from compression.data.captioned import ArrayImages, CaptionedImages
from compression.data.synthetic_captions import alt_text, describe_scene
from compression.data.synthetic_render import render_scene
from compression.data.synthetic_scenes import sample_scene
from formats.atomic import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)


GENERATOR_VERSION = 1  # bump when scenes, rendering or captions change: invalidates caches

# split ids feed the per-image seed; never renumber them
SPLIT_IDS = {"pretrain": 0, "unpaired_images": 1, "unpaired_texts": 2, "train": 3, "val": 4, "test": 5}


# --------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------


@dataclass
class SyntheticData:
    pretrain: CaptionedImages  # n_pretrain images, one alt-text caption each
    unpaired_images: ArrayImages  # n_unpaired_images images; their captions are never generated
    unpaired_texts: list[str]  # n_unpaired_texts full-style captions of scenes never rendered
    train: CaptionedImages  # n_train images x captions_per_image captions
    val: CaptionedImages
    test: CaptionedImages


_CAPTIONED_SPLITS = ("pretrain", "train", "val", "test")


def _split_rngs(seed: int, split: str, n: int) -> Iterator[tuple[int, np.random.Generator]]:
    """Image index and its own generator, seeded by (seed, split id, index)."""
    sid = SPLIT_IDS[split]
    for i in range(n):
        yield i, np.random.default_rng([seed, sid, i])


def _generate_images(cfg: SyntheticDataConfig, split: str, n: int, captions: str | None,
                     progress: bool) -> tuple[np.ndarray, list[list[str]]]:
    """Render ``n`` scenes of ``split``: (n, S, S, 3) uint8 and per image its captions ([] if none).

    ``captions``: None, "alt" (one alt text) or "full" (captions_per_image paraphrases).
    """
    s = cfg.image_size
    images = np.empty((n, s, s, 3), dtype=np.uint8)
    caps: list[list[str]] = []
    for i, rng in tqdm(_split_rngs(cfg.seed, split, n), total=n, desc=f"synthetic {split}",
                       disable=not progress, leave=False):
        scene = sample_scene(rng)
        images[i] = render_scene(scene, s, rng)
        if captions == "alt":
            caps.append([alt_text(scene, rng)])
        elif captions == "full":
            caps.append(describe_scene(scene, rng, cfg.captions_per_image))
        else:
            caps.append([])
    return images, caps


def synthetic_unpaired_images(n: int, size: int, seed: int = 0, progress: bool = False) -> ArrayImages:
    """The first ``n`` scenes of the benchmark's unpaired-image stream rendered at ``size`` px: unpaired
    images for another pipeline's stage 1 (the clip art run's)."""
    images, _ = _generate_images(SyntheticDataConfig(seed=seed, image_size=size), "unpaired_images", n, None, progress)
    return ArrayImages(images)


def _names(split: str, n: int) -> list[str]:
    return [f"{split}-{i:06d}" for i in range(n)]


def generate_synthetic(cfg: SyntheticDataConfig, progress: bool = True) -> SyntheticData:
    """Generate every split of the benchmark from ``cfg`` (a pure function of the config)."""
    if cfg.image_size < 8 or cfg.captions_per_image < 1:
        raise ValueError(f"image_size must be >= 8 and captions_per_image >= 1, got {cfg}")
    out: dict[str, CaptionedImages] = {}
    for split, n, style in (("pretrain", cfg.n_pretrain, "alt"), ("train", cfg.n_train, "full"),
                            ("val", cfg.n_val, "full"), ("test", cfg.n_test, "full")):
        images, caps = _generate_images(cfg, split, n, style, progress)
        out[split] = CaptionedImages(ArrayImages(images), caps, _names(split, n))
    unpaired, _ = _generate_images(cfg, "unpaired_images", cfg.n_unpaired_images, None, progress)
    texts = []
    for _i, rng in tqdm(_split_rngs(cfg.seed, "unpaired_texts", cfg.n_unpaired_texts),
                        total=cfg.n_unpaired_texts, desc="synthetic unpaired_texts",
                        disable=not progress, leave=False):
        texts.append(describe_scene(sample_scene(rng), rng, 1)[0])
    return SyntheticData(pretrain=out["pretrain"], unpaired_images=ArrayImages(unpaired),
                         unpaired_texts=texts,
                         train=out["train"], val=out["val"], test=out["test"])


# --------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------


def cache_path(cfg: SyntheticDataConfig, cache_dir: Path) -> Path:
    """The folder holding the cache of ``cfg``: ``cache_dir / f"synthetic-{config_digest(cfg)}"``."""
    return Path(cache_dir) / f"synthetic-{config_digest(cfg)}"


def _save(data: SyntheticData, cfg: SyntheticDataConfig, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {split: getattr(data, split).images.array for split in _CAPTIONED_SPLITS}
    arrays["unpaired_images"] = data.unpaired_images.array
    meta = {
        "version": GENERATOR_VERSION,
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "splits": {split: {"captions": getattr(data, split).captions, "names": getattr(data, split).names}
                   for split in _CAPTIONED_SPLITS},
        "unpaired_texts": data.unpaired_texts,
    }
    with atomic_path(folder / "images.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    # the json goes last: a cache is complete only once both files are in place
    atomic_write_text(folder / "captions.json", json.dumps(meta))


def _load(cfg: SyntheticDataConfig, folder: Path) -> SyntheticData:
    """Read a cache; raises ValueError/OSError/KeyError on anything missing, stale or inconsistent."""
    meta = json.loads((folder / "captions.json").read_text())
    if meta.get("version") != GENERATOR_VERSION:
        raise ValueError(f"generator version {meta.get('version')} != {GENERATOR_VERSION}")
    s = cfg.image_size
    expected = {"pretrain": cfg.n_pretrain, "train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test,
                "unpaired_images": cfg.n_unpaired_images}
    with np.load(folder / "images.npz", allow_pickle=False) as npz:
        arrays = {k: np.array(npz[k]) for k in expected}
    for k, n in expected.items():
        if arrays[k].shape != (n, s, s, 3) or arrays[k].dtype != np.uint8:
            raise ValueError(f"{k}: cached array {arrays[k].dtype} {arrays[k].shape}, "
                             f"expected ({n}, {s}, {s}, 3)")
    splits = {}
    for split in _CAPTIONED_SPLITS:
        caps, names = meta["splits"][split]["captions"], meta["splits"][split]["names"]
        per = 1 if split == "pretrain" else cfg.captions_per_image
        if len(caps) != expected[split] or any(len(c) != per for c in caps):
            raise ValueError(f"{split}: cached captions do not match the config")
        splits[split] = CaptionedImages(ArrayImages(arrays[split]), caps, names)
    texts = meta["unpaired_texts"]
    if len(texts) != cfg.n_unpaired_texts:
        raise ValueError("unpaired_texts: cached count does not match the config")
    return SyntheticData(pretrain=splits["pretrain"], unpaired_images=ArrayImages(arrays["unpaired_images"]),
                         unpaired_texts=texts, train=splits["train"], val=splits["val"], test=splits["test"])


def load_or_generate_synthetic(cfg: SyntheticDataConfig, cache_dir: Path,
                               progress: bool = True) -> SyntheticData:
    """Load the benchmark of ``cfg`` from ``cache_dir``, generating and caching it when absent.

    The cache is ``cache_dir/synthetic-<config digest>/{images.npz,captions.json}``; both files are
    written under temporary names and moved into place, so an interrupt never leaves a half-written
    cache. A corrupt, partial or stale cache is regenerated with a logged warning.
    """
    folder = cache_path(cfg, cache_dir)
    if (folder / "captions.json").exists() or (folder / "images.npz").exists():
        try:
            data = _load(cfg, folder)
            logger.info("loaded synthetic data from %s", folder)
            return data
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
            logger.warning("synthetic data cache %s is unusable (%s: %s); regenerating", folder,
                           type(e).__name__, e)
    logger.info("generating synthetic data into %s", folder)
    data = generate_synthetic(cfg, progress=progress)
    _save(data, cfg, folder)
    return data


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[a-z0-9]+")


def write_split_as_folder(split: CaptionedImages, out_dir: Path, split_name: str = "test") -> Path:
    """Write ``split`` as PNGs in ``out_dir/images`` and a Karpathy-format ``out_dir/dataset_synthetic.json``.

    Each image is saved as ``<name>.png`` (its ``split.names`` entry, with any path separators
    replaced); returns the path of the json.
    """
    out_dir = Path(out_dir)
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    sentid = 0
    for i in range(len(split)):
        filename = Path(str(split.names[i])).name.replace(os.sep, "_") + ".png"
        split.images.load(i).save(img_dir / filename, format="PNG")
        sentences, sentids = [], []
        for raw in split.captions[i]:
            tokens = _TOKEN_RE.findall(raw.lower())
            sentences.append({"raw": raw, "tokens": tokens, "imgid": i, "sentid": sentid})
            sentids.append(sentid)
            sentid += 1
        entries.append({"filename": filename, "filepath": "images", "split": split_name, "imgid": i,
                        "sentids": sentids, "sentences": sentences})
    json_path = out_dir / "dataset_synthetic.json"
    atomic_write_text(json_path, json.dumps({"dataset": "synthetic", "images": entries}))
    return json_path
