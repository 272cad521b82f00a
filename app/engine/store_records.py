"""What crosses the store's boundary: its errors, the photos the indexer hands it, and what readers get back."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.engine.row_checksum import row_checksums
from formats.errors import UserError


class StoreError(UserError, RuntimeError):
    """An index that cannot be opened or used as asked; names the data directory."""


class StoreBusyError(StoreError):
    """Another process holds the writer lock of the data directory."""


@dataclass(frozen=True)
class IndexedPhoto:
    """An encoded photo, with the identity of the bytes that were encoded."""

    id: int
    embedding: np.ndarray  # (D,) float32, L2-normalised
    size: int
    mtime_ns: int
    fingerprint: bytes
    ctime_ns: int | None = None


@dataclass(frozen=True)
class UnchangedPhoto:
    """A queued photo whose bytes turned out identical to those encoded (``touch``): keeps its row."""

    id: int
    size: int
    mtime_ns: int
    ctime_ns: int | None = None


@dataclass(frozen=True)
class FailedPhoto:
    id: int
    reason: str
    size: int | None = None  # when known from the read (else the scanned values stay)
    mtime_ns: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """What a search reads: the matrix (a read-only view, never copied) and who owns each row."""

    matrix: np.ndarray  # (N, D) float32 (float16 for an index created so), memory-mapped
    photo_ids: np.ndarray  # (N,) int64, -1 where the row is dead
    dead_rows: np.ndarray  # (n_dead,) int64 row numbers to mask
    live: int  # rows with an owner
    checksums: np.ndarray | None = None  # (N,) int64 row checksums, -1 where unknown
    model_id: str | None = None  # the model whose embedding space the rows are in
    embed_dim: int | None = None

    def intact(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) bool: which of these rows still hold what was committed."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.checksums is None or not len(rows):
            return np.ones(len(rows), dtype=bool)
        return row_checksums(self.matrix[rows]) == self.checksums[rows]


@dataclass
class StoreStats:
    photos: int = 0
    indexed: int = 0
    pending: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    dead_rows: int = 0
    model_id: str | None = None
    embed_dim: int | None = None
