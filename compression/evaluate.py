"""Retrieval evaluation: recall@K in both directions with several captions per image, and RSUM."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


@torch.no_grad()
def caption_ranks(image_emb: torch.Tensor, text_emb: torch.Tensor, text_owner: torch.Tensor, chunk: int = 1024):
    """Ranks (0 = best) of the right answers, computed in chunks to bound memory.

    image_emb (N, D), text_emb (C, D): L2-normalised; text_owner (C,): the image index of each caption.
    Returns (t2i (C,), i2t (N,)): for each caption the rank of its image among all N images; for each
    image the best rank of any of its captions among all C captions. Ties count in the answer's
    favour (rank = number of candidates scoring strictly higher).
    """
    image_emb, text_emb = image_emb.float(), text_emb.float()
    text_owner = torch.as_tensor(text_owner, dtype=torch.long)
    n, c = image_emb.shape[0], text_emb.shape[0]
    t2i = torch.empty(c, dtype=torch.long)
    for s in range(0, c, chunk):
        sims = text_emb[s : s + chunk] @ image_emb.T  # (c', N)
        own = sims.gather(1, text_owner[s : s + chunk, None])
        t2i[s : s + chunk] = (sims > own).sum(1)
    i2t = torch.full((n,), c, dtype=torch.long)
    for s in range(0, n, chunk):
        sims = image_emb[s : s + chunk] @ text_emb.T  # (n', C)
        rows = torch.arange(s, min(s + chunk, n))
        mine = text_owner[None, :] == rows[:, None]  # (n', C)
        best_own = sims.masked_fill(~mine, float("-inf")).max(1, keepdim=True).values
        i2t[s : s + chunk] = (sims > best_own).sum(1)
    return t2i, i2t


def recall_at_k(
    image_emb: torch.Tensor, text_emb: torch.Tensor, text_owner: torch.Tensor | np.ndarray, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """{"t2i_R@1": ..., "i2t_R@1": ..., ..., "rsum": ...} in percent.

    Text -> image: a caption is a hit at K if its image is in the top K. Image -> text: an image is a
    hit at K if any of its captions is in the top K (the standard COCO/Flickr protocol). RSUM is the
    sum of all the recalls.
    """
    t2i, i2t = caption_ranks(image_emb, text_emb, torch.as_tensor(text_owner))
    out: dict[str, float] = {}
    for k in ks:
        out[f"t2i_R@{k}"] = 100.0 * (t2i < k).float().mean().item()
    for k in ks:
        out[f"i2t_R@{k}"] = 100.0 * (i2t < k).float().mean().item()
    out["rsum"] = sum(v for key, v in out.items() if "R@" in key)
    return out


def recall_over_folds(
    image_emb: torch.Tensor, text_emb: torch.Tensor, text_owner: torch.Tensor | np.ndarray, ks: Sequence[int], fold_size: int
) -> dict[str, float]:
    """recall_at_k averaged over consecutive folds of ``fold_size`` images and their captions.

    COCO's "1K test" is the 5K Karpathy test split in 5 folds of 1000 images, each searched on its
    own, the recalls averaged. Images past the last whole fold are left out (none for COCO's 5K).
    """
    owner = torch.as_tensor(text_owner, dtype=torch.long)
    n_folds = image_emb.shape[0] // fold_size
    if n_folds < 1:
        raise ValueError(f"{image_emb.shape[0]} images make no fold of {fold_size}")
    per_fold = []
    for f in range(n_folds):
        lo, hi = f * fold_size, (f + 1) * fold_size
        mine = (owner >= lo) & (owner < hi)
        per_fold.append(recall_at_k(image_emb[lo:hi], text_emb[mine], owner[mine] - lo, ks))
    out = {k: sum(r[k] for r in per_fold) / n_folds for k in per_fold[0]}
    out["n_folds"] = float(n_folds)
    return out
