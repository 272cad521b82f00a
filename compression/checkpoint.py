"""Self-describing checkpoints, written atomically: weights (safetensors) + the JSON needed to rebuild."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from formats.atomic import atomic_path, atomic_write_bytes, atomic_write_json  # noqa: F401 - re-exported
from formats.errors import FormatError
from formats.jsonfile import read_json_object
from formats.run_card import (  # the run directory's file names are formats.run_card's
    CLIP_STUDENT,
    FORMAT_VERSION,
    SPEC,
    STUDENT_WEIGHTS,
    TEACHER_WEIGHTS,  # noqa: F401 (re-exported: pipeline, app.desktop.rerank)
    VERSION,
    read_run_card,
)
from formats.run_card import RUN_CARD as STUDENT_CONFIG
from formats.run_card import TEACHER_CARD as TEACHER_CONFIG  # noqa: F401 (re-exported)


class CheckpointError(FormatError):
    """A checkpoint that is missing, incomplete or does not fit the model; names the file."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save(obj)`` written aside then renamed over ``path``."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_weights(module: nn.Module, path: Path) -> None:
    """safetensors of ``module.state_dict()``, written aside then renamed."""
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, tmp)


def link_or_save(module: nn.Module, written: Path | None, path: Path) -> None:
    """``save_weights(module, path)``, or a hard link to ``written`` when that file already holds exactly
    these weights (a phase's result): no second copy of a 600 MB teacher written, nothing half-written."""
    path = Path(path)
    if written is None or not Path(written).is_file():
        save_weights(module, path)
        return
    tmp = path.with_name(f".{path.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(written, tmp)
    except OSError:  # a filesystem without hard links
        save_weights(module, path)
        return
    os.replace(tmp, path)


def _stored_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file, from its header (no tensor data is read)."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint weights {path} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - safe_open is no dict
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise CheckpointError(f"cannot read checkpoint weights {path}: {e}") from e


def check_weights_fit(shapes: dict[str, tuple[int, ...]], path: Path) -> None:
    """Raise CheckpointError naming the file unless its tensors are exactly ``shapes`` (name -> shape)."""
    stored = _stored_shapes(Path(path))
    missing = sorted(set(shapes) - set(stored))
    unexpected = sorted(set(stored) - set(shapes))
    mismatched = [f"{k} {stored[k]} (model: {shapes[k]})" for k in shapes if k in stored and stored[k] != shapes[k]]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"{path} does not fit the model: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}, shape mismatches {mismatched[:3]}"
        )


def load_weights(module: nn.Module, path: Path) -> None:
    """Load safetensors into ``module`` strictly; mismatches raise CheckpointError naming the file."""
    path = Path(path)
    check_weights_fit({k: tuple(v.shape) for k, v in module.state_dict().items()}, path)
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types (see _stored_shapes)
        raise CheckpointError(f"cannot read checkpoint weights {path}: {e}") from e
    module.load_state_dict(state)


def read_json(path: Path, what: str) -> dict[str, Any]:
    return read_json_object(path, what, CheckpointError)


def save_student(student: nn.Module, run_dir: Path, extra: dict[str, Any], written: Path | None = None) -> None:
    """run_dir/student.safetensors + run_dir/student.json (spec, preprocess, tokenizer, ...).
    ``written``: a file that already holds these weights (linked instead of written again)."""
    link_or_save(student, written, Path(run_dir) / STUDENT_WEIGHTS)
    atomic_write_json(Path(run_dir) / STUDENT_CONFIG, {VERSION: FORMAT_VERSION, SPEC: student.spec, **extra})


def load_student(run_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a StudentCLIP from a run directory alone; returns (model in eval mode, its JSON)."""
    from compression.models.student import StudentCLIP

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} not found (run `python -m compression.run` first)")
    card = read_run_card(run_dir, CheckpointError)
    if card.kind != CLIP_STUDENT:
        raise CheckpointError(f"{card.path}: a {card.kind} (load it with compression.models.assembled_student)")
    meta = card.data
    try:
        # first without memory (meta device): a spec that does not fit the weights (a damaged or
        # hand-edited student.json, e.g. embed_dim 1e9) is refused before anything is allocated
        with torch.device("meta"):
            probe = StudentCLIP(meta["spec"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{run_dir / STUDENT_CONFIG}: incomplete or invalid student spec ({e!r})") from e
    check_weights_fit({k: tuple(v.shape) for k, v in probe.state_dict().items()}, run_dir / STUDENT_WEIGHTS)
    student = StudentCLIP(meta["spec"])
    load_weights(student, run_dir / STUDENT_WEIGHTS)
    return student.eval(), meta
