"""torch Datasets over the reader types: images for encoding, (image, caption) pairs for training."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from compression.data.captioned import CaptionedImages, ImageSource


class ImageDataset(Dataset):
    """Item i: (transformed image i, i)."""

    def __init__(self, source: ImageSource, transform: Callable):
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.source.load(i)), i


class TensorImages:
    """All images of a source transformed once and kept as one (N, 3, S, S) tensor.

    Worth it when the set fits in memory (the offline benchmark): every epoch after the first
    costs no decoding. Exposes the same ``len`` / indexing as a dataset of tensors.
    """

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __len__(self) -> int:
        return self.tensor.shape[0]


class PairIndex:
    """The (image index, caption index) pairs of a CaptionedImages, and each caption's owner image."""

    def __init__(self, data: CaptionedImages):
        self.texts, self.owner = data.flat_captions()
        self.first_caption = np.concatenate([[0], np.cumsum([len(c) for c in data.captions])[:-1]]).astype(np.int64)
        self.n_captions = np.array([len(c) for c in data.captions], dtype=np.int64)

    def sample_caption_per_image(self, rng: np.random.Generator) -> np.ndarray:
        """One random caption id per image: (N,) int64. An epoch = every image once with one of its captions."""
        return self.first_caption + (rng.random(len(self.n_captions)) * self.n_captions).astype(np.int64)
