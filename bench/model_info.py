"""The model a benchmark run measures (read from a run directory or bundle), and a store filled for it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Imports of torch, numpy and the project's packages stay inside functions: a child process that
# measures a cold start imports this module first, and must not pay for them before it starts timing.


@dataclass(frozen=True)
class ModelInfo:
    """What ``--model`` is, read from its JSON without loading any weights."""

    path: Path
    kind: str  # "run" (a compression run directory, PyTorch) or "bundle" (an export bundle)
    backend: str  # "torch", or the bundle manifest's backend ("executorch-xnnpack", "coreml")
    precision: str  # "fp32" for a run directory; the manifest's precision for a bundle
    embed_dim: int
    image_size: int
    run_dir: Path | None  # the run whose metrics.json describes the model (a bundle's source), if present


def _json_key(path: Path, *keys: str) -> Any:
    from formats.jsonfile import read_json_object

    value: Any = read_json_object(path, path.name)  # FormatError (a ValueError) naming the file
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"{path} has no {'.'.join(keys)}")
        value = value[key]
    return value


def read_model_info(path: str | Path) -> ModelInfo:
    """Facts of a run directory (student.json) or one export bundle (manifest.json). Raises ValueError
    naming the file and key when ``path`` is neither or lacks what is needed."""
    from formats.model_dir import BUNDLES, RUN, resolve_model
    from formats.run_card import RUN_CARD

    model = resolve_model(path)  # ModelNotFoundError (a ValueError) when it is neither
    path = model.path
    if model.kind == BUNDLES:
        raise ValueError(f"{path} is a folder of bundles: pass one of them to --model (e.g. {model.root})")
    if model.kind == RUN:
        student = path / RUN_CARD
        return ModelInfo(
            path,
            "run",
            "torch",
            "fp32",
            int(_json_key(student, "spec", "embed_dim")),
            int(_json_key(student, "preprocess", "image_size")),
            path,
        )
    manifest = path / "manifest.json"
    source = Path(str((_json_key(manifest, "source") or {}).get("checkpoint") or ""))
    run_dir = source if source.parts and (source / "metrics.json").is_file() else None
    return ModelInfo(
        path,
        "bundle",
        str(_json_key(manifest, "backend")),
        str(_json_key(manifest, "precision")),
        int(_json_key(manifest, "embedding_dim")),
        int(_json_key(manifest, "image", "image_size")),
        run_dir,
    )


def fill_store(
    data_dir: Path, model_id: str, embeddings: Any, paths: Sequence[str], batch: int = 256
) -> None:
    """A store in ``data_dir`` holding ``embeddings`` (N, D) for ``paths`` as if indexed, written directly
    through ``EmbeddingStore`` (apply_plan + commit_batch a batch at a time), without encoding anything."""
    import hashlib

    from app.engine.scanner import ScannedFile, ScanPlan
    from app.engine.store import EmbeddingStore, IndexedPhoto

    if len(paths) != len(embeddings):
        raise ValueError(f"{len(paths)} paths for {len(embeddings)} embeddings")
    files = [ScannedFile(str(p), 3_000_000 + i, 1_700_000_000_000_000_000 + i) for i, p in enumerate(paths)]
    with EmbeddingStore(data_dir) as store:
        store.bind_model(model_id, int(embeddings.shape[1]))
        store.apply_plan(ScanPlan(new=files))
        ids = [row[0] for row in store.pending_after(0, len(files))]
        for s in range(0, len(files), batch):
            store.commit_batch(
                [
                    IndexedPhoto(
                        i, e, f.size, f.mtime_ns, hashlib.blake2b(f.path.encode(), digest_size=16).digest()
                    )
                    for i, e, f in zip(ids[s : s + batch], embeddings[s : s + batch], files[s : s + batch])
                ]
            )
