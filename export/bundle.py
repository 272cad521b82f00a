"""A model bundle on disk: programs + tokenizer files + manifest.json, written aside and swapped in.

Layout of a bundle directory::

    manifest.json                          what the app needs to run the programs, sha256 of every file
    tokenizer.json                         context length, special ids, cleaning rule, BPE file name
    bpe_simple_vocab_16e6.txt.gz           open_clip's BPE merges (the vocabulary is derived from them)
    student_image_<backend>_<precision>.<ext>
    student_text_<backend>_<precision>.<ext>

``load_manifest`` / ``verify_bundle`` / ``text_input_length`` / ``load_tokenizer`` are the pieces an
app reuses to open a bundle.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
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

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER_CONFIG = "tokenizer.json"
LIBRARIES = ("torch", "executorch", "coremltools", "torchao", "onnx", "onnxruntime", "onnxscript", "open_clip_torch",
             "timm", "numpy")


class BundleError(ValueError):
    """A bundle that cannot be written, read or trusted; the message names the file or directory."""


# ------------------------------------------------------------------------------------------------
# files and hashes
# ------------------------------------------------------------------------------------------------


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of one file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def bundle_files(root: Path) -> list[str]:
    """Every regular file under ``root`` except the manifest, as sorted POSIX paths relative to it.

    A Core ML ``.mlpackage`` is a directory: each file inside it is listed on its own.
    """
    root = Path(root)
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return sorted(f for f in files if f != MANIFEST)


def file_table(root: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256": hex, "bytes": size}}`` for every file of the bundle."""
    root = Path(root)
    return {
        rel: {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size}
        for rel in bundle_files(root)
    }


def path_bytes(path: Path) -> int:
    """Size of a file, or the total size of the files in a directory (an ``.mlpackage``)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


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


def write_tokenizer_files(tokenizer_meta: dict[str, Any], dest: Path) -> dict[str, Any]:
    """Copy the BPE merges of the checkpoint's tokenizer into ``dest`` and write ``tokenizer.json``.

    ``tokenizer_meta`` is the checkpoint's ``student.json["tokenizer"]`` ({kind, model,
    context_length}). Only open_clip's byte-level BPE ``SimpleTokenizer`` is supported (CLIP and
    the offline default use it). Returns the manifest's ``tokenizer`` section.
    """
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    from compression.models.teacher import build_tokenizer

    kind, model, ctx = (
        tokenizer_meta.get("kind"),
        tokenizer_meta.get("model"),
        tokenizer_meta.get("context_length"),
    )
    if kind != "open_clip" or not model or not ctx:
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
    bpe_src = Path(default_bpe())
    shutil.copyfile(bpe_src, Path(dest) / bpe_src.name)
    clean = {
        "_clean_lower": "lower",
        "_clean_whitespace": "whitespace",
        "_clean_canonicalize": "canonicalize",
    }
    config = {
        "kind": "open_clip.SimpleTokenizer",
        "model": model,
        "bpe_file": bpe_src.name,
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
        "bpe": bpe_src.name,
        "context_length": int(ctx),
        "sot_token_id": tok.sot_token_id,
        "eot_token_id": tok.eot_token_id,
        "vocab_size": tok.vocab_size,
    }


def load_tokenizer(bundle_dir: Path):
    """open_clip SimpleTokenizer built from the bundle's own files: list[str] -> (B, context) int64."""
    from open_clip.tokenizer import SimpleTokenizer

    bundle_dir = Path(bundle_dir)
    config = _read_json(bundle_dir / TOKENIZER_CONFIG, "tokenizer config")
    bpe = bundle_dir / config["bpe_file"]
    if not bpe.is_file():
        raise BundleError(f"tokenizer BPE file {bpe} not found")
    return SimpleTokenizer(
        bpe_path=str(bpe), context_length=config["context_length"], clean=config.get("clean", "lower")
    )


# ------------------------------------------------------------------------------------------------
# text lengths
# ------------------------------------------------------------------------------------------------


def text_input_length(actual: int, lengths: dict[str, Any]) -> int:
    """How many token ids to feed the text program for a sequence whose EOT is at ``actual - 1``.

    ``lengths`` is ``manifest["text"]["lengths"]``: ``{"kind": "range", "min", "max"}`` (feed the
    actual length, at least ``min``) or ``{"kind": "buckets", "values": [...]}`` (pad with zeros to
    the smallest bucket that holds it). Padding after EOT does not change the embedding.
    """
    kind = lengths.get("kind")
    if kind == "range":
        if actual > lengths["max"]:
            raise BundleError(
                f"token sequence of length {actual} exceeds the text program's maximum {lengths['max']}"
            )
        return max(actual, lengths["min"])
    if kind == "buckets":
        for b in sorted(lengths["values"]):
            if b >= actual:
                return b
        raise BundleError(
            f"token sequence of length {actual} exceeds the largest text bucket {max(lengths['values'])}"
        )
    raise BundleError(f"unknown text lengths kind {kind!r} in manifest (expected 'range' or 'buckets')")


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


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise BundleError(f"{what} {path} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{what} {path} is not valid JSON: {e}") from e


def load_manifest(bundle_dir: Path) -> dict[str, Any]:
    """manifest.json of a bundle, checked for its format version and the keys an app relies on."""
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise BundleError(f"bundle directory {bundle_dir} not found")
    path = bundle_dir / MANIFEST
    manifest = _read_json(path, "bundle manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path}: format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    for key in ("backend", "precision", "embedding_dim", "image", "text", "tokenizer", "files"):
        if key not in manifest:
            raise BundleError(f"{path}: missing key {key!r}")
    for enc in ("image", "text"):
        if "program" not in manifest[enc]:
            raise BundleError(f"{path}: missing key '{enc}.program'")
    return manifest


def verify_bundle(bundle_dir: Path) -> dict[str, Any]:
    """load_manifest + every listed file present with its recorded sha256; returns the manifest.

    Raises BundleError naming each missing or modified file. Files not in the manifest are logged.
    """
    bundle_dir = Path(bundle_dir)
    manifest = load_manifest(bundle_dir)
    problems = []
    for rel, info in manifest["files"].items():
        path = bundle_dir / rel
        if not path.is_file():
            problems.append(f"{rel} missing")
        elif path.stat().st_size != info["bytes"] or sha256_file(path) != info["sha256"]:
            problems.append(f"{rel} modified (sha256 differs from the manifest)")
    for enc in ("image", "text"):
        prog = manifest[enc]["program"]
        if not any(rel == prog or rel.startswith(prog + "/") for rel in manifest["files"]):
            problems.append(f"{enc} program {prog} not listed in the manifest's files")
    if problems:
        raise BundleError(f"bundle {bundle_dir} failed verification: " + "; ".join(problems))
    extra = sorted(set(bundle_files(bundle_dir)) - set(manifest["files"]))
    if extra:
        logger.warning("bundle %s has files not in its manifest (ignored): %s", bundle_dir, extra[:5])
    return manifest
