"""What the settings screen says about the model: read from the bundle's manifest.json or the run's student.json.

No Kivy and no model loading: only the JSON files next to the weights are read, so the
settings screen can describe a model even while it is still loading.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from formats.errors import FormatError
from formats.jsonfile import read_json_object
from formats.model_dir import RUN, ModelNotFoundError, resolve_model
from formats.run_card import RUN_CARD, STUDENT_WEIGHTS, card_embed_dim

logger = logging.getLogger(__name__)


class ModelInfoError(FormatError):
    """A model folder whose manifest.json / student.json is missing or unreadable; names the file."""


@dataclass(frozen=True)
class ModelInfo:
    """The facts a person may want about the model: where it is, what runs it, how good it is."""

    path: str
    kind: str  # "bundle" or "run directory"
    backend: str  # "executorch-xnnpack", "coreml" or "torch"
    precision: str
    embed_dim: int
    image_size: int
    teacher: str
    megabytes: float  # of the weights / programs
    created: str = ""
    recall: dict[str, float] = field(default_factory=dict)  # t2i_R@1 ... as the pipeline measured them

    def lines(self) -> list[str]:
        """Human-readable lines, one fact each."""
        out = [
            f"Model: {self.path} ({self.kind})",
            f"Runtime: {self.backend}, {self.precision}, {self.megabytes:.1f} MB",
            f"Embedding: {self.embed_dim}-d; images {self.image_size}x{self.image_size} px",
        ]
        if self.teacher:
            out.append(f"Distilled from: {self.teacher}")
        if self.created:
            out.append(f"Exported: {self.created}")
        if self.recall:
            keys = [k for k in ("t2i_R@1", "t2i_R@5", "t2i_R@10") if k in self.recall]
            if keys:
                out.append("Text->image recall (test split): "
                           + ", ".join(f"{k.split('_')[1]} {self.recall[k]:.1f}%" for k in keys))
        return out


def _read_json(path: Path) -> dict[str, Any]:
    return read_json_object(path, path.name, ModelInfoError)


def _bundle_info(root: Path) -> ModelInfo:
    m = _read_json(root / "manifest.json")
    try:
        files = m.get("files", {})
        programs = [m["image"]["program"], m["text"]["program"]]
        source = m.get("source") or {}
        parity = m.get("parity") or {}
        return ModelInfo(
            path=str(root), kind="bundle", backend=str(m["backend"]), precision=str(m.get("precision", "?")),
            embed_dim=int(m["embedding_dim"]), image_size=int(m["image"]["image_size"]),
            teacher=str(source.get("teacher", "")),
            megabytes=sum(int(files.get(p, {}).get("bytes", 0)) for p in programs) / 1e6,
            created=str(m.get("created", "")),
            recall=dict(parity.get("recall_exported") or source.get("student_metrics") or {}),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ModelInfoError(f"{root / 'manifest.json'}: missing or malformed field ({e!r})") from e


def _run_info(root: Path) -> ModelInfo:
    meta = _read_json(root / RUN_CARD)
    weights = root / STUDENT_WEIGHTS
    try:
        return ModelInfo(
            path=str(root), kind="run directory", backend="torch", precision="fp32",
            embed_dim=card_embed_dim(meta), image_size=int(meta["preprocess"]["image_size"]),
            teacher=str(meta.get("teacher", "")),
            megabytes=weights.stat().st_size / 1e6 if weights.is_file() else 0.0,
            recall=dict(meta.get("metrics") or {}),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ModelInfoError(f"{root / RUN_CARD}: missing or malformed field ({e!r})") from e


def read_model_info(path: str | Path) -> ModelInfo:
    """Describe the model at ``path``: a bundle, a run directory, or a folder of bundles (the one the
    engine opens first here, ``formats.model_dir.resolve_model``)."""
    try:
        model = resolve_model(path)
    except ModelNotFoundError as e:
        raise ModelInfoError(str(e)) from e
    return _run_info(model.root) if model.kind == RUN else _bundle_info(model.root)


def is_model_dir(path: str | Path) -> bool:
    """True when ``path`` looks like something ``load_encoders`` can open."""
    try:
        resolve_model(path)
    except ModelNotFoundError:
        return False
    return True
