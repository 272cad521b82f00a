"""What every bundle runtime reads from a verified export bundle: preprocessing, tokenizer, sizes, identity.

The bundle format (manifest.json with sha256 of every file, tokenizer.json + its vocabulary file, one program
per encoder) is defined by ``formats.manifest``; this module reuses its readers.
"""
from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.engine.decode import ImagePreprocess
from app.engine.runtimes.base import ModelLoadError
from app.engine.tokenizer import QueryTokenizer, tokenizer_from_files
from formats.manifest import (  # noqa: F401 - MAX_* and manifest_problems are this module's public names too
    MAX_CONTEXT,
    MAX_EMBED_DIM,
    TOKENIZER_CONFIG,
    BundleError,
    _whole,
    load_manifest,
    manifest_problems,
    text_input_length,
    verify_bundle,
)

logger = logging.getLogger(__name__)

@dataclass
class BundleInfo:
    """A bundle whose files matched their sha256, and the facts its runtimes need."""

    root: Path
    manifest: dict[str, Any]
    preprocess: ImagePreprocess
    tokenizer: QueryTokenizer
    embed_dim: int
    model_id: str
    image_program: Path
    text_program: Path
    image_batch: int | None  # fixed batch size of the image program, None if any

    def text_length(self, actual: int) -> int:
        """Token count to feed the text program for a sequence of ``actual`` ids (pads with 0s)."""
        try:
            return text_input_length(actual, self.manifest["text"]["lengths"])
        except BundleError as e:
            raise ModelLoadError(str(e)) from e

    def fit_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """(1, L) ids cut after EOT -> (1, L') at the length the program accepts (zero padded)."""
        length = self.text_length(tokens.shape[1])
        out = np.zeros((tokens.shape[0], length), dtype=np.int64)
        out[:, : min(length, tokens.shape[1])] = tokens[:, :length]
        return out


def read_bundle(root: str | Path, verify: bool = True) -> BundleInfo:
    """Load manifest.json and (``verify``) check every file against its sha256. Raises ModelLoadError."""
    root = Path(root)
    where = root / "manifest.json"
    try:  # the shape of every value first: formats.manifest's reader trusts it
        raw = json.loads(where.read_text())
    except (OSError, ValueError):
        raw = None  # load_manifest names what is wrong with the file
    try:
        tokenizer_config = json.loads((root / TOKENIZER_CONFIG).read_text()) if raw is not None else None
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{root / TOKENIZER_CONFIG} cannot be read: {e}") from e
    problems = manifest_problems(raw, tokenizer_config) if raw is not None else []
    if problems:
        raise ModelLoadError(f"{where}: " + "; ".join(problems))
    try:
        manifest = verify_bundle(root) if verify else load_manifest(root)
    except BundleError as e:
        raise ModelLoadError(str(e)) from e
    image, text = manifest["image"], manifest["text"]
    try:
        preprocess = ImagePreprocess.from_dict(manifest.get("preprocess") or image, f"{where}: image")
        ctx = int(text.get("context_length") or manifest["tokenizer"]["context_length"])
        tokenizer = tokenizer_from_files(root, tokenizer_config, ctx, manifest["tokenizer"])  # torch-free
    except (ValueError, KeyError, TypeError, OSError, EOFError, zlib.error) as e:  # e.g. a BPE file not gzip
        raise ModelLoadError(f"{where}: cannot build preprocessing/tokenizer: {e}") from e
    source = manifest.get("source") or {}
    weights = (source.get("weights_sha256") if isinstance(source, dict) else None) or \
        manifest["files"].get(image["program"], {}).get("sha256", "")
    if not isinstance(weights, str):
        raise ModelLoadError(f"{where}: source.weights_sha256 {weights!r} is not a hash")
    if not weights:
        raise ModelLoadError(f"{where}: neither source.weights_sha256 nor the image program's sha256 is recorded")
    shape = (image.get("input") or {}).get("shape") if isinstance(image.get("input"), dict) else None
    batch = shape[0] if isinstance(shape, list) and shape else None
    return BundleInfo(
        root=root, manifest=manifest, preprocess=preprocess, tokenizer=tokenizer,
        embed_dim=int(manifest["embedding_dim"]), model_id=f"{weights[:16]}-{manifest['precision']}",
        image_program=root / image["program"], text_program=root / text["program"],
        image_batch=batch if _whole(batch, 1, 4096) else None,
    )


def batches_for(pixels: np.ndarray, fixed: int | None):
    """Split (B, 3, S, S) into the program's fixed batch size, zero-padding the last: yields (chunk, n_real)."""
    if fixed is None:
        yield pixels, len(pixels)
        return
    for s in range(0, len(pixels), fixed):
        chunk = pixels[s : s + fixed]
        n = len(chunk)
        if n < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - n, *chunk.shape[1:]), dtype=chunk.dtype)])
        yield np.ascontiguousarray(chunk, dtype=np.float32), n
