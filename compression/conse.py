"""ConSE (Norouzi et al., ICLR 2014, "Zero-shot learning by convex combination of semantic
embeddings"): with no image-text training at all, an image's embedding is the convex combination
of the text embeddings of its top-T ImageNet classes, weighted by the classifier's probabilities.
The baseline that the assembled teacher must beat."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from timm.data import ImageNetInfo

from compression.evaluate import recall_at_k
from compression.models.assembled import conse_mix, fuse
from compression.models.pretrained_towers import SentenceEncoder

logger = logging.getLogger(__name__)

DEFAULT_TOP_T = 10  # the paper's T ranges over 1..1000; 10 is its usual choice
CHANNEL_WEIGHTS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # the joint part's share tried for the ConSE channel


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class descriptions in index order ("tabby, tabby cat", ...)."""
    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(1000)]


def classifier_class_names(tower: torch.nn.Module) -> list[str]:
    """The names of an ImageNet-1k image tower's classes, in its logits' order; a named error for a tower
    whose classifier is not ImageNet-1k's (its logits could not be mixed with these names)."""
    n = getattr(tower, "num_classes", None)
    if n != 1000:
        raise ValueError(f"{type(tower).__name__}: {n} classes, the ConSE channel needs an ImageNet-1k classifier (1000)")
    return imagenet_class_names()


@torch.no_grad()
def class_name_embeddings(text: SentenceEncoder, batch_size: int = 128) -> torch.Tensor:
    """(1000, 384) L2-normalised sentence embeddings of the class names."""
    names = imagenet_class_names()
    return torch.cat([text.encode(names[s : s + batch_size]) for s in range(0, len(names), batch_size)])


def cached_class_name_embeddings(cache_dir: Path, text: SentenceEncoder) -> torch.Tensor:
    """class_name_embeddings, kept in ``cache_dir`` (the text tower is pinned, so is its output)."""
    path = cache_dir / "imagenet-class-names-all-MiniLM-L6-v2.pt"
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    emb = class_name_embeddings(text)
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save(emb, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    logger.info("cached ImageNet class-name embeddings in %s", path)
    return emb


def conse_embeddings(logits: torch.Tensor, class_emb: torch.Tensor, top_t: int = DEFAULT_TOP_T) -> torch.Tensor:
    """(N, 1000) ImageNet logits, (1000, D) class embeddings -> (N, D) L2-normalised image embeddings.

    Each image's embedding is sum_t p_t * class_emb[c_t] over its top-T classes c_t, with p_t the
    softmax probabilities renormalised over those T (Norouzi et al., eq. 1); the same function the
    models' ConSE channel runs (compression.models.assembled.conse_mix).
    """
    return conse_mix(logits, class_emb, top_t)


@torch.no_grad()
def class_name_token_states(text: SentenceEncoder) -> tuple[torch.Tensor, torch.Tensor]:
    """(1000, L, 384) last-layer token states of the class names and their (1000, L) bool mask."""
    batch = text.tokenize(imagenet_class_names(), max_length=32)
    return text.hidden_states(batch), batch["attention_mask"].bool()


def choose_channel_weight(joint_image: torch.Tensor, joint_text: torch.Tensor, conse_image: torch.Tensor,
                          conse_text: torch.Tensor, owner: torch.Tensor,
                          weights: tuple[float, ...] = CHANNEL_WEIGHTS) -> tuple[float, dict[str, float]]:
    """The ConseChannel weight with the best RSUM on a validation set (ties: the larger weight, i.e. less
    ConSE), and every weight's RSUM. 1.0 means the joint space alone."""
    rsum = {}
    for w in weights:
        img, txt = (joint_image, joint_text) if w == 1.0 else (fuse(joint_image, conse_image, w), fuse(joint_text, conse_text, w))
        rsum[f"{w:g}"] = recall_at_k(img, txt, owner)["rsum"]
    best = max(weights, key=lambda w: (round(rsum[f"{w:g}"], 6), w))
    return best, rsum
