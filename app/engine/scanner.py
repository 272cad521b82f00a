"""Gallery scanner: walks the roots cheaply and works out what changed since the store last looked.

A walk costs one ``scandir`` per folder and one ``stat`` per photo-named file: no file is opened,
so re-scanning an unchanged 10k-photo gallery takes a fraction of a second. Moves are told from
new photos by a whole-file content fingerprint (``app.engine.fingerprint``), computed only for a new
file whose size equals that of a photo that disappeared in the same scan.

Skipped on purpose: hidden folders (``.thumbnails``), folders holding a ``.nomedia`` file (the
Android convention for "not a gallery"), folders already visited (symlink loops), links to folders
outside every root (a link to ``/`` would walk the whole disk), and the engine's own data
directory if it lies inside a root.

Deleting is the one thing a scan can get badly wrong, so it needs evidence: photos under a root
that cannot be listed, or that holds none of the photos indexed under it (an empty mount point, a
card not inserted), are kept; so are photos outside every root while any root is in doubt (a
mistyped ``--gallery``).
"""
from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from app.engine.decode import ENGINE_EXTENSIONS, register_optional_plugins
from app.engine.fingerprint import fingerprint_file

logger = logging.getLogger(__name__)

# Extensions indexed when Pillow can open them (HEIC/HEIF/AVIF need a plugin such as pillow-heif).
WANTED_EXTENSIONS = ENGINE_EXTENSIONS


def supported_extensions() -> frozenset[str]:
    """The wanted extensions that the installed Pillow (and its plugins) can decode, lower-case."""
    register_optional_plugins()
    registered = Image.registered_extensions()
    if not any(e in registered for e in (".heic", ".avif")):
        Image.init()  # plugins register lazily
        registered = Image.registered_extensions()
    return frozenset(e for e in WANTED_EXTENSIONS if e in registered)


@dataclass(frozen=True, slots=True)
class ScannedFile:
    path: str  # absolute
    size: int
    mtime_ns: int
    ctime_ns: int | None = None  # inode change time: moves with every write, even one that restores mtime


