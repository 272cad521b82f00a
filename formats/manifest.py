"""``manifest.json`` of an export bundle: read, checked for safety, verified against its sha256 table.

Layout of a bundle directory::

    manifest.json                          what the app needs to run the programs, sha256 of every file
    tokenizer.json                         kind, context length, special ids, cleaning rule, its file's name
    bpe_simple_vocab_16e6.txt.gz           open_clip's BPE merges (the vocabulary is derived from them), or
    vocab.txt                              a BERT WordPiece vocabulary (tokenizer.json kind "wordpiece")

The tokenizer's kinds and file names are ``formats.tokenizer_files``'s.
    student_image_<backend>_<precision>.<ext>
    student_text_<backend>_<precision>.<ext>

The writers (programs, tokenizer files copied from open_clip) need torch and live in ``export.bundle``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from formats.digest import sha256_file
from formats.errors import FormatError
from formats.jsonfile import read_json_object
from formats.tokenizer_files import (  # noqa: F401 - the tokenizer names are this module's public names too
    BPE,
    TOKENIZER_CONFIG,
    WORDPIECE,
    is_plain_name,
    tokenizer_kind,
    vocabulary_name,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_EMBED_DIM = 65536
MAX_CONTEXT = 8192  # tokens; CLIP-like text towers use 77 to a few hundred
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleError(FormatError):
    """A bundle that cannot be written, read or trusted; the message names the file or directory."""


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


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


_inside = is_plain_name  # a name that stays inside the bundle


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
        try:
            name = vocabulary_name(tokenizer_config)
        except FormatError as e:
            problems.append(str(e))
        else:
            if name not in files:
                what = "vocabulary" if tokenizer_kind(tokenizer_config) == WORDPIECE else "BPE"
                problems.append(f"tokenizer.json names {what} file {name!r}, which is not a file listed in the bundle")
    return problems


def load_manifest(bundle_dir: Path) -> dict[str, Any]:
    """manifest.json of a bundle, checked for its format version and the keys an app relies on."""
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise BundleError(f"bundle directory {bundle_dir} not found")
    path = bundle_dir / MANIFEST
    manifest = read_json_object(path, "bundle manifest", BundleError)
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
