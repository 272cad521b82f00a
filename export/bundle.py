"""A model bundle on disk: programs + tokenizer files + manifest.json, written aside and swapped in.

The layout and the readers (``load_manifest``, ``verify_bundle``, ``text_input_length``) are the
format's own and live in ``formats.manifest`` (torch-free, shipped to phones); they are re-exported
here for the exporters. This module keeps the writers, which need torch and open_clip.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from formats.digest import sha256_file
from formats.errors import FormatError
from formats.jsonfile import read_json_object
from formats.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    TOKENIZER_CONFIG,
    BundleError,
    bundle_files,
    file_table,
    load_manifest,
    path_bytes,
    text_input_length,
    verify_bundle,
)
from formats.run_card import OPEN_CLIP_TOKENIZER, STUDENT_WEIGHTS, read_run_card
from formats.tokenizer_files import BPE, BPE_FILE, FILE_KEY, tokenizer_files

__all__ = [
    "FORMAT_VERSION", "MANIFEST", "TOKENIZER_CONFIG", "BundleError", "bundle_files", "check_destination",
    "file_table", "library_versions", "load_manifest", "load_tokenizer", "path_bytes", "sha256_file",
    "staged_bundle", "text_input_length", "utc_now", "verify_bundle", "write_manifest", "write_tokenizer_files",
]

logger = logging.getLogger(__name__)

LIBRARIES = ("torch", "executorch", "coremltools", "torchao", "onnx", "onnxruntime", "onnxscript", "open_clip_torch",
             "timm", "numpy")


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries that made (and must run) the programs, plus Python's."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


# ------------------------------------------------------------------------------------------------
# tokenizer files
# ------------------------------------------------------------------------------------------------


def write_tokenizer_files(tokenizer_meta: dict[str, Any], dest: Path, run_dir: Path | None = None) -> dict[str, Any]:
    """Copy the BPE merges of the checkpoint's tokenizer into ``dest`` and write ``tokenizer.json``.

    ``tokenizer_meta`` is the checkpoint's ``student.json["tokenizer"]`` ({kind, model,
    context_length, bpe_file}). Only open_clip's byte-level BPE ``SimpleTokenizer`` is supported (CLIP
    and the offline default use it). The merges come from ``run_dir`` when its card names the file it
    carries (``formats.run_card``), else from open_clip (runs written before they carried it); either
    way the bundled files must reproduce open_clip's tokenizer id for id. Returns the manifest's
    ``tokenizer`` section.
    """
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    from compression.models.teacher import build_tokenizer

    kind, model, ctx = (
        tokenizer_meta.get("kind"),
        tokenizer_meta.get("model"),
        tokenizer_meta.get("context_length"),
    )
    if kind != OPEN_CLIP_TOKENIZER or not model or not ctx:
        raise BundleError(
            f"checkpoint tokenizer {tokenizer_meta!r}: expected kind 'open_clip' with model and context_length"
        )
    tok = build_tokenizer(model, ctx)
    if not isinstance(tok, SimpleTokenizer):
        raise BundleError(
            f"tokenizer of {model!r} is {type(tok).__name__}; only open_clip's SimpleTokenizer (BPE) can be bundled"
        )
    if tok.reduction_fn is not None:
        raise BundleError(
            f"tokenizer of {model!r} uses a reduction mask; the on-device tokenizer does not support it"
        )
    carried = read_run_card(run_dir).tokenizer_files() if run_dir is not None else None
    shutil.copyfile(carried.vocabulary if carried else default_bpe(), Path(dest) / BPE_FILE)
    clean = {
        "_clean_lower": "lower",
        "_clean_whitespace": "whitespace",
        "_clean_canonicalize": "canonicalize",
    }
    config = {
        "kind": "open_clip.SimpleTokenizer",
        "model": model,
        FILE_KEY[BPE]: BPE_FILE,
        "bpe_merges": "lines 1 .. 48894 of the file (the first line is a header), as open_clip reads them",
        "vocab_size": tok.vocab_size,
        "context_length": int(ctx),
        "sot_token_id": tok.sot_token_id,
        "eot_token_id": tok.eot_token_id,
        "pad_token_id": 0,
        "clean": clean.get(getattr(tok.clean_fn, "__name__", ""), "lower"),
        "clean_rule": "ftfy.fix_text, html.unescape twice, collapse whitespace, strip, then lowercase",
        "split_pattern": tok.pat.pattern,
        "split_flags": "IGNORECASE",
        "truncate": "keep the first context_length ids and set the last one to eot_token_id",
    }
    (Path(dest) / TOKENIZER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    probe = ["A Red circle  &amp; two BLUE squares!", "", "x " * (2 * int(ctx))]
    if not (load_tokenizer(dest)(probe) == tok(probe)).all():
        raise BundleError(
            f"the bundled tokenizer files in {dest} do not reproduce the tokenizer of {model!r}"
        )
    return {
        "config": TOKENIZER_CONFIG,
        "bpe": BPE_FILE,
        "context_length": int(ctx),
        "sot_token_id": tok.sot_token_id,
        "eot_token_id": tok.eot_token_id,
        "vocab_size": tok.vocab_size,
    }


def load_tokenizer(bundle_dir: Path):
    """open_clip SimpleTokenizer built from the bundle's own files: list[str] -> (B, context) int64."""
    from open_clip.tokenizer import SimpleTokenizer

    bundle_dir = Path(bundle_dir)
    config = read_json_object(bundle_dir / TOKENIZER_CONFIG, "tokenizer config", BundleError)
    try:
        bpe = tokenizer_files(bundle_dir, config, str(bundle_dir / TOKENIZER_CONFIG)).vocabulary
    except FormatError as e:
        raise BundleError(str(e)) from e
    return SimpleTokenizer(
        bpe_path=str(bpe), context_length=config["context_length"], clean=config.get("clean", "lower")
    )


