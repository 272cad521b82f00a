"""The readers' image checks remembered across restarts: a run resumed over CC3M's ~3M images does not
open every header again.

The results of one check over a list of paths are stored under a key made of the paths and each
file's size and modification time (one ``stat`` per file, no ``open``), so a file that is replaced,
grown or cut short is checked again; a changed list is a new key. Only the skip reasons are stored
(most files have none), so the file stays small.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from formats.atomic import atomic_write_json

logger = logging.getLogger(__name__)

CHECK_VERSION = 2  # bump when what a check looks at changes (2: truncated JPEG/PNG endings)


def _fingerprint(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256(f"v{CHECK_VERSION}".encode())
    for p in paths:
        try:
            st = os.stat(p)
            digest.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{p}\0missing\n".encode())
    return digest.hexdigest()[:32]


def cached_checks(
    paths: Sequence[Path], check: Callable[[Sequence[Path]], list[str | None]], cache_dir: Path | None
) -> list[str | None]:
    """``check(paths)``, or its stored result when the same files were checked before under ``cache_dir``."""
    if cache_dir is None or not paths:
        return check(paths)
    file = Path(cache_dir) / f"{_fingerprint(paths)}.json"
    if file.is_file():
        try:
            stored = json.loads(file.read_text())
            if stored.get("n") == len(paths):
                logger.info("image checks of %d files reused from %s", len(paths), file)
                reasons: list[str | None] = [None] * len(paths)
                for i, reason in stored["skipped"].items():
                    reasons[int(i)] = reason
                return reasons
        except (OSError, ValueError, KeyError, AttributeError):
            logger.warning("ignoring unreadable image-check cache %s", file)
    reasons = check(paths)
    atomic_write_json(file, {"n": len(paths), "skipped": {str(i): r for i, r in enumerate(reasons) if r is not None}})
    return reasons
