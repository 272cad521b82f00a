"""Augmented views of an image set for stage 1's unpaired image stream (MoTIS trains the student's image
tower to match the teacher on many unpaired images; clip art alone is one narrow style, so each view is
cropped, flipped, recoloured, sometimes grey or blurred, the usual SimCLR-style family).

A view is a pure function of (seed, index): the features of the views are computed once and cached like
any other set's, and a re-run sees the same views."""
from __future__ import annotations

import torch
from PIL import Image
from torchvision import transforms as T

AUGMENT_VERSION = 1  # bump when the transform below changes: the views' names (and so their cache keys) change


def view_transform(size: int) -> T.Compose:
    return T.Compose([
        T.RandomResizedCrop(size, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3), interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.05)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([T.GaussianBlur(9, sigma=(0.1, 2.0))], p=0.3),
    ])


class AugmentedImages:
    """An ImageSource: view ``seed`` of each image of ``source``, at ``size`` px."""

    def __init__(self, source, size: int, seed: int = 0):
        self.source, self.size, self.seed = source, size, seed
        self.transform = view_transform(size)

    def __len__(self) -> int:
        return len(self.source)

    def load(self, index: int) -> Image.Image:
        if not 0 <= index < len(self):
            raise IndexError(index)
        with torch.random.fork_rng(devices=[]):  # the global generator is left as it was
            torch.manual_seed(self.seed * 1_000_003 + index)
            return self.transform(self.source.load(index).convert("RGB"))

    def names(self, names: list[str]) -> list[str]:
        """The views' names (cache keys) from the source images' names."""
        return [f"view{AUGMENT_VERSION}-{self.seed}/{n}" for n in names]
