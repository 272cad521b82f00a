"""The checkpoint an export reads: the student, its preprocessing and tokenizer, checked for consistency."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from compression.checkpoint import STUDENT_CONFIG, STUDENT_WEIGHTS, CheckpointError, load_student
from compression.models.teacher import Preprocess
from export.benchmark import preprocess_from_meta
from formats.digest import sha256_file

logger = logging.getLogger(__name__)

DEFAULT_RUN_DIR = Path("runs") / "offline"  # what `python -m compression.run` writes with no arguments


@dataclass
class ExportSource:
    """A loaded student checkpoint and the facts every exporter needs from it."""

    run_dir: Path
    student: nn.Module  # StudentCLIP in eval mode
    meta: dict[str, Any]  # student.json
    preprocess: Preprocess
    context_length: int
    vocab_size: int
    embedding_dim: int

    @property
    def eot_id(self) -> int:
        return self.vocab_size - 1  # open_clip: <end_of_text> is the highest id

    def manifest_section(self) -> dict[str, Any]:
        """``manifest["source"]``: which checkpoint, byte for byte, the bundle was made from."""
        return {
            "checkpoint": str(self.run_dir.resolve()),
            "weights_sha256": sha256_file(self.run_dir / STUDENT_WEIGHTS),
            "teacher": self.meta.get("teacher"),
            "student_spec": self.meta.get("spec"),
            "student_metrics": self.meta.get("metrics"),
        }

    def tower_sizes_mb(self) -> dict[str, float] | None:
        """Disk MB (fp32 safetensors) of each tower, e.g. ``teacher_image``, from the run's metrics.json."""
        path = self.run_dir / "metrics.json"
        try:
            sizes = json.loads(path.read_text())["sizes"]
            return {name: float(v["disk_mb"]) for name, v in sizes.items()}
        except (OSError, ValueError, KeyError, TypeError):
            return None


def load_export_source(run_dir: Path) -> ExportSource:
    """Load ``run_dir``'s student and check that its JSON describes it; errors name the file."""
    run_dir = Path(run_dir)
    if run_dir.is_dir() and not (run_dir / STUDENT_CONFIG).is_file():
        raise CheckpointError(
            f"{run_dir / STUDENT_CONFIG} not found: {run_dir} holds no finished student yet "
            f"(a run writes it after its last phase; run or resume `python -m compression.run`)"
        )
    student, meta = load_student(run_dir)
    cfg_path = run_dir / STUDENT_CONFIG
    pre = preprocess_from_meta(meta)
    tok = meta.get("tokenizer") or {}
    ctx = tok.get("context_length")
    text = student.text
    if ctx != text.context_length:
        raise CheckpointError(
            f"{cfg_path}: tokenizer.context_length {ctx!r} differs from the text encoder's {text.context_length}"
        )
    spec_size = (meta["spec"]["image"].get("kwargs") or {}).get("img_size")
    if spec_size is not None and int(spec_size) != pre.image_size:
        raise CheckpointError(
            f"{cfg_path}: preprocess.image_size {pre.image_size} differs from the backbone's img_size {spec_size}"
        )
    logger.info(
        "loaded student from %s (embedding %d, image %d, context %d)",
        run_dir,
        text.arch["embed_dim"],
        pre.image_size,
        ctx,
    )
    return ExportSource(
        run_dir=run_dir,
        student=student,
        meta=meta,
        preprocess=pre,
        context_length=int(ctx),
        vocab_size=int(text.arch["vocab_size"]),
        embedding_dim=int(text.arch["embed_dim"]),
    )
