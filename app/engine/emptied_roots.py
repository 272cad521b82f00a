"""A gallery root that is listable but holds no photo any more, while the index has photos under it.

On a phone that is what a permission change looks like (Android 14's partial access narrowed, photo
access revoked while the app runs, storage not mounted yet): the folder can still be listed, but
shows nothing. Read as "every photo was deleted", it would wipe the index; the scan keeps those
photos instead, as it does for a root it cannot list at all. Deleted photos never appear in results
anyway (search checks that each file exists), and they leave the index once the folder lists a
photo again or leaves the galleries.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable

logger = logging.getLogger(__name__)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def emptied_roots(roots: Iterable[str], found: Iterable[str], known: Iterable[str], unavailable: Iterable[str] = ()) -> list[str]:
    """Roots (absolute) under which the walk ``found`` no file while ``known`` (indexed paths) has some;
    roots already ``unavailable`` (not listable) are left out."""
    skip, found, known = set(unavailable), list(found), list(known)
    candidates = [r for r in roots if r not in skip]
    seen = {r for r in candidates if any(_under(p, r) for p in found)}
    return [r for r in candidates if r not in seen and any(_under(p, r) for p in known)]
