"""Data-parallel training: sharding, gathering, accumulation, and real 2-process torchrun runs (Gloo, CPU)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compression.config import ConfigError, load_config
from compression.distributed import SINGLE, Dist, gather_rows
from compression.losses import info_nce_loss
from compression.trainer import batch_indices, local_micro_batches, merge_micro, train_phase

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_ranks_split_a_global_batch_into_disjoint_contiguous_slices():
    batch = np.random.default_rng(0).permutation(11)
    for world in (1, 2, 3, 4):
        parts = [Dist(rank=r, world_size=world).split(batch) for r in range(world)]
        assert np.array_equal(np.concatenate(parts), batch)  # rank order rebuilds the batch
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_micro_batches_in_rank_major_order_rebuild_the_global_batch():
    batch = np.arange(20)
    world, accum = 2, 3
    micro = [m for r in range(world) for m in local_micro_batches(batch, Dist(r, world), accum)]
    assert len(micro) == world * accum
    assert np.array_equal(np.concatenate(micro), batch)


def test_batches_too_small_for_every_rank_and_micro_batch_are_dropped():
    sizes = [len(b) for b in batch_indices(21, 8, np.random.default_rng(0), min_size=6)]
    assert sizes == [8, 8]  # the last batch of 5 cannot give 2 ranks x 3 micro-batches a row each
    assert [len(b) for b in batch_indices(21, 8, np.random.default_rng(0))] == [8, 8, 5]


def test_single_process_gather_is_the_identity():
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_rows(x, SINGLE) is x


def test_merge_micro_keeps_grad_on_one_micro_batch_and_the_shared_scale_once():
    live = {"e": torch.ones(2, 3, requires_grad=True), "s": torch.tensor(2.0, requires_grad=True), "h": None}
    cached = [{"e": torch.zeros(2, 3), "s": torch.tensor(2.0), "h": None} for _ in range(3)]
    merged = merge_micro(live, cached, j=1, last=False)
    assert merged["e"].shape == (6, 3) and merged["h"] is None
    assert torch.equal(merged["e"][2:4], torch.ones(2, 3)) and merged["e"][:2].abs().sum() == 0
    assert not merged["s"].requires_grad  # the shared scale's gradient is taken in the last micro-step only
    assert merge_micro(live, cached, j=2, last=True)["s"].requires_grad


def _contrastive_phase(accum_steps: int, precision: str = "fp32", epochs: int = 2) -> tuple[nn.Module, dict]:
    """A linear image tower against fixed text embeddings, trained with train_phase."""
    from compression.config import OptimConfig

    torch.manual_seed(0)
    x = torch.randn(24, 16)
    text = torch.nn.functional.normalize(torch.randn(24, 8), dim=-1)
    model = nn.Linear(16, 8)
    scale = nn.Parameter(torch.tensor(2.0))
    holder = nn.ModuleDict({"tower": model})
    holder.register_parameter("scale", scale)
    cfg = OptimConfig(epochs=epochs, batch_size=12, lr=1e-2, warmup_steps=1, accum_steps=accum_steps)

    def forward_fn(idx):
        idx = torch.from_numpy(idx)
        return {"image": torch.nn.functional.normalize(model(x[idx]), dim=-1), "text": text[idx], "scale": scale.exp()}

    def loss_fn(f):
        return {"infonce_loss": info_nce_loss(f["image"], f["text"], f["scale"])}

    losses = train_phase("toy", holder, cfg, 24, lambda b: iter(b), forward_fn, loss_fn, None, seed=0,
                         progress=False, precision=precision)
    return holder, losses


def test_gradient_accumulation_reproduces_the_full_batch_training():
    """accum_steps=3 recomputes features so each loss sees the whole global batch: same weights as accum 1."""
    full, loss_full = _contrastive_phase(accum_steps=1)
    accum, loss_accum = _contrastive_phase(accum_steps=3)
    for (name, a), (_, b) in zip(full.named_parameters(), accum.named_parameters()):
        assert torch.allclose(a, b, atol=1e-5), name
    assert loss_accum["infonce_loss"] == pytest.approx(loss_full["infonce_loss"], rel=1e-5)
    # and the comparison can fail: a different number of steps moves the weights
    other, _ = _contrastive_phase(accum_steps=1, epochs=1)
    naive_differs = not torch.allclose(other["tower"].weight, full["tower"].weight, atol=1e-5)
    assert naive_differs


def test_bf16_autocast_trains_close_to_fp32():
    _, fp32 = _contrastive_phase(accum_steps=1)
    _, bf16 = _contrastive_phase(accum_steps=1, precision="bf16")
    assert bf16["infonce_loss"] != fp32["infonce_loss"]  # autocast really ran in bf16
    assert bf16["infonce_loss"] == pytest.approx(fp32["infonce_loss"], rel=0.05)


def test_config_checks_precision_and_accumulation():
    with pytest.raises(ConfigError, match="precision"):
        load_config(None, ["precision=fp8"])
    with pytest.raises(ConfigError, match="stage1.image.accum_steps"):
        load_config(None, ["stage1.image.accum_steps=0"])
    with pytest.raises(ConfigError, match="stage2.teacher.accum_steps"):
        load_config(None, ["stage2.teacher.batch_size=4", "stage2.teacher.accum_steps=3"])


def _torchrun(out: Path, overrides: list[str], launcher: tuple[str, ...] = (), worker: tuple[str, ...] = (),
              timeout: int = 600) -> subprocess.CompletedProcess:
    """torchrun (python -m torch.distributed.run) with 2 CPU processes of ddp_worker.py writing to ``out``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *launcher,
           str(WORKER), str(out), *worker]
    for o in overrides:
        cmd += ["--set", o]
    root = Path(__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, cwd=root, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def _records(out: Path) -> dict[int, list[dict]]:
    return {r: json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)}


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory, tiny_overrides):
    out = tmp_path_factory.mktemp("ddp")
    _torchrun(out, tiny_overrides)
    return out, _records(out)


