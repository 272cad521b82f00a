"""The index on disk: SQLite (WAL) rows for photos and state, embeddings in one contiguous float32 matrix.

Layout of the data directory::

    index.sqlite (+ -wal, -shm)   photos(id, path, size, mtime_ns, fingerprint, state, row, error, checksum,
                                  ctime_ns), meta
    embeddings-<generation>.f32   row r = bytes [r*D*4, (r+1)*D*4): the embedding of the photo whose row is r
      (or .f16)                   (.f16: the same rows as little-endian float16, D*2 bytes each; chosen when
                                  the index is created, ``embedding_dtype``, and kept for its life)
    writer.lock                   flock held by the one process allowed to write

Crash safety rests on one ordering: a batch's embeddings are appended to the matrix and fsync'ed
*before* the SQLite transaction that points photos at those rows commits. A process killed at any
instant therefore leaves either the old state (rows past ``meta.n_rows`` are garbage and are cut
off on the next open) or the new one; at worst the in-flight batch is encoded again.

A photo's embedding stays searchable while the photo waits to be re-encoded (changed file); a
row no photo points at is dead (masked out of search) until :meth:`EmbeddingStore.compact`.
Every row carries a checksum: readers verify the rows they are about to return.

This module holds :class:`EmbeddingStore`, which ties the parts together and holds the locks; the parts are
:mod:`~app.engine.store_schema` (tables, row states, migrations, meta), :mod:`~app.engine.store_matrix` (the
matrix file: names, dtypes, mapping and durable writes), :mod:`~app.engine.store_records` (errors and the
typed values crossing the store's boundary), :mod:`~app.engine.store_open` (the writer lock, opening or
rebuilding the database), :mod:`~app.engine.store_integrity` (matrix recovery, row checksums, ``check()``),
:mod:`~app.engine.store_generations` (compaction and model changes) and :mod:`~app.engine.store_rows`
(the photos table's statements). Names importers have always found here are re-exported.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Self

import numpy as np

from app.engine import store_rows
from app.engine.pathnames import from_db
from app.engine.row_checksum import row_checksums
from app.engine.scanner import KnownPhoto, ScanPlan
from app.engine.store_generations import write_generation
from app.engine.store_integrity import index_problems, recover_matrix, verify_rows
from app.engine.store_matrix import (
    DTYPE,
    EMBEDDING_DTYPES,
    MATRIX_NAME,
    MATRIX_PREFIX,
    MATRIX_SUFFIX,
    MAX_EMBED_DIM,
    NORM_TOLERANCE,
    dtype_name_of,
    fdatasync,
    map_matrix,
    meta_problem,
    pwrite_all,
    storable_block,
)
from app.engine.store_open import LOCK_NAME, acquire_writer_lock, damaged_index, open_or_rebuild, open_reader
from app.engine.store_records import (
    FailedPhoto,
    IndexedPhoto,
    Snapshot,
    StoreBusyError,
    StoreError,
    StoreStats,
    UnchangedPhoto,
)
from app.engine.store_schema import DB_NAME, FAILED, INDEXED, PENDING, SCHEMA_VERSION, read_meta, write_meta

logger = logging.getLogger(__name__)

__all__ = [
    "DB_NAME", "DTYPE", "EMBEDDING_DTYPES", "FAILED", "INDEXED", "LOCK_NAME", "MATRIX_NAME", "MATRIX_PREFIX",
    "MATRIX_SUFFIX", "MAX_EMBED_DIM", "NORM_TOLERANCE", "PENDING", "SCHEMA_VERSION", "EmbeddingStore",
    "FailedPhoto", "IndexedPhoto", "Snapshot", "StoreBusyError", "StoreError", "StoreStats", "UnchangedPhoto",
    "meta_problem",
]


class EmbeddingStore:
    """Photo rows + embedding matrix of one data directory. Thread-safe; one writer process at a time.

    ``readonly=True`` opens without the writer lock, for searching while another process indexes:
    it never writes and sees each commit of the writer on its next :meth:`snapshot`.
    """

    def __init__(self, data_dir: str | Path, readonly: bool = False, embedding_dtype: str | None = None):
        """``embedding_dtype``: "float32" or "float16", how a *new* index stores its embeddings (None:
        float32, or whatever the existing index holds). An existing index of another kind is refused,
        never converted silently."""
        if embedding_dtype is not None and embedding_dtype not in EMBEDDING_DTYPES:
            raise StoreError(f"unknown embedding dtype {embedding_dtype!r}; expected one of {sorted(EMBEDDING_DTYPES)}")
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.readonly = readonly
        self.recovered: str | None = None  # a message when the store had to be repaired or rebuilt
        self._lock = threading.RLock()  # guards the connection and cached views
        self._write_lock = threading.RLock()  # guards the matrix file (taken before _lock, never after)
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._changes = 0
        self._snap_key: tuple | None = None
        self._snap: Snapshot | None = None
        self._mmap_key: tuple | None = None
        self._mmap: np.ndarray | None = None
        if readonly:
            self._conn = open_reader(self.data_dir)
        else:
            try:
                self.data_dir.mkdir(parents=True, exist_ok=True)
                self._lock_fd = acquire_writer_lock(self.data_dir)
            except OSError as e:
                raise StoreError(f"cannot use {self.data_dir} as the data directory: {e.strerror or e}") from e
            try:
                self._conn, self.recovered = open_or_rebuild(self.data_dir)
                self._recover_matrix()
                self._choose_dtype(embedding_dtype)
            except BaseException:
                self.close()
                raise
        if readonly and embedding_dtype is not None and embedding_dtype != self.embedding_dtype:
            self.close()
            raise StoreError(self._dtype_mismatch(embedding_dtype))

    @property
    def embedding_dtype(self) -> str:
        """"float32" or "float16": how the matrix stores embeddings (its file's suffix says; before the
        first matrix exists, what the index was created with)."""
        meta = self._meta()
        name = meta.get("matrix_file")
        if name is not None:
            return dtype_name_of(name)
        return meta.get("embedding_dtype", "float32") if meta.get("embedding_dtype") in EMBEDDING_DTYPES else "float32"

    @property
    def _dtype(self) -> np.dtype:
        return EMBEDDING_DTYPES[self.embedding_dtype][0]

    def _dtype_mismatch(self, wanted: str) -> str:
        return (f"the index in {self.data_dir} stores {self.embedding_dtype} embeddings, not {wanted}; the "
                f"embedding dtype is chosen when an index is created: use another data directory, or delete "
                f"this one to rebuild it as {wanted}")

    def _choose_dtype(self, wanted: str | None) -> None:
        """Record ``wanted`` on a new index; refuse it on an index that already holds another kind."""
        meta = self._meta()
        if wanted is None or wanted == self.embedding_dtype and "embedding_dtype" in meta:
            return
        if ("matrix_file" in meta or "embedding_dtype" in meta) and wanted != self.embedding_dtype:
            raise StoreError(self._dtype_mismatch(wanted))
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._set_meta(embedding_dtype=wanted)
            self._conn.execute("COMMIT")

    # ------------------------------------------------------------------ opening and recovery

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_NAME

    def _meta(self) -> dict[str, str]:
        return read_meta(self._conn)

    def _set_meta(self, **values: object) -> None:
        write_meta(self._conn, **values)

    def _recover_matrix(self) -> None:
        """Make the matrix file agree with the committed row count, then verify its rows."""
        self._fd, message = recover_matrix(self._conn, self.data_dir, self._dtype)
        if message:
            self.recovered = message
        if self._fd is not None:
            self._verify_rows()

    def _verify_rows(self) -> None:
        changed, message = verify_rows(self._conn, self._matrix_view)
        if changed:
            self._changes += 1
        if message:
            self.recovered = message

    # ------------------------------------------------------------------ model binding

    def bind_model(self, model_id: str, embed_dim: int) -> bool:
        """Tie the store to an encoder. A different model or size drops every embedding (the photos
        are kept and queued again) so results never mix embedding spaces. Returns True if it did."""
        with self._write_lock, self._lock:
            self._require_writer()
            meta = self._meta()
            if meta.get("model_id") == model_id and meta.get("embed_dim") == str(embed_dim) and "matrix_file" in meta:
                return False
            if "model_id" in meta:
                message = (f"index was built with model {meta.get('model_id')} (dim {meta.get('embed_dim')}), "
                           f"now {model_id} (dim {embed_dim}): dropping its embeddings and re-indexing")
                logger.warning(message)
                self.recovered = message
            self._switch_matrix(None, embed_dim, extra_meta={"model_id": model_id}, requeue=True)
            return True

    def _require_writer(self) -> None:
        if self.readonly:
            raise StoreError(f"the index in {self.data_dir} was opened read-only")

    def _require_bound(self) -> tuple[int, int]:
        meta = self._meta()
        if "matrix_file" not in meta:
            raise StoreError(f"the index in {self.data_dir} is not bound to a model yet (call bind_model)")
        return int(meta["embed_dim"]), int(meta["n_rows"])

    def _switch_matrix(self, rows: np.ndarray | None, dim: int, extra_meta: dict | None = None,
                       requeue: bool = False) -> None:
        """Switch to a new matrix generation holding the old ``rows`` (None: none), then delete the old file."""
        old = self._matrix_view() if rows is not None and len(rows) else None
        suffix = EMBEDDING_DTYPES[self.embedding_dtype][1]
        fd, old_name, new_name = write_generation(self._conn, self.data_dir, suffix, old, rows, dim, extra_meta, requeue)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        self._mmap, self._mmap_key = None, None
        self._changes += 1
        if old_name and old_name != new_name:
            (self.data_dir / old_name).unlink(missing_ok=True)

    # ------------------------------------------------------------------ scanning side

    def known_photos(self) -> dict[str, KnownPhoto]:
        """path -> KnownPhoto for every photo in the store (one query)."""
        with self._lock:
            return store_rows.known_photos(self._conn)

    def apply_plan(self, plan: ScanPlan) -> None:
        """Record a scan's findings in one transaction: new photos queued, changed ones queued again
        (keeping their old embedding searchable until re-encoded), moves renamed, deletions removed."""
        if not plan.has_changes:
            return
        with self._lock:
            self._require_writer()
            store_rows.record_plan(self._conn, plan)
            self._changes += 1

    def retry_failed(self) -> int:
        """Queue every skipped photo again (e.g. after installing a HEIC plugin); returns how many."""
        with self._lock:
            self._require_writer()
            n = store_rows.requeue_failed(self._conn)
            self._changes += 1
            return n

    # ------------------------------------------------------------------ indexing side

    def count_pending(self) -> int:
        with self._lock:
            return store_rows.count_pending(self._conn)

    def pending_after(self, after_id: int, limit: int) -> list[tuple[int, str, int, int]]:
        """Up to ``limit`` pending photos with id > after_id: [(id, path, size, mtime_ns)], by id."""
        with self._lock:
            return store_rows.pending_after(self._conn, after_id, limit)

    def encoded_fingerprints(self, photo_ids: Sequence[int]) -> dict[int, bytes]:
        """photo id -> fingerprint of the bytes its current embedding row was encoded from."""
        with self._lock:
            return dict(store_rows.select_by_ids(self._conn, "id, fingerprint", photo_ids,
                                                 where="row IS NOT NULL AND fingerprint IS NOT NULL"))

    def commit_batch(self, indexed: Sequence[IndexedPhoto], failed: Sequence[FailedPhoto] = (),
                     gone: Iterable[int] = (), unchanged: Sequence[UnchangedPhoto] = ()) -> None:
        """Append ``indexed`` embeddings (fsync'ed), then in one transaction mark them indexed, record
        ``failed`` photos (their old embedding, if any, dies with the old bytes), mark ``unchanged``
        ones indexed again on their old row, and remove ``gone`` ones (vanished while being indexed)."""
        self._require_writer()
        with self._write_lock:  # serialises matrix writers; searches only wait for the commit below
            with self._lock:
                dim, n_rows = self._require_bound()
            if indexed:
                block = storable_block([p.embedding for p in indexed], dim, self._dtype)
                checksums = row_checksums(block)
                pwrite_all(self._fd, block.tobytes(), n_rows * dim * block.dtype.itemsize)
                fdatasync(self._fd)
            else:
                checksums = np.empty(0, dtype=np.int64)
            with self._lock:
                store_rows.record_batch(self._conn, indexed, checksums, failed, gone, unchanged, n_rows)
                self._changes += 1

    # ------------------------------------------------------------------ search side

    def _matrix_view(self) -> np.ndarray:
        """(n_rows, D) float32 (or float16) memmap of the committed rows (cached until the file or row count changes)."""
        meta = self._meta()
        if "matrix_file" not in meta:
            return np.empty((0, 0), dtype=DTYPE)
        problem = meta_problem(meta)
        if problem:
            raise damaged_index(self.data_dir, problem)
        key = (meta["matrix_file"], int(meta["n_rows"]), int(meta["embed_dim"]))
        if key != self._mmap_key:
            name, want, dim = key
            matrix = map_matrix(self.data_dir / name, dim, want)
            n = matrix.shape[0]
            if n < want and self.readonly:  # the writer cuts a short file down on its next open
                raise StoreError(f"the embedding file {name} in {self.data_dir} holds {n} of its {want} rows; "
                                 f"run `python -m app.engine index` to repair the index")
            self._mmap, self._mmap_key = matrix, key
        return self._mmap  # type: ignore[return-value]

    def snapshot(self) -> Snapshot:
        """The current matrix and row owners, rebuilt only after a change (this or another process)."""
        with self._lock:
            key = (self._changes, self._conn.execute("PRAGMA data_version").fetchone()[0])
            if key == self._snap_key and self._snap is not None:
                return self._snap
            self._conn.execute("BEGIN")  # one read snapshot: meta and rows from the same commit
            try:
                meta = self._meta()
                matrix = self._matrix_view()
                ids, checksums = store_rows.row_owners(self._conn, matrix.shape[0])
            finally:
                self._conn.execute("COMMIT")
            dead = np.flatnonzero(ids < 0)
            self._snap = Snapshot(matrix=matrix, photo_ids=ids, dead_rows=dead, live=len(ids) - len(dead),
                                  checksums=checksums, model_id=meta.get("model_id"),
                                  embed_dim=int(meta["embed_dim"]) if "embed_dim" in meta else None)
            self._snap_key = key
            return self._snap

    def paths_of(self, photo_ids: Sequence[int]) -> dict[int, str]:
        """photo id -> path for the ids that still exist."""
        if not len(photo_ids):
            return {}
        with self._lock:
            return {i: from_db(p) for i, p in store_rows.select_by_ids(self._conn, "id, path", photo_ids)}

    def embedding_of_path(self, path: str | Path) -> tuple[int, np.ndarray] | None:
        """(photo id, (D,) embedding copy) of an indexed photo, or None."""
        with self._lock:
            row = store_rows.embedding_row_of(self._conn, str(path))
            if row is None:
                return None
            matrix = self._matrix_view()
            if row[1] >= matrix.shape[0]:
                return None
            embedding = np.array(matrix[row[1]])
            if row[2] is not None and int(row_checksums(embedding[None])[0]) != row[2]:
                logger.warning("embedding row %d of %s is damaged; ignoring it", row[1], path)
                return None
            return row[0], embedding.astype(np.float32)

    def stats(self) -> StoreStats:
        with self._lock:
            return store_rows.read_stats(self._conn)

    # ------------------------------------------------------------------ maintenance

    def compact(self, min_dead: int = 1024, min_fraction: float = 0.25, force: bool = False) -> bool:
        """Rewrite the matrix without dead rows when they are many; returns True if it did."""
        with self._write_lock, self._lock:
            self._require_writer()
            st = self.stats()
            if st.embed_dim is None or st.dead_rows == 0:
                return False
            if not force and (st.dead_rows < min_dead or st.dead_rows < min_fraction * st.rows):
                return False
            logger.info("compacting the embedding matrix: %d rows, %d dead", st.rows, st.dead_rows)
            self._switch_matrix(store_rows.live_rows(self._conn), st.embed_dim)
            return True

    def check(self) -> list[str]:
        """Consistency problems (empty when healthy): schema, rows in range and unique, states coherent."""
        with self._lock:
            return index_problems(self._conn, self.data_dir, self._dtype, self._matrix_view)

    def close(self) -> None:
        with self._lock:
            conn = getattr(self, "_conn", None)
            if conn is not None:
                conn.close()
                self._conn = None  # type: ignore[assignment]
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._mmap = self._snap = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
