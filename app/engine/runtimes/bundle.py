"""What every bundle runtime reads from a verified export bundle: preprocessing, tokenizer, sizes, identity.

The bundle format (manifest.json with sha256 of every file, tokenizer.json + BPE file, one program
per encoder) is defined by ``export/bundle.py``; this module reuses its readers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.engine.bpe import BpeTokenizer
from app.engine.decode import ImagePreprocess
from app.engine.runtimes.base import ModelLoadError
from app.engine.tokenizer import QueryTokenizer

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
        from export.bundle import BundleError, text_input_length

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
    from export.bundle import BundleError, load_manifest, verify_bundle

    root = Path(root)
    try:
        manifest = verify_bundle(root) if verify else load_manifest(root)
    except BundleError as e:
        raise ModelLoadError(str(e)) from e
    where = root / "manifest.json"
    image, text = manifest["image"], manifest["text"]
    try:
        preprocess = ImagePreprocess.from_dict(manifest.get("preprocess") or image, f"{where}: image")
        ctx = int(text.get("context_length") or manifest["tokenizer"]["context_length"])
        tokenizer = QueryTokenizer(BpeTokenizer.from_bundle(root), ctx, manifest["tokenizer"])  # torch-free
    except (ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{where}: cannot build preprocessing/tokenizer: {e}") from e
    source = manifest.get("source") or {}
    weights = source.get("weights_sha256") or manifest["files"].get(image["program"], {}).get("sha256", "")
    if not weights:
        raise ModelLoadError(f"{where}: neither source.weights_sha256 nor the image program's sha256 is recorded")
    batch = (image.get("input") or {}).get("shape", [1])[0]
    return BundleInfo(
        root=root, manifest=manifest, preprocess=preprocess, tokenizer=tokenizer,
        embed_dim=int(manifest["embedding_dim"]), model_id=f"{weights[:16]}-{manifest['precision']}",
        image_program=root / image["program"], text_program=root / text["program"],
        image_batch=batch if isinstance(batch, int) else None,
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
