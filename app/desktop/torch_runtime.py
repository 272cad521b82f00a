"""PyTorch runtime: a student checkpoint (a run directory with student.json), for development."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from app.desktop.checkpoint_tokenizer import checkpoint_tokenizer
from app.engine.decode import ImagePreprocess
from app.engine.runtimes.base import Encoders, ModelLoadError, l2_normalize
from formats.digest import sha256_file
from formats.run_card import card_embed_dim, is_assembled_run
from formats.text import cut_batch

logger = logging.getLogger(__name__)


def default_index_threads(decode_workers: int = 2) -> int:
    """PyTorch threads to index with: the cores the decode threads leave, at least one.

    Oversubscribing hurts badly: on a 2-core box the offline student indexed an order of magnitude
    fewer photos/s with two PyTorch threads than with one (next to two decode threads); the photos/s
    at the default this returns are in bench/results/indexing.json.
    """
    return max(1, (os.cpu_count() or 1) - decode_workers)


class TorchEncoders(Encoders):
    """The run's student in eval mode, on the CPU, under no_grad: ``compression.checkpoint.load_student``, or
    ``load_assembled_student`` for a clip art run (the offline default)."""

    backend = "torch"

    def __init__(self, run_dir: str | Path, threads: int | None = None):
        import torch

        from compression.checkpoint import STUDENT_CONFIG, STUDENT_WEIGHTS, CheckpointError, load_student
        from compression.models.assembled_student import load_assembled_student

        run_dir = Path(run_dir)
        assembled = is_assembled_run(run_dir)
        try:
            self.model, meta = load_assembled_student(run_dir) if assembled else load_student(run_dir)
        except CheckpointError as e:
            raise ModelLoadError(str(e)) from e
        where = str(run_dir / STUDENT_CONFIG)
        try:
            self.preprocess = ImagePreprocess.from_dict(meta.get("preprocess") or {}, f"{where}: preprocess")
            self.tokenizer = checkpoint_tokenizer(meta.get("tokenizer") or {}, f"{where}: tokenizer", run_dir)
        except ValueError as e:
            raise ModelLoadError(str(e)) from e
        self.embed_dim = card_embed_dim(meta)
        # the embedding space is the weights, at full precision (an fp32 export of them shares it)
        self.model_id = f"{sha256_file(run_dir / STUDENT_WEIGHTS)[:16]}-fp32"
        self.run_dir = run_dir
        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        logger.info("loaded %s", self.describe())

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self.model.encode_image(torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)))
        return l2_normalize(out.float().numpy())

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        torch = self._torch
        tokens = cut_batch(np.asarray(tokens, dtype=np.int64))
        with torch.inference_mode():
            out = self.model.encode_text(torch.from_numpy(np.ascontiguousarray(tokens)))
        return l2_normalize(out.float().numpy())

    def close(self) -> None:
        self.model = None
