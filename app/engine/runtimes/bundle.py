"""What every bundle runtime reads from a verified export bundle: preprocessing, tokenizer, sizes, identity.

The bundle format (manifest.json with sha256 of every file, tokenizer.json + BPE file, one program
per encoder) is defined by ``export/bundle.py``; this module reuses its readers.
"""
from __future__ import annotations

import json
import logging
import re
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from app.engine.bpe import BpeTokenizer
from app.engine.decode import ImagePreprocess
from app.engine.runtimes.base import ModelLoadError
from app.engine.tokenizer import QueryTokenizer

logger = logging.getLogger(__name__)

MAX_EMBED_DIM = 65536
MAX_CONTEXT = 8192  # tokens; CLIP-like text towers use 77 to a few hundred
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _inside(rel: Any) -> bool:
    """A name that stays inside the bundle: relative, POSIX, no '..', no empty or odd parts."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\0" in rel:
        return False
    parts = PurePosixPath(rel).parts
    return not rel.startswith("/") and all(p not in ("..", ".", "") for p in parts) and ":" not in parts[0]


def manifest_problems(manifest: Any, tokenizer_config: Any = None) -> list[str]:
    """What makes a manifest unsafe or unusable before any file it names is opened: every file
    name must stay inside the bundle, hashes and sizes must be well formed, sizes sane."""
    if not isinstance(manifest, dict):
        return [f"the manifest is a {type(manifest).__name__}, not an object"]
    problems = []
    files = manifest.get("files")
    if not isinstance(files, dict):
        problems.append(f"files is a {type(files).__name__}, not an object of name -> {{sha256, bytes}}")
        files = {}
    for rel, info in files.items():
        if not _inside(rel):
            problems.append(f"file name {rel!r} leads outside the bundle")
        elif not (isinstance(info, dict) and isinstance(info.get("sha256"), str) and _SHA256.fullmatch(info["sha256"])
                  and _whole(info.get("bytes"), 0, 1 << 40)):
            problems.append(f"file {rel!r} needs a sha256 (64 hex digits) and a size in bytes")
    for enc in ("image", "text"):
        section = manifest.get(enc)
        if not isinstance(section, dict) or not _inside(section.get("program")):
            problems.append(f"{enc}.program must name a file inside the bundle")
    if not _whole(manifest.get("embedding_dim"), 1, MAX_EMBED_DIM):
        problems.append(f"embedding_dim {manifest.get('embedding_dim')!r} is not a whole number from 1 to "
                        f"{MAX_EMBED_DIM}")
    text = manifest.get("text") if isinstance(manifest.get("text"), dict) else {}
    tokenizer = manifest.get("tokenizer") if isinstance(manifest.get("tokenizer"), dict) else {}
    ctx = text.get("context_length") or tokenizer.get("context_length")
    if not _whole(ctx, 2, MAX_CONTEXT):
        problems.append(f"context_length {ctx!r} is not a whole number from 2 to {MAX_CONTEXT}")
    if not isinstance(manifest.get("precision"), str):
        problems.append(f"precision {manifest.get('precision')!r} is not a name")
    if tokenizer_config is not None:
        bpe = tokenizer_config.get("bpe_file") if isinstance(tokenizer_config, dict) else None
        if not _inside(bpe) or bpe not in files:
            problems.append(f"tokenizer.json names BPE file {bpe!r}, which is not a file listed in the bundle")
    return problems


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
    where = root / "manifest.json"
    try:  # the shape of every value first: export.bundle's reader trusts it
        raw = json.loads(where.read_text())
    except (OSError, ValueError):
        raw = None  # load_manifest names what is wrong with the file
    try:
        tokenizer_config = json.loads((root / "tokenizer.json").read_text()) if raw is not None else None
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{root / 'tokenizer.json'} cannot be read: {e}") from e
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
        tokenizer = QueryTokenizer(BpeTokenizer.from_bundle(root), ctx, manifest["tokenizer"])  # torch-free
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
