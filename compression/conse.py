"""ConSE (Norouzi et al., ICLR 2014, "Zero-shot learning by convex combination of semantic
embeddings"): with no image-text training at all, an image's embedding is the convex combination
of the text embeddings of its top-T ImageNet classes, weighted by the classifier's probabilities.
The baseline that the assembled teacher must beat."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.data import ImageNetInfo

from compression.models.pretrained_towers import SentenceEncoder

logger = logging.getLogger(__name__)

DEFAULT_TOP_T = 10  # the paper's T ranges over 1..1000; 10 is its usual choice


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class descriptions in index order ("tabby, tabby cat", ...)."""
    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(1000)]


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
    softmax probabilities renormalised over those T (Norouzi et al., eq. 1).
    """
    probs = logits.float().softmax(-1)
    p, idx = probs.topk(top_t, dim=-1)  # (N, T)
    p = p / p.sum(-1, keepdim=True)
    return F.normalize(torch.einsum("nt,ntd->nd", p, class_emb[idx]), dim=-1)


@torch.no_grad()
def class_name_token_states(text: SentenceEncoder) -> tuple[torch.Tensor, torch.Tensor]:
    """(1000, L, 384) last-layer token states of the class names and their (1000, L) bool mask."""
    batch = text.tokenize(imagenet_class_names(), max_length=32)
    return text.hidden_states(batch), batch["attention_mask"].bool()
