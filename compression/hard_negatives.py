"""Hard negatives mined from the whole training corpus with an exact FAISS inner-product index."""
from __future__ import annotations

import faiss
import numpy as np
import torch

from compression.config import ConfigError


def mine_hard_negatives(
    queries: torch.Tensor,
    corpus: torch.Tensor,
    query_owner: np.ndarray,
    corpus_owner: np.ndarray,
    k: int,
    pool: int,
    rng: np.random.Generator,
    max_positives: int = 5,
) -> np.ndarray:
    """For each query, ``k`` corpus ids drawn at random from its ``pool`` nearest non-matching items.

    queries (Q, D), corpus (M, D): L2-normalised float; query_owner (Q,), corpus_owner (M,): the image
    each item belongs to; items of the same image are positives and never returned. Sampling among
    the top ``pool`` rather than taking the very nearest keeps the near-duplicates of a positive
    (false negatives, frequent in captioned data) from dominating. Returns (Q, k) int64.
    """
    if k <= 0:
        return np.zeros((queries.shape[0], 0), dtype=np.int64)
    corpus_np = np.ascontiguousarray(corpus.float().numpy(), dtype=np.float32)
    queries_np = np.ascontiguousarray(queries.float().numpy(), dtype=np.float32)
    index = faiss.IndexFlatIP(corpus_np.shape[1])
    index.add(corpus_np)
    depth = min(corpus_np.shape[0], pool + max_positives)
    _, ids = index.search(queries_np, depth)  # (Q, depth), -1 where the corpus is too small
    valid = (ids >= 0) & (corpus_owner[np.clip(ids, 0, None)] != query_owner[:, None])
    valid &= np.cumsum(valid, axis=1) <= pool
    if (valid.sum(1) < k).any():
        raise ConfigError(f"corpus too small to mine {k} hard negatives per query from a pool of {pool}")
    keys = np.where(valid, rng.random(ids.shape), np.inf)
    chosen = np.argsort(keys, axis=1)[:, :k]
    return np.take_along_axis(ids, chosen, axis=1).astype(np.int64)
