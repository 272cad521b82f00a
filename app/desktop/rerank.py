"""Optional second stage (LightningDOT's idea): re-score the student's top-M with the teacher.

The student ranks the whole gallery in milliseconds; the teacher, larger and more accurate, then
re-scores only the M best candidates (decoded again with the teacher's own preprocessing). Their
teacher image embeddings are cached in memory, keyed by path, size and mtime, so repeated queries
over the same photos pay the teacher's image tower once. Available where a teacher checkpoint is
(a run directory with teacher.json: desktop development), never required.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.desktop.checkpoint_tokenizer import checkpoint_tokenizer
from app.engine.decode import DecodeLimits, ImagePreprocess, PhotoDecodeError, load_photo
from app.engine.runtimes.base import ModelLoadError, l2_normalize
from app.engine.search import SearchResult
from formats.run_card import CONTEXT_LENGTH, OPEN_CLIP_TOKENIZER, TOKENIZER_MODEL

logger = logging.getLogger(__name__)


class TeacherReranker:
    """The fine-tuned teacher of a run directory (``teacher.json`` + ``teacher.safetensors``)."""

    def __init__(self, run_dir: str | Path, cache_size: int = 4096, limits: DecodeLimits | None = None):
        import torch

        from compression.checkpoint import (
            TEACHER_CONFIG,
            TEACHER_WEIGHTS,
            CheckpointError,
            load_weights,
            read_json,
        )
        from compression.models.teacher import create_teacher, freeze

        run_dir = Path(run_dir)
        try:
            meta = read_json(run_dir / TEACHER_CONFIG, "teacher config")
            model = create_teacher(meta["model"], None)
            load_weights(model, run_dir / TEACHER_WEIGHTS)
            self.preprocess = ImagePreprocess.from_dict(meta["preprocess"], str(run_dir / TEACHER_CONFIG))
        except (CheckpointError, KeyError, ValueError) as e:
            raise ModelLoadError(f"no usable teacher in {run_dir} for re-ranking: {e}") from e
        self.model = freeze(model)
        ctx = int(model.positional_embedding.shape[0])
        self.tokenizer = checkpoint_tokenizer(
            {"kind": OPEN_CLIP_TOKENIZER, TOKENIZER_MODEL: meta["model"], CONTEXT_LENGTH: ctx},
            str(run_dir / TEACHER_CONFIG))
        self.limits = limits or DecodeLimits()
        self._torch = torch
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    @staticmethod
    def available(run_dir: str | Path) -> bool:
        return (Path(run_dir) / "teacher.json").is_file() and (Path(run_dir) / "teacher.safetensors").is_file()

    def _image_embeddings(self, paths: Sequence[str]) -> dict[str, np.ndarray]:
        torch = self._torch
        out, todo = {}, []
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (path, st.st_size, st.st_mtime_ns)
            if key in self._cache:
                self._cache.move_to_end(key)
                out[path] = self._cache[key]
            else:
                todo.append((key, path))
        pixels, keys = [], []
        for key, path in todo:
            try:
                pixels.append(load_photo(path, self.preprocess, self.limits).pixels)
                keys.append(key)
            except PhotoDecodeError as e:
                logger.info("re-ranking skips %s", e)
        if pixels:
            with torch.inference_mode():
                emb = l2_normalize(self.model.encode_image(torch.from_numpy(np.stack(pixels))).float().numpy())
            for key, e in zip(keys, emb):
                out[key[0]] = e
                self._cache[key] = e
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out

    def rerank(self, query: str, candidates: Sequence[SearchResult]) -> list[SearchResult]:
        """``candidates`` re-scored by the teacher's cosine similarity, best first (unreadable ones dropped)."""
        from compression.models.teacher import encode_text_at_length

        if not candidates:
            return []
        torch = self._torch
        tokens = torch.from_numpy(self.tokenizer.encode_query(query))
        with torch.inference_mode():
            q = l2_normalize(encode_text_at_length(self.model, tokens).float().numpy())[0]
        images = self._image_embeddings([c.path for c in candidates])
        rescored = [SearchResult(c.path, float(images[c.path] @ q), c.photo_id) for c in candidates if c.path in images]
        return sorted(rescored, key=lambda r: (-r.score, r.photo_id))