def test_gathered_loss_and_ddp_gradient_equal_the_single_process_ones(two_rank_run):
    _, records = two_rank_run
    for rank in (0, 1):
        check = records[rank][-1]["loss_check"]
        assert check["gathered_loss"] == pytest.approx(check["single_loss"], rel=1e-6)
        assert check["grad_max_diff"] <= 1e-6 * max(1.0, check["grad_norm"])


def test_ranks_train_on_disjoint_samples_that_cover_each_epoch(two_rank_run):
    _, records = two_rank_run
    s0, s1 = records[0][-1]["samples"], records[1][-1]["samples"]
    assert set(s0) == set(s1) and any(k.startswith("stage2-image/") for k in s0)
    for key in s0:
        a, b = set(s0[key]), set(s1[key])
        assert a and b and not a & b, key
        assert len(s0[key]) == len(a) and len(s1[key]) == len(b)  # no sample twice within an epoch


def test_only_rank_0_writes_checkpoints_state_and_metrics(two_rank_run):
    out, records = two_rank_run
    written0, written1 = records[0][-1]["written"], records[1][-1]["written"]
    assert written1 == []
    assert any(w.endswith("student.safetensors") for w in written0)
    assert any(w.endswith("stage2-image.partial.pt") for w in written0)
    assert any(w.endswith("state.json") for w in written0)
    assert records[1][-1]["metrics"] == {} and (out / "run" / "metrics.json").is_file()


def test_two_ranks_reach_the_single_process_result(two_rank_run, tiny_run):
    """Same global batch, same seed: 2 ranks train the same student as 1 process (float rounding aside)."""
    _, records = two_rank_run
    _, _, single = tiny_run
    two = records[0][-1]["metrics"]
    for key in ("student", "teacher_finetuned"):
        assert two["retrieval"][key]["rsum"] == pytest.approx(single["retrieval"][key]["rsum"], abs=1.0)
    for phase, terms in single["losses"].items():
        for name, value in terms.items():
            assert two["losses"][phase][name] == pytest.approx(value, rel=1e-4), (phase, name)


def test_killed_worker_is_restarted_and_resumes_from_the_last_checkpoint(tmp_path, tiny_overrides, tiny_run):
    """rank 1 dies at the start of stage2-image's 2nd epoch; torchrun --max-restarts 1 restarts both ranks."""
    _torchrun(tmp_path, tiny_overrides, launcher=("--max-restarts", "1"), worker=("--fail-at", "stage2-image:1"))
    records = _records(tmp_path)
    assert [r["restart"] for r in records[1]] == [0, 1]  # the failed try, then the restarted one
    resumed = records[1][-1]["samples"]
    assert not any(k.startswith(("stage1-", "teacher-")) for k in resumed)  # finished phases skipped
    assert "stage2-image/0" not in resumed and "stage2-image/1" in resumed  # resumed after epoch 1's checkpoint
    _, _, single = tiny_run
    final = records[0][-1]["metrics"]
    assert final["retrieval"]["student"]["rsum"] == pytest.approx(single["retrieval"]["student"]["rsum"], abs=1.0)


def _gather_through_file(rank: int, port: int, folder: str) -> None:
    """One of 2 Gloo ranks: encode a shard, gather the table through one file, report how it is held."""
    import torch.distributed as td

    from compression.embedding import encode_tokens

    td.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    tokens = torch.arange(7 * 3).reshape(7, 3)
    table = encode_tokens(lambda t: t.float(), tokens, batch_size=2, dist=Dist(rank, 2), table_file=Path(folder) / "t.npy")
    maps = Path("/proc/self/maps").read_text()
    result = {"table": table.tolist(), "mapped": str(Path(folder) / "t.npy") in maps, "file_left": (Path(folder) / "t.npy").exists()}
    td.barrier()
    Path(folder, f"rank{rank}.json").write_text(json.dumps(result))
    td.destroy_process_group()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")
def test_distributed_tables_are_one_shared_file_not_a_copy_per_rank(tmp_path):
    """A CC3M table is ~6 GB: gathered on the GPU and copied to each rank's RAM it cost 6 GB of GPU memory and
    N x 6 GB of host memory. Now every rank maps the one file its rows were written to (then unlinked)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_gather_through_file, args=(port, str(tmp_path)), nprocs=2, join=True)
    tokens = torch.arange(7 * 3).reshape(7, 3).float()
    expected = torch.nn.functional.normalize(tokens, dim=-1)
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        torch.testing.assert_close(torch.tensor(result["table"]), expected)
        assert result["mapped"] and not result["file_left"]
