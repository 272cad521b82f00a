"""Stage 1's further unpaired images for the clip art run (issue 15: "stage 1 on unpaired images (clip art,
real photos, synthetic, with augmentation)"): augmented views of the training drawings and unpaired photos,
and synthetic benchmark scenes. They feed stage 1's image distillation only; no loss reads their
placeholder captions."""
from __future__ import annotations

from compression.data.augment import AugmentedImages
from compression.data.captioned import CaptionedImages
from compression.data.synthetic import synthetic_unpaired_images

STAGE1_ONLY = ("augmented ", "synthetic ")  # name prefixes of the sets that only feed stage 1's image stream
VIEW_SOURCES = ("train", "unpaired photos")


def stage1_extra_sets(sets: dict[str, CaptionedImages], views: int, synthetic: int, size: int, seed: int,
                      progress: bool = False) -> dict[str, CaptionedImages]:
    """``views`` augmented views of each image of the VIEW_SOURCES sets present, and ``synthetic`` scenes,
    all at ``size`` px, by name ("augmented train 0", ..., "synthetic scenes")."""
    if views < 0 or synthetic < 0:
        raise ValueError(f"stage1_views ({views}) and stage1_synthetic ({synthetic}) must be >= 0")
    extra = {}
    for k in range(views):
        for src in VIEW_SOURCES:
            if src in sets:
                view = AugmentedImages(sets[src].images, size, seed=seed + k)
                extra[f"augmented {src} {k}"] = CaptionedImages(view, [["view"]] * len(view), view.names(sets[src].names))
    if synthetic:
        scenes = synthetic_unpaired_images(synthetic, size, seed, progress)
        extra["synthetic scenes"] = CaptionedImages(scenes, [["scene"]] * len(scenes),
                                                    [f"synthetic-{size}-{i:06d}" for i in range(len(scenes))])
    return extra