@dataclass
class ScanReport:
    """Counts of what a walk skipped, with a few example paths per reason."""

    files: int = 0
    folders: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    unavailable: list[str] = field(default_factory=list)  # roots/folders not listed: their photos are kept

    def skip(self, reason: str, path: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 3:
            ex.append(path)


@dataclass
class KnownPhoto:
    """What the store remembers of a photo, as the scanner needs it."""

    id: int
    size: int
    mtime_ns: int
    fingerprint: bytes | None
    ctime_ns: int | None = None


@dataclass
class ScanPlan:
    """What to change in the store after a walk."""

    new: list[ScannedFile] = field(default_factory=list)
    changed: list[tuple[int, ScannedFile]] = field(default_factory=list)  # (photo id, file now)
    moved: list[tuple[int, ScannedFile]] = field(default_factory=list)  # (photo id, file at its new path)
    deleted: list[int] = field(default_factory=list)  # photo ids
    unchanged: int = 0
    kept_roots: list[str] = field(default_factory=list)  # roots holding none of their indexed photos: kept

    @property
    def has_changes(self) -> bool:
        return bool(self.new or self.changed or self.moved or self.deleted)

    def summary(self) -> str:
        return (f"{len(self.new)} new, {len(self.changed)} changed, {len(self.moved)} moved, "
                f"{len(self.deleted)} deleted, {self.unchanged} unchanged")


def walk_gallery(
    roots: Iterable[str | Path],
    report: ScanReport | None = None,
    exclude: Iterable[str | Path] = (),
    extensions: frozenset[str] | None = None,
) -> Iterator[ScannedFile]:
    """Yield every photo file under ``roots`` (absolute paths, symlinks followed, each folder once).

    Unreadable folders, broken links and missing roots are counted in ``report``, never raised.
    """
    report = report if report is not None else ScanReport()
    exts = extensions if extensions is not None else supported_extensions()
    excluded = {os.path.abspath(p) for p in exclude}
    visited: set[tuple[int, int]] = set()
    roots = [os.path.abspath(os.path.expanduser(str(r))) for r in roots]
    inside = [os.path.realpath(r) for r in roots]  # where a followed link may lead
    for root in roots:
        root = os.path.abspath(os.path.expanduser(str(root)))
        try:
            st = os.stat(root)
        except OSError:
            report.unavailable.append(root)
            report.skip("gallery root not available", root)
            continue
        if not stat.S_ISDIR(st.st_mode):
            report.unavailable.append(root)
            report.skip("gallery root is not a folder", root)
            continue
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                fst = os.stat(folder)
            except OSError:
                report.skip("unreadable folder", folder)
                report.unavailable.append(folder)
                continue
            key = (fst.st_dev, fst.st_ino)
            if key in visited:
                report.skip("folder already visited (link loop or duplicate)", folder)
                continue
            visited.add(key)
            if folder in excluded:
                continue
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError:  # permission denied, vanished, not a folder any more
                report.skip("unreadable folder", folder)
                report.unavailable.append(folder)
                continue
            report.folders += 1
            if any(e.name == ".nomedia" for e in entries):
                continue
            subfolders = []
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue
                try:
                    if entry.is_dir():  # follows symlinks; loops are caught by ``visited``
                        if entry.is_symlink() and not under_any(os.path.realpath(entry.path), inside):
                            report.skip("link to a folder outside the gallery", entry.path)
                        else:
                            subfolders.append(entry.path)
                        continue
                except OSError:
                    report.skip("unreadable entry", entry.path)
                    continue
                dot = name.rfind(".")
                ext = name[dot:].lower() if dot >= 0 else ""
                if ext not in exts:
                    if ext in WANTED_EXTENSIONS:  # e.g. .heic without pillow-heif: say so, do not hide it
                        report.skip(f"no decoder for {ext} installed", entry.path)
                    continue
                try:
                    est = entry.stat()
                except FileNotFoundError:  # broken symlink, or deleted since the listing
                    report.skip("broken link or vanished file", entry.path)
                    continue
                except OSError:
                    report.skip("unreadable entry", entry.path)
                    continue
                if not stat.S_ISREG(est.st_mode):
                    report.skip("not a regular file", entry.path)
                    continue
                report.files += 1
                yield ScannedFile(entry.path, est.st_size, est.st_mtime_ns, est.st_ctime_ns)
            stack.extend(sorted(subfolders, reverse=True))


def under_any(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _changed(k: KnownPhoto, f: ScannedFile) -> bool:
    if k.size != f.size or k.mtime_ns != f.mtime_ns:
        return True
    return k.ctime_ns is not None and f.ctime_ns is not None and k.ctime_ns != f.ctime_ns  # cp -p, rsync -t


def root_key(root: str | Path) -> str:
    """A gallery root as the scanner compares it: an absolute path, or a photo library's URI unchanged."""
    root = str(root)
    if "://" in root:  # app.engine.photo_sources: the OS photo library, never a folder
        return root.rstrip("/")
    return os.path.abspath(os.path.expanduser(root))


def roots_in_doubt(roots: Iterable[str | Path], known: Iterable[str], seen: set[str]) -> list[str]:
    """Roots that hold photos of the index but showed none of them in this walk: an empty mount
    point or the wrong folder looks exactly like that, a gallery whose photos were all deleted too."""
    doubt = []
    for root in roots:
        under = [p for p in known if under_any(p, [root])]
        if under and not any(p in seen for p in under):
            doubt.append(root)
    return doubt


def plan_changes(
    scanned: Iterable[ScannedFile],
    known: dict[str, KnownPhoto],
    keep_roots: list[str] = (),  # type: ignore[assignment]
    roots: Iterable[str | Path] | None = None,
) -> ScanPlan:
    """Compare a walk with the store: new, changed (size, mtime or ctime differs), deleted, moved.

    ``known`` maps path -> KnownPhoto for every photo in the store. Photos under ``keep_roots``
    (roots that could not be listed, e.g. an unmounted SD card) are never planned as deleted.
    With ``roots`` (the walked roots), photos under a root in doubt (:func:`roots_in_doubt`) are kept,
    and photos outside every root are deleted only when no root is in doubt or unreadable.
    A new file is a move of a vanished photo when size and content fingerprint agree; a
    vanished photo can be moved at most once.
    """
    plan = ScanPlan()
    seen: set[str] = set()
    for f in scanned:
        seen.add(f.path)
        k = known.get(f.path)
        if k is None:
            plan.new.append(f)
        elif _changed(k, f):
            plan.changed.append((k.id, f))
        else:
            plan.unchanged += 1
    keep = [root_key(r) for r in keep_roots]
    walked: list[str] = []
    keep_outside = False
    if roots is not None:
        walked = [root_key(r) for r in roots]
        plan.kept_roots = roots_in_doubt([r for r in walked if r not in keep], known, seen)
        keep += plan.kept_roots
        keep_outside = any(r in keep for r in walked)  # a root in doubt: what lies outside all roots stays too
    vanished = {p: k for p, k in known.items() if p not in seen and not (keep and under_any(p, keep))
                and not (keep_outside and not under_any(p, walked))}
    if vanished and plan.new:
        by_size: dict[int, list[KnownPhoto]] = {}
        for k in vanished.values():
            if k.fingerprint is not None:
                by_size.setdefault(k.size, []).append(k)
        still_new = []
        for f in plan.new:
            candidates = by_size.get(f.size)
            if candidates:
                try:
                    fp = fingerprint_file(f.path)
                except OSError:
                    fp = None
                match = next((k for k in candidates if k.fingerprint == fp), None)
                if match is not None:
                    candidates.remove(match)
                    plan.moved.append((match.id, f))
                    continue
            still_new.append(f)
        plan.new = still_new
    moved_ids = {pid for pid, _ in plan.moved}
    plan.deleted = [k.id for k in vanished.values() if k.id not in moved_ids]
    return plan