# ------------------------------------------------------------------------------------------------
# writing: aside, then swapped in
# ------------------------------------------------------------------------------------------------


def check_destination(out_dir: Path) -> None:
    """Fail early, naming the path, if ``out_dir`` cannot receive a bundle.

    Its parent must be creatable and writable (the bundle is staged next to it); an existing
    ``out_dir`` must be a bundle (it has a manifest.json) or empty, so that a re-export never
    replaces a directory that is something else.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BundleError(f"output {out_dir} exists and is not a directory")
    if out_dir.is_dir() and not (out_dir / MANIFEST).is_file() and any(out_dir.iterdir()):
        raise BundleError(
            f"output {out_dir} exists, is not empty and is not a bundle (no {MANIFEST}); refusing to replace it"
        )
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BundleError(f"cannot create output directory {parent}: {e.strerror or e}") from e
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BundleError(f"output directory {parent} is not writable")


@contextlib.contextmanager
def staged_bundle(out_dir: Path) -> Iterator[Path]:
    """Yield a fresh sibling directory to write the bundle into; on success swap it in for ``out_dir``.

    The new bundle is complete (manifest written last) before anything at ``out_dir`` is touched;
    then the old bundle is renamed aside, the new one renamed into place, and the old one deleted.
    If the body raises, the staging directory is deleted and ``out_dir`` is left as it was.
    """
    out_dir = Path(out_dir)
    check_destination(out_dir)
    try:
        staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.new-"))
    except OSError as e:
        raise BundleError(f"cannot write into {out_dir.parent}: {e.strerror or e}") from e
    try:
        yield staging
        if not (staging / MANIFEST).is_file():
            raise BundleError(f"internal error: staged bundle {staging} has no {MANIFEST}")
        staging.chmod(0o755)
        _swap_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-"))
        os.rename(out_dir, old / out_dir.name)
    try:
        os.rename(staging, out_dir)
    except OSError:
        if old is not None:  # put the previous bundle back
            os.rename(old / out_dir.name, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    logger.info("bundle written to %s", out_dir)


def write_manifest(staging: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Add ``format_version``, ``created``, ``versions`` and the sha256 table; write manifest.json last."""
    staging = Path(staging)
    full = {"format_version": FORMAT_VERSION, "created": utc_now(), **manifest}
    full.setdefault("versions", library_versions())
    full["files"] = file_table(staging)
    (staging / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    return full


def check_weights(bundle_dir: Path, manifest: dict, run_dir: Path) -> None:
    """BundleError when the manifest's ``source.weights_sha256`` is not the run's student.safetensors."""
    want = (manifest.get("source") or {}).get("weights_sha256")
    path = Path(run_dir) / STUDENT_WEIGHTS
    try:
        have = sha256_file(path)
    except OSError as e:
        raise BundleError(f"{path}: cannot read the run's weights: {e}") from e
    if want and want != have:
        raise BundleError(
            f"bundle {bundle_dir} was made from other weights than {run_dir} (source.weights_sha256 "
            f"{want[:12]} in {Path(bundle_dir) / 'manifest.json'}, {have[:12]} for {path}); pass the right --checkpoint"
        )
