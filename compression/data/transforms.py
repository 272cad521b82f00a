"""Image preprocessing shared by training, evaluation, export parity checks and the app."""
from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision import transforms as T

from compression.models.teacher import Preprocess


class ToRGB:
    """PIL image -> RGB PIL image. A class, not a lambda: transforms must pickle for DataLoader workers
    started with spawn (macOS, and Linux from Python 3.14 on)."""

    def __call__(self, im: Image.Image) -> Image.Image:
        return im.convert("RGB") if im.mode != "RGB" else im

    def __repr__(self) -> str:
        return "ToRGB()"


def image_transform(pre: Preprocess) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> (3, S, S) float tensor: open_clip's eval transform (resize shortest side, bicubic,
    center crop, RGB, ToTensor, Normalize). No random augmentation, so teacher embeddings of a
    dataset can be computed once and reused across epochs."""
    return T.Compose(
        [
            T.Resize(pre.image_size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(pre.image_size),
            ToRGB(),
            T.ToTensor(),
            T.Normalize(mean=pre.mean, std=pre.std),
        ]
    )
