"""Encode whole datasets with any encoder, in batches, without gradients."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from compression.data.captioned import ImageSource
from compression.data.datasets import ImageDataset
from compression.distributed import SINGLE, Dist, gather_rows
from formats.text import cut_batch


@torch.no_grad()
def encode_images(
    encode: Callable[[torch.Tensor], torch.Tensor],
    source: ImageSource,
    transform: Callable,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    desc: str | None = None,
    dist: Dist = SINGLE,
    table_file: Path | None = None,
) -> torch.Tensor:
    """(N, D) float32 embeddings on the CPU, L2-normalised, in the source's order.

    Distributed: each rank encodes its contiguous shard and every rank gets the whole table (see
    ``_gather_table``: through ``table_file``, shared by the ranks' memory maps).
    """
    start, stop = dist.shard(len(source))
    dataset = ImageDataset(source, transform)
    if dist.enabled:
        dataset = Subset(dataset, range(start, stop))
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    out = []
    for images, _ in tqdm(loader, desc=desc, disable=desc is None, leave=False):
        out.append(torch.nn.functional.normalize(encode(images.to(device)).float(), dim=-1).cpu())
    return _gather_table(out, dist, device, table_file)


@torch.no_grad()
def encode_tokens(
    encode: Callable[[torch.Tensor], torch.Tensor],
    tokens: torch.Tensor,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    desc: str | None = None,
    dist: Dist = SINGLE,
    table_file: Path | None = None,
) -> torch.Tensor:
    """tokens (C, L) int64 -> (C, D) float32, L2-normalised. Each batch is cut after its longest
    sequence's EOT token: ``encode`` must accept that (see models.teacher.text_encoder).
    Distributed: each rank encodes its contiguous shard and every rank gets the whole table."""
    start, stop = dist.shard(tokens.shape[0])
    tokens = tokens[start:stop]
    out = []
    for s in tqdm(range(0, tokens.shape[0], batch_size), desc=desc, disable=desc is None, leave=False):
        batch = tokens[s : s + batch_size]
        batch = cut_batch(batch)
        out.append(torch.nn.functional.normalize(encode(batch.to(device)).float(), dim=-1).cpu())
    return _gather_table(out, dist, device, table_file)


def _gather_table(parts: list[torch.Tensor], dist: Dist, device: torch.device | str, table_file: Path | None = None) -> torch.Tensor:
    """This rank's encoded batches (on the CPU) -> the whole (N, D) table on the CPU, every rank's shard in order.

    Distributed, the table never sits on a GPU whole (a CC3M table is ~6 GB): each rank writes its
    rows into ``table_file`` (``.npy``, in a folder every rank sees: the run directory), and every
    rank maps that file copy-on-write, so the ranks of a node share one copy in the page cache
    instead of holding N. The file is unlinked once mapped. Without ``table_file``, the rows go
    through a (device) all-gather. A rank with an empty shard still takes part (with 0 rows of the right width).
    """
    if not dist.enabled:
        return torch.cat(parts)
    width = torch.tensor([parts[0].shape[1] if parts else 0], device=device)
    torch.distributed.all_reduce(width, op=torch.distributed.ReduceOp.MAX)
    local = torch.cat(parts) if parts else torch.zeros(0, int(width))
    if table_file is None:
        return gather_rows(local.to(device), dist, with_grad=False).cpu()
    counts = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(dist.world_size)]
    torch.distributed.all_gather(counts, torch.tensor([local.shape[0]], device=device))
    counts = [int(c) for c in counts]
    offset, total = sum(counts[: dist.rank]), sum(counts)
    path = Path(table_file)
    if dist.is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(total, int(width))).flush()
    dist.barrier()
    rows = np.lib.format.open_memmap(path, mode="r+")
    rows[offset : offset + local.shape[0]] = local.numpy()
    rows.flush()
    del rows
    dist.barrier()
    table = torch.from_numpy(np.load(path, mmap_mode="c"))
    dist.barrier()
    if dist.is_main:
        path.unlink()
    dist.barrier()  # no rank returns while the file is still there (a rank that lists the folder sees it gone)
    return table


def tokenize_all(tokenizer: Callable, texts: Sequence[str], batch_size: int = 4096) -> torch.Tensor:
    """(C, context_length) int64 token ids."""
    return torch.cat([tokenizer(list(texts[s : s + batch_size])) for s in range(0, len(texts), batch_size)])
