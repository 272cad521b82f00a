"""Encode whole datasets with any encoder, in batches, without gradients."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from compression.data.captioned import ImageSource
from compression.data.datasets import ImageDataset


@torch.no_grad()
def encode_images(
    encode: Callable[[torch.Tensor], torch.Tensor],
    source: ImageSource,
    transform: Callable,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    desc: str | None = None,
) -> torch.Tensor:
    """(N, D) float32 embeddings on the CPU, L2-normalised, in the source's order."""
    loader = DataLoader(ImageDataset(source, transform), batch_size=batch_size, num_workers=num_workers)
    out = []
    for images, _ in tqdm(loader, desc=desc, disable=desc is None, leave=False):
        out.append(torch.nn.functional.normalize(encode(images.to(device)).float(), dim=-1).cpu())
    return torch.cat(out)


@torch.no_grad()
def encode_tokens(
    encode: Callable[[torch.Tensor], torch.Tensor],
    tokens: torch.Tensor,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    desc: str | None = None,
) -> torch.Tensor:
    """tokens (C, L) int64 -> (C, D) float32, L2-normalised. Each batch is cut after its longest
    sequence's EOT token: ``encode`` must accept that (see models.teacher.text_encoder)."""
    out = []
    for s in tqdm(range(0, tokens.shape[0], batch_size), desc=desc, disable=desc is None, leave=False):
        batch = tokens[s : s + batch_size]
        batch = batch[:, : int(batch.argmax(dim=1).max()) + 1]
        out.append(torch.nn.functional.normalize(encode(batch.to(device)).float(), dim=-1).cpu())
    return torch.cat(out)


def tokenize_all(tokenizer: Callable, texts: Sequence[str], batch_size: int = 4096) -> torch.Tensor:
    """(C, context_length) int64 token ids."""
    return torch.cat([tokenizer(list(texts[s : s + batch_size])) for s in range(0, len(texts), batch_size)])
