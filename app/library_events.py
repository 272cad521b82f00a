"""What the controller tells the UI: the library's events (:class:`LibraryListener`) and the values they carry.

Frozen values built on the controller's threads and read on the UI thread; no Kivy, like the controller.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from app.engine import IndexReport
from app.model_info import ModelInfo


@dataclass(frozen=True)
class LibraryStats:
    """What the index holds and what it costs on disk."""

    photos: int = 0
    indexed: int = 0
    pending: int = 0
    skipped: int = 0
    index_bytes: int = 0  # the index files (SQLite + embedding matrix)
    thumbnail_bytes: int = 0

    def describe(self) -> str:
        """Two lines for a person: the counts, then the sizes on disk."""
        return (f"{self.indexed} photos indexed, {self.pending} waiting, {self.skipped} unreadable skipped\n"
                f"index {_human_size(self.index_bytes)} on disk, thumbnails {_human_size(self.thumbnail_bytes)}")


def unexpected_failure(what: str, error: BaseException) -> str:
    """One line for a person about a failure nobody planned for; the log has the traceback."""
    return (f"{what}: {type(error).__name__}: {error}. This is a bug in the app or a missing part of it; "
            f"restart the app, and if it happens again, report it with the app's log")


def _human_size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} KB"


@dataclass(frozen=True)
class OpenedLibrary:
    model: ModelInfo | None
    model_description: str
    load_seconds: float  # model load + opening the index
    stats: LibraryStats
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScanSummary:
    """What a walk of the gallery folders found changed since the last one."""

    files: int
    new: int
    changed: int
    moved: int
    deleted: int
    unavailable: list[str] = field(default_factory=list)
    first: bool = False  # the scan the app runs on launch


@dataclass(frozen=True)
class IndexProgress:
    done: int
    total: int
    photos_per_second: float


@dataclass(frozen=True)
class IndexOutcome:
    """How an indexing run ended: its report (None if it failed before starting) and the index afterwards."""

    report: IndexReport | None
    stats: LibraryStats
    error: str | None = None


class LibraryListener(Protocol):
    """Receives the library's events, always on the UI thread."""

    def library_opened(self, library: OpenedLibrary) -> None: ...

    def library_failed(self, message: str) -> None: ...

    def scan_finished(self, scan: ScanSummary) -> None: ...

    def index_progress(self, progress: IndexProgress) -> None: ...

    def index_finished(self, outcome: IndexOutcome) -> None: ...
