"""The one small interface every encoder runtime implements, and the errors they raise."""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Self

import numpy as np

from app.engine.decode import ImagePreprocess
from app.engine.tokenizer import QueryTokenizer
from formats.errors import UserError

logger = logging.getLogger(__name__)


class ModelLoadError(UserError, RuntimeError):
    """A model path that is not a run directory or a bundle, a bundle that fails verification
    (sha256 mismatch, missing file), or a runtime this platform does not have; names the path."""


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero). (B, D) -> (B, D) float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


class Encoders(ABC):
    """An image encoder and a text encoder that embed into one space, and how to feed them.

    Implementations keep their models loaded for their whole life (between batches and queries);
    call :meth:`close` to release them.
    """

    backend: str  # "torch", "executorch-xnnpack", "coreml", "android-executorch", "ios-coreml"
    model_id: str  # names the embedding space: the store re-indexes when it changes
    embed_dim: int
    preprocess: ImagePreprocess
    tokenizer: QueryTokenizer
    image_batch_size: int = 32  # photos per indexing batch (one commit); a fixed program batch is split inside

    @abstractmethod
    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        """(B, 3, S, S) float32 preprocessed -> (B, D) float32, L2-normalised."""

    @abstractmethod
    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """(B, L) int64 token ids (L <= context length; ids after each EOT are padding) -> (B, D), L2-normalised."""

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Search queries -> (B, D) float32, each encoded at its own length. Raises QueryError."""
        return np.concatenate([self.encode_tokens(self.tokenizer.encode_query(t)) for t in texts])

    def describe(self) -> str:
        return f"{self.backend} encoders, {self.embed_dim}-d, images {self.preprocess.image_size}px ({self.model_id})"

    def close(self) -> None:
        """Release the models (optional; the garbage collector does it too)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
