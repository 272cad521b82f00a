"""Data-parallel training with PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

A run started by ``torchrun --nproc_per_node N -m compression.run ...`` finds RANK / WORLD_SIZE /
LOCAL_RANK / MASTER_ADDR in its environment; ``init_distributed`` joins the process group (NCCL on
GPUs, Gloo on CPU) and every other part of the pipeline asks the returned ``Dist`` what to do:

* data: every rank draws the same global batches (the epoch's permutation comes from the seed and
  the epoch number) and takes its own contiguous slice of each, so the ranks see disjoint samples
  and the global batch is the config's ``batch_size`` whatever N is;
* contrastive losses: ``gather_rows`` all-gathers each rank's embeddings with autograd, so the
  loss sees the negatives of every rank, the local slice keeps its gradient and the gradient of
  the others' slices flows back to them (open_clip's ``gather_features`` with ``gather_with_grad``);
  every rank computes the same global loss and DDP averages the gradients, which makes them
  equal to a single process's on the same global batch;
* frozen embedding tables (the teacher's, the mining queries) are encoded in shards and gathered;
  the FAISS hard-negative index is built once, on rank 0, and its answer broadcast;
* only rank 0 logs progress, writes checkpoints, state and metrics, and evaluates.

With no torchrun environment ``Dist()`` is the single-process case and every function here is a
no-op, so the single-process code path is the same code.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as torch_dist

from compression.config import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank among ``world_size``, and ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> tuple[int, int]:
        """The contiguous [start, stop) of ``n`` items this rank handles (sizes differ by at most 1)."""
        bounds = np.linspace(0, n, self.world_size + 1).round().astype(int)
        return int(bounds[self.rank]), int(bounds[self.rank + 1])

    def split(self, items: np.ndarray) -> np.ndarray:
        """This rank's contiguous slice of one global batch of indices."""
        start, stop = self.shard(len(items))
        return items[start:stop]

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()


SINGLE = Dist()


def env_world() -> Dist:
    """Rank / world size from the torchrun environment (single process when absent)."""
    try:
        env = os.environ
        return Dist(int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0")))
    except ValueError as e:
        raise ConfigError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {e}") from e


def init_distributed(device: torch.device, timeout_minutes: float = 60) -> tuple[Dist, torch.device]:
    """Join the process group that torchrun describes; returns (dist, this rank's device).

    NCCL when ``device`` is CUDA (each rank takes GPU ``LOCAL_RANK``), Gloo on CPU. The timeout is
    generous: rank 0 evaluates alone while the others wait at a barrier.
    """
    dist = env_world()
    if not dist.enabled:
        return dist, device
    if device.type == "cuda":
        if torch.cuda.device_count() <= dist.local_rank:
            raise ConfigError(f"LOCAL_RANK {dist.local_rank} but only {torch.cuda.device_count()} GPUs on this node")
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if not torch_dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = timedelta(minutes=timeout_minutes)
        torch_dist.init_process_group(backend, store=attempt_store(dist, timeout), rank=dist.rank,
                                      world_size=dist.world_size, timeout=timeout)
        logger.info("rank %d/%d joined the %s process group (device %s)", dist.rank, dist.world_size, backend, device)
    return dist, device


def attempt_store(dist: Dist, timeout: timedelta) -> torch_dist.Store:
    """The rendezvous store at MASTER_ADDR:MASTER_PORT, under a prefix unique to this torchrun attempt.

    torchrun's agent keeps one store across ``--max-restarts`` attempts; when a worker dies while
    the others wait in a collective, the restarted group otherwise reads the dead attempt's Gloo
    addresses from it and fails with "connectFullMesh ... Connection refused" (seen with torch
    2.14.1). Under torchrun the agent hosts the store; under another launcher rank 0 does.
    """
    try:
        host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    except (KeyError, ValueError) as e:
        raise ConfigError(f"WORLD_SIZE is set but MASTER_ADDR/MASTER_PORT are missing or bad: {e}") from e
    agent_hosts = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = torch_dist.TCPStore(host, port, dist.world_size, is_master=dist.is_main and not agent_hosts,
                                timeout=timeout, multi_tenant=True)
    return torch_dist.PrefixStore(f"pocketclip/attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/", store)


def shutdown(dist: Dist) -> None:
    if dist.enabled and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def gather_rows(x: torch.Tensor, dist: Dist, with_grad: bool = True) -> torch.Tensor:
    """Concatenate every rank's ``x`` along dim 0, in rank order; ranks may hold different row counts.

    ``with_grad``: the result is differentiable w.r.t. every rank's rows (all-gather with
    autograd: the gradient of each slice goes back to the rank that owns it). Otherwise (frozen
    lookups) a plain all-gather. Single process: ``x`` itself.
    """
    if not dist.enabled:
        return x
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(dist.world_size)]
    torch_dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    longest = max(sizes)
    padded = x if x.shape[0] == longest else torch.cat([x, x.new_zeros(longest - x.shape[0], *x.shape[1:])])
    if with_grad:  # the functional all-gather has autograd: its backward reduce-scatters the gradients
        from torch.distributed._functional_collectives import all_gather_single

        parts = list(all_gather_single(padded.contiguous(), 0, torch_dist.group.WORLD).chunk(dist.world_size))
    else:
        parts = [torch.empty_like(padded) for _ in range(dist.world_size)]
        torch_dist.all_gather(parts, padded.contiguous())
        parts[dist.rank] = padded  # the local slice keeps whatever graph it had
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def broadcast_array(array: np.ndarray | None, dist: Dist) -> np.ndarray:
    """Rank 0's ``array`` on every rank (the others pass None)."""
    if not dist.enabled:
        return array
    box = [array if dist.is_main else None]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]
