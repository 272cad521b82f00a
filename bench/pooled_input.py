"""A model's encoders behind a larger input: the indexing pipeline of a 224-px model, with a cheap encoder.

The engine decodes and preprocesses every photo at the size the model asks for, so a 224-px model
(ViT-S/16, ViT-B/32) pays a larger decode and resize than the synthetic 32-px student. This wrapper asks
for ``input_size`` pixels and average-pools them down to the wrapped model's size before encoding:
decode, preprocessing, batching and the store run exactly as for a 224-px model, while the encoder's
cost stays the small model's. It measures the pipeline against the decode limit, not a 224-px
encoder's speed (bench.encoders does that).
"""

from __future__ import annotations

import numpy as np

from app.engine.decode import ImagePreprocess
from app.engine.runtimes.base import Encoders


class PooledInputEncoders(Encoders):
    """``inner`` fed (B, 3, N*s, N*s) photos average-pooled by N to its own (B, 3, s, s)."""

    def __init__(self, inner: Encoders, input_size: int):
        size = inner.preprocess.image_size
        if input_size % size:
            raise ValueError(f"input size {input_size} is not a multiple of the model's {size}")
        self.inner, self.factor = inner, input_size // size
        self.backend, self.model_id, self.embed_dim = inner.backend, inner.model_id, inner.embed_dim
        self.tokenizer, self.image_batch_size = inner.tokenizer, inner.image_batch_size
        self.preprocess = ImagePreprocess(input_size, inner.preprocess.mean, inner.preprocess.std)

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        b, c, n, _ = pixels.shape
        f, s = self.factor, n // self.factor
        return self.inner.encode_images(np.ascontiguousarray(pixels.reshape(b, c, s, f, s, f).mean(axis=(3, 5))))

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        return self.inner.encode_tokens(tokens)
