"""One rank of the torchrun tests (tests/compression/test_distributed.py); not collected by pytest.

    torchrun --nproc_per_node 2 tests/compression/ddp_worker.py OUT_DIR [--fail-at PHASE:EPOCH] [--set KEY=VALUE ...]

Records what this rank did into OUT_DIR/rank<R>.json (appending one record per attempt, so a run
restarted by ``torchrun --max-restarts`` leaves one record per try):

* ``loss_check``: on one fixed global batch split across the ranks, the InfoNCE loss of gathered
  features and the gradient DDP produces, next to the same loss and gradient computed on the whole
  batch in this process alone;
* ``samples``: for each training phase and epoch, the sample indices this rank trained on;
* ``written``: every file this rank renamed into place (all writes in the pipeline are atomic renames);
* ``metrics``: what ``run_pipeline`` returned (rank 0 only; {} on the others).

``--fail-at PHASE:EPOCH`` kills rank 1 (``os._exit``) at the start of that epoch on the first try
only (TORCHELASTIC_RESTART_COUNT == 0): torchrun then restarts every worker, which must resume.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

from compression import trainer
from compression.config import load_config
from compression.distributed import env_world, gather_rows, init_distributed, shutdown
from compression.losses import info_nce_loss


def loss_check(dist) -> dict:
    """Gathered loss and DDP gradient on a fixed global batch vs the single-process ones."""
    torch.manual_seed(123)
    model = nn.Linear(16, 8)
    x, y = torch.randn(12, 16), torch.nn.functional.normalize(torch.randn(12, 8), dim=-1)
    ref_loss = info_nce_loss(torch.nn.functional.normalize(model(x), dim=-1), y, 10.0)
    ref_loss.backward()
    ref_grad = model.weight.grad.clone()
    model.zero_grad()

    ddp = torch.nn.parallel.DistributedDataParallel(model)
    start, stop = dist.shard(len(x))
    local = torch.nn.functional.normalize(ddp(x[start:stop]), dim=-1)
    loss = info_nce_loss(gather_rows(local, dist), gather_rows(y[start:stop], dist, with_grad=False), 10.0)
    loss.backward()
    return {
        "gathered_loss": loss.item(), "single_loss": ref_loss.item(),
        "grad_max_diff": float((model.weight.grad - ref_grad).abs().max()), "grad_norm": float(ref_grad.norm()),
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--fail-at", default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    dist, _ = init_distributed(torch.device("cpu"))
    record: dict = {"rank": dist.rank, "world_size": dist.world_size,
                    "restart": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
                    "samples": {}, "written": []}
    out_file = args.out / f"rank{dist.rank}.json"
    history = json.loads(out_file.read_text()) if out_file.is_file() else []

    def save_record() -> None:
        out_file.write_text(json.dumps(history + [record]))

    record["loss_check"] = loss_check(dist)

    real_replace = os.replace

    def recording_replace(src, dst):
        record["written"].append(str(dst))
        return real_replace(src, dst)

    os.replace = recording_replace

    real_split = trainer.local_micro_batches
    phase = {"name": None, "epoch": None}

    def recording_split(batch, d, accum):
        parts = real_split(batch, d, accum)
        key = f"{phase['name']}/{phase['epoch']}"
        record["samples"].setdefault(key, []).extend(int(i) for m in parts for i in m)
        return parts

    trainer.local_micro_batches = recording_split
    real_train = trainer.train_phase

    def recording_train(name, *a, **kw):
        start = kw.get("on_epoch_start")

        def on_epoch_start(epoch):
            phase.update(name=name, epoch=epoch)
            if args.fail_at == f"{name}:{epoch}" and dist.rank == 1 and record["restart"] == 0:
                save_record()
                os._exit(1)
            if start is not None:
                start(epoch)

        kw["on_epoch_start"] = on_epoch_start
        return real_train(name, *a, **kw)

    import compression.stages

    compression.stages.train_phase = recording_train
    from compression.pipeline import run_pipeline

    cfg = load_config(None, args.overrides)
    record["metrics"] = run_pipeline(cfg, args.out / "run", args.out / "cache", progress=False)
    os.replace = real_replace
    save_record()
    shutdown(env_world())
    return 0


if __name__ == "__main__":
    sys.exit(main())
