"""The image preprocessing of a model: ``student.json["preprocess"]`` and a bundle's ``image`` section.

compression writes it (from the teacher's or the backbone's config), export copies it into the
manifest, the app's decoder implements it with PIL + numpy (``app.engine.decode.preprocess_image``)
and compression's with torchvision (``compression.data.transforms.image_transform``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from formats.errors import FormatError

# The one resize rule every model here is trained with; a reader refuses any other.
RESIZE_POLICY = "shortest-side bicubic resize to image_size, then center crop image_size x image_size"


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a tensor; identical for teacher, student, export and app."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = RESIZE_POLICY

    def to_dict(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std), "resize": self.resize}

    @classmethod
    def from_dict(cls, d: Any, where: str = "preprocess") -> Preprocess:
        """From a checkpoint's ``meta["preprocess"]`` or a bundle manifest's ``image`` section.

        Raises FormatError (``where`` names the file and section) for missing or malformed values
        and for a resize rule other than :data:`RESIZE_POLICY`.
        """
        try:
            size, mean, std = int(d["image_size"]), tuple(map(float, d["mean"])), tuple(map(float, d["std"]))
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"{where}: needs image_size, mean and std ({e!r})") from e
        resize = d.get("resize", RESIZE_POLICY)
        if resize != RESIZE_POLICY:
            raise FormatError(f"{where}: unsupported resize policy {resize!r}; the readers implement {RESIZE_POLICY!r}")
        if len(mean) != 3 or len(std) != 3 or size <= 0:
            raise FormatError(f"{where}: image_size {size}, mean {mean}, std {std} are not a valid RGB preprocessing")
        return cls(size, mean, std)  # type: ignore[arg-type]
