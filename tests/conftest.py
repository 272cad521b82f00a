"""Shared fixtures: tiny configs so that training in tests takes seconds on a CPU."""
from __future__ import annotations

import logging

import pytest
import torch

from compression.config import load_config

# the offline default's code path with a micro teacher (compression/model_configs/synthclip-micro.json)
TINY_OVERRIDES = [
    "teacher.model=synthclip-micro",
    "student.image_backbone_kwargs={img_size: 32, patch_size: 8, embed_dim: 32, depth: 1, num_heads: 2}",
    "student.text_layers=2",
    "data.synthetic.n_pretrain=128",
    "data.synthetic.n_unpaired_images=64",
    "data.synthetic.n_unpaired_texts=64",
    "data.synthetic.n_train=64",
    "data.synthetic.n_val=16",
    "data.synthetic.n_test=32",
    "teacher.pretrain.epochs=1",
    "teacher.pretrain.batch_size=32",
    "stage1.image.epochs=1",
    "stage1.image.batch_size=32",
    "stage1.text.epochs=1",
    "stage1.text.batch_size=32",
    "stage2.teacher.epochs=1",
    "stage2.teacher.batch_size=32",
    "stage2.student_image.epochs=2",
    "stage2.student_image.batch_size=32",
    "stage2.student_text.epochs=1",
    "stage2.student_text.batch_size=32",
    "stage2.hard_negatives=2",
    "stage2.hard_negative_pool=8",
    "eval.speed_iters=1",
    "eval.speed_batch_size=8",
]


# PyTorch's thread count is process-wide: the CLIs and runtimes under test set it (--threads, threads=1),
# and a session fixture may set it before any function fixture runs. Every test ends with the default back.
DEFAULT_TORCH_THREADS = torch.get_num_threads()


@pytest.fixture(autouse=True)
def _quiet_and_deterministic():
    torch.manual_seed(0)
    logging.getLogger("root").setLevel(logging.WARNING)
    yield
    torch.set_num_threads(DEFAULT_TORCH_THREADS)


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    return list(TINY_OVERRIDES)


@pytest.fixture
def tiny_config():
    return load_config(None, TINY_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_overrides):
    """One finished tiny pipeline run shared by every test that needs a checkpoint.

    Returns (config, root, metrics); the run directory is ``root / "runs" / "tiny"`` and the
    data/teacher cache ``root / "cache"``.
    """
    from compression.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("tiny-run")
    cfg = load_config(None, tiny_overrides)
    metrics = run_pipeline(cfg, root / "runs" / "tiny", root / "cache", progress=False)
    return cfg, root, metrics
