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
off on the next open) or the new one; at worst the in-flight batch is encoded again. Compaction
and model changes write a new generation of the matrix, fsync it, then switch ``meta.matrix_file``
in one transaction; the unused generation is deleted on the next open.

A photo's embedding stays searchable while the photo waits to be re-encoded (changed file); a
row no photo points at is dead (masked out of search) until :meth:`EmbeddingStore.compact`.
A store file SQLite cannot read is moved aside (``index.sqlite.corrupt-<time>``) and a fresh index
is started: the gallery is never touched, so nothing is lost that re-indexing does not restore.

Every row carries a checksum (``photos.checksum``, :mod:`app.engine.row_checksum`): the writer
verifies all of them when it opens the index and queues the photos of damaged rows again, readers
verify the rows they are about to return, and ``check()`` verifies all. Nothing the database says
can make the engine touch a file outside the data directory: the matrix file name must be one this
engine writes, and matrix files are opened without following links.

This module holds :class:`EmbeddingStore`, which ties the parts together; the parts are
:mod:`app.engine.store_schema` (tables, row states, migrations), :mod:`app.engine.store_matrix` (the
matrix file: names, dtypes, mapping and durable writes) and :mod:`app.engine.store_records` (errors and
the typed values crossing the store's boundary). Their names are re-exported here.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Self

import numpy as np

from app.engine.pathnames import from_db, to_db
from app.engine.row_checksum import row_checksums
from app.engine.scanner import KnownPhoto, ScanPlan
from app.engine.store_matrix import (
    DTYPE,
    EMBEDDING_DTYPES,
    MATRIX_NAME,
    MATRIX_PREFIX,
    MATRIX_SUFFIX,
    MAX_EMBED_DIM,
    NOFOLLOW,
    NORM_TOLERANCE,
    dtype_name_of,
    fdatasync,
    fsync_dir,
    map_matrix,
    meta_problem,
    pwrite_all,
    storable_block,
    write_matrix,
)
from app.engine.store_records import (
    FailedPhoto,
    IndexedPhoto,
    Snapshot,
    StoreBusyError,
    StoreError,
    StoreStats,
    UnchangedPhoto,
)
from app.engine.store_schema import DB_NAME, FAILED, INDEXED, PENDING, SCHEMA, SCHEMA_VERSION, migrate

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: single-writer is then the caller's business
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK_NAME = "writer.lock"

# names importers have always found here; they now live in the modules above
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
            if not (self.data_dir / DB_NAME).is_file():
                raise StoreError(f"no index in {self.data_dir}: run `python -m app.engine index --gallery DIR` first")
            self._conn = self._connect()
            try:
                self._check_schema_version()
                problem = meta_problem(self._meta())
            except BaseException:
                self.close()
                raise
            if problem:
                self.close()
                raise StoreError(f"the index in {self.data_dir} is damaged ({problem}); "
                                 f"run `python -m app.engine index` to rebuild it")
        else:
            try:
                self.data_dir.mkdir(parents=True, exist_ok=True)
                self._acquire_writer_lock()
            except OSError as e:
                raise StoreError(f"cannot use {self.data_dir} as the data directory: {e.strerror or e}") from e
            try:
                self._conn = self._open_or_rebuild()
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

    def _acquire_writer_lock(self) -> None:
        if fcntl is None:
            return
        fd = os.open(self.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(fd)
            raise StoreBusyError(f"another process is writing the index in {self.data_dir} (lock {LOCK_NAME})") from e
        self._lock_fd = fd

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None, timeout=10.0)
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _check_schema_version(self) -> int:
        try:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.db_path} is not a readable index ({e}); open it for writing to rebuild") from e
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.db_path} has schema version {version}, newer than this engine's {SCHEMA_VERSION}; "
                f"update the app or use another --data-dir"
            )
        if version == 0:
            raise StoreError(f"no index in {self.data_dir} yet (being created): run `python -m app.engine index` first")
        if version != SCHEMA_VERSION:
            raise StoreError(f"{self.db_path} has schema version {version}; open it for writing to rebuild it")
        return version

    def _open_or_rebuild(self, attempt: int = 0) -> sqlite3.Connection:
        """A connection to a healthy database of this schema; a corrupt or foreign file is moved aside."""
        problem = None
        conn = None
        try:
            conn = self._connect()
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                problem = f"integrity check failed: {check}"
            else:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if version > SCHEMA_VERSION:
                    conn.close()
                    raise StoreError(
                        f"{self.db_path} has schema version {version}, newer than this engine's {SCHEMA_VERSION}; "
                        f"update the app or use another --data-dir"
                    )
                if version == 0 and not tables:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(f"BEGIN; {SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
                elif version == 0 or not {"photos", "meta"} <= tables:
                    problem = f"schema version {version} with tables {sorted(tables)} is not this engine's {SCHEMA_VERSION}"
                else:
                    migrate(conn, version)
                    problem = meta_problem(dict(conn.execute("SELECT key, value FROM meta").fetchall()))
        except sqlite3.DatabaseError as e:
            problem = f"{type(e).__name__}: {e}"
        if problem is None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            return conn
        if conn is not None:
            conn.close()
        if attempt > 0:  # a fresh database fails too: the folder, not the index, is the problem
            raise StoreError(f"cannot create an index in {self.data_dir}: {problem}")
        moved = self.db_path.with_name(f"{DB_NAME}.corrupt-{int(time.time())}")
        self.recovered = f"index {self.db_path} was unreadable ({problem}); moved to {moved.name}, re-indexing from scratch"
        logger.warning(self.recovered)
        os.replace(self.db_path, moved)
        for suffix in ("-wal", "-shm"):
            side = self.db_path.with_name(DB_NAME + suffix)
            if side.exists():
                os.replace(side, moved.with_name(moved.name + suffix))
        for f in self.data_dir.glob(f"{MATRIX_PREFIX}*{MATRIX_SUFFIX}"):
            f.unlink()
        return self._open_or_rebuild(attempt + 1)

    def _meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def _set_meta(self, **values: object) -> None:
        self._conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            [(k, str(v)) for k, v in values.items()],
        )

    def _recover_matrix(self) -> None:
        """Make the matrix file agree with the committed row count; drop unused generations."""
        meta = self._meta()
        current = meta.get("matrix_file")
        for f in [f for _, suffix in EMBEDDING_DTYPES.values() for f in self.data_dir.glob(f"{MATRIX_PREFIX}*{suffix}")]:
            if f.name != current:
                logger.info("removing unused embedding file %s", f)
                f.unlink()
        if current is None:
            return
        dim, n_rows = int(meta["embed_dim"]), int(meta["n_rows"])
        path = self.data_dir / current
        row_bytes = dim * self._dtype.itemsize
        have = path.lstat().st_size if path.is_file() and not path.is_symlink() else 0
        if have < n_rows * row_bytes:
            usable = have // row_bytes
            message = (f"embedding file {path.name} holds {usable} of {n_rows} committed rows; "
                       f"the photos of the missing rows will be encoded again")
            logger.warning(message)
            self.recovered = message
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("UPDATE photos SET state=?, row=NULL WHERE row >= ?", (PENDING, usable))
            self._set_meta(n_rows=usable)
            self._conn.execute("COMMIT")
            n_rows = usable
        if path.is_symlink():
            path.unlink()  # never written through: a link could point anywhere
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o644)
        if have > n_rows * row_bytes:
            logger.info("cutting %d uncommitted bytes off %s", have - n_rows * row_bytes, path.name)
            os.ftruncate(self._fd, n_rows * row_bytes)
        self._verify_rows()

    def _verify_rows(self) -> None:
        """Checksum every live row; queue the photos of damaged rows again (their rows die). Rows
        without a checksum yet (an index from schema 1) get the checksum of what they hold."""
        n_rows = int(self._meta().get("n_rows", 0))
        if not n_rows:
            return
        matrix = self._matrix_view()
        owned = np.asarray(self._conn.execute(
            "SELECT id, row, COALESCE(checksum, -1) FROM photos WHERE row IS NOT NULL AND row < ? ORDER BY row",
            (matrix.shape[0],)).fetchall(), dtype=np.int64).reshape(-1, 3)
        if not len(owned):
            return
        ids, rows, stored = owned.T
        actual = row_checksums(matrix)[rows]  # all rows, in place: cheaper than gathering the live ones
        adopt = stored < 0
        damaged = ~adopt & (actual != stored)
        if not (adopt.any() or damaged.any()):
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.executemany("UPDATE photos SET checksum=? WHERE id=?",
                               zip(actual[adopt].tolist(), ids[adopt].tolist()))
        self._conn.executemany("UPDATE photos SET state=?, row=NULL, checksum=NULL WHERE id=?",
                               [(PENDING, i) for i in ids[damaged].tolist()])
        self._conn.execute("COMMIT")
        self._changes += 1
        if damaged.any():
            message = (f"{int(damaged.sum())} of {len(rows)} embedding rows do not match their checksums "
                       f"(damaged or foreign matrix); their photos will be encoded again")
            logger.warning(message)
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
        """Write a new matrix generation (``rows``: old row numbers to keep, in order; None keeps none),
        fsync it, then repoint photos and meta in one transaction; finally delete the old file."""
        meta = self._meta()
        old_name = meta.get("matrix_file")
        gen = int(meta.get("generation", "0")) + 1
        new_name = f"{MATRIX_PREFIX}{gen}{EMBEDDING_DTYPES[self.embedding_dtype][1]}"
        new_path = self.data_dir / new_name
        new_path.unlink(missing_ok=True)  # a stray file or link of that name is replaced, never written through
        old = self._matrix_view() if rows is not None and len(rows) else None
        fd = write_matrix(new_path, old, rows)
        fsync_dir(self.data_dir)
        n_new = 0 if rows is None else len(rows)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            if rows is None:
                if requeue:
                    self._conn.execute("UPDATE photos SET state=? WHERE state=?", (PENDING, INDEXED))
                self._conn.execute("UPDATE photos SET row=NULL, checksum=NULL WHERE row IS NOT NULL")
            else:
                owners = dict(self._conn.execute("SELECT row, id FROM photos WHERE row IS NOT NULL").fetchall())
                # new row numbers are ranks of the old ones, so updating in increasing order never collides
                self._conn.executemany("UPDATE photos SET row=? WHERE id=?",
                                       [(i, owners[int(r)]) for i, r in enumerate(rows.tolist())])
            self._set_meta(**{"embed_dim": dim, **(extra_meta or {}), "matrix_file": new_name, "generation": gen,
                              "n_rows": n_new})
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            os.close(fd)
            new_path.unlink(missing_ok=True)
            raise
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
            rows = self._conn.execute("SELECT path, id, size, mtime_ns, fingerprint, ctime_ns FROM photos").fetchall()
        return {from_db(p): KnownPhoto(i, s, m, f, c) for p, i, s, m, f, c in rows}

    def apply_plan(self, plan: ScanPlan) -> None:
        """Record a scan's findings in one transaction: new photos queued, changed ones queued again
        (keeping their old embedding searchable until re-encoded), moves renamed, deletions removed."""
        if not plan.has_changes:
            return
        with self._lock:
            self._require_writer()
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                c.executemany("DELETE FROM photos WHERE id=?", [(i,) for i in plan.deleted])
                c.executemany(
                    "INSERT INTO photos(path, size, mtime_ns, ctime_ns, state) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, "
                    "ctime_ns=excluded.ctime_ns, state=excluded.state",
                    [(to_db(f.path), f.size, f.mtime_ns, f.ctime_ns, PENDING) for f in plan.new],
                )
                c.executemany("UPDATE photos SET size=?, mtime_ns=?, ctime_ns=?, state=?, error=NULL WHERE id=?",
                              [(f.size, f.mtime_ns, f.ctime_ns, PENDING, i) for i, f in plan.changed])
                c.executemany("UPDATE photos SET path=?, mtime_ns=?, ctime_ns=? WHERE id=?",
                              [(to_db(f.path), f.mtime_ns, f.ctime_ns, i) for i, f in plan.moved])
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            self._changes += 1

    def retry_failed(self) -> int:
        """Queue every skipped photo again (e.g. after installing a HEIC plugin); returns how many."""
        with self._lock:
            self._require_writer()
            n = self._conn.execute("UPDATE photos SET state=?, error=NULL WHERE state=?", (PENDING, FAILED)).rowcount
            self._changes += 1
            return n

    # ------------------------------------------------------------------ indexing side

    def count_pending(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM photos WHERE state=?", (PENDING,)).fetchone()[0]

    def pending_after(self, after_id: int, limit: int) -> list[tuple[int, str, int, int]]:
        """Up to ``limit`` pending photos with id > after_id: [(id, path, size, mtime_ns)], by id."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, path, size, mtime_ns FROM photos WHERE state=? AND id>? ORDER BY id LIMIT ?",
                (PENDING, after_id, limit),
            ).fetchall()
        return [(i, from_db(p), s, m) for i, p, s, m in rows]

    def encoded_fingerprints(self, photo_ids: Sequence[int]) -> dict[int, bytes]:
        """photo id -> fingerprint of the bytes its current embedding row was encoded from."""
        out: dict[int, bytes] = {}
        ids = [int(i) for i in photo_ids]
        with self._lock:
            for s in range(0, len(ids), 500):
                part = ids[s : s + 500]
                q = (f"SELECT id, fingerprint FROM photos WHERE row IS NOT NULL AND fingerprint IS NOT NULL "
                     f"AND id IN ({','.join('?' * len(part))})")
                out.update(self._conn.execute(q, part).fetchall())
        return out

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
                self._commit_rows(indexed, checksums, failed, gone, unchanged, n_rows)

    def _commit_rows(self, indexed: Sequence[IndexedPhoto], checksums: np.ndarray, failed: Sequence[FailedPhoto],
                     gone: Iterable[int], unchanged: Sequence[UnchangedPhoto], n_rows: int) -> None:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany(
                "UPDATE photos SET state=?, row=?, size=?, mtime_ns=?, ctime_ns=COALESCE(?, ctime_ns), fingerprint=?, "
                "checksum=?, error=NULL WHERE id=?",
                [(INDEXED, n_rows + k, p.size, p.mtime_ns, p.ctime_ns, p.fingerprint, int(cs), p.id)
                 for k, (p, cs) in enumerate(zip(indexed, checksums.tolist()))],
            )
            c.executemany(
                "UPDATE photos SET state=?, error=?, size=COALESCE(?, size), mtime_ns=COALESCE(?, mtime_ns), "
                "row=NULL, checksum=NULL, fingerprint=NULL WHERE id=?",
                [(FAILED, f.reason, f.size, f.mtime_ns, f.id) for f in failed],
            )
            c.executemany(
                "UPDATE photos SET state=?, size=?, mtime_ns=?, ctime_ns=COALESCE(?, ctime_ns), error=NULL "
                "WHERE id=? AND row IS NOT NULL",
                [(INDEXED, u.size, u.mtime_ns, u.ctime_ns, u.id) for u in unchanged],
            )
            c.executemany("DELETE FROM photos WHERE id=?", [(i,) for i in gone])
            self._set_meta(n_rows=n_rows + len(indexed))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        self._changes += 1

    # ------------------------------------------------------------------ search side

    def _matrix_view(self) -> np.ndarray:
        """(n_rows, D) float32 (or float16) memmap of the committed rows (cached until the file or row count changes)."""
        meta = self._meta()
        if "matrix_file" not in meta:
            return np.empty((0, 0), dtype=DTYPE)
        problem = meta_problem(meta)
        if problem:
            raise StoreError(f"the index in {self.data_dir} is damaged ({problem}); "
                             f"run `python -m app.engine index` to rebuild it")
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
                owned = self._conn.execute(
                    "SELECT row, id, COALESCE(checksum, -1) FROM photos WHERE row IS NOT NULL AND row < ?",
                    (matrix.shape[0],)).fetchall()
            finally:
                self._conn.execute("COMMIT")
            ids = np.full(matrix.shape[0], -1, dtype=np.int64)
            checksums = np.full(matrix.shape[0], -1, dtype=np.int64)
            if owned:
                triples = np.asarray(owned, dtype=np.int64)
                ids[triples[:, 0]] = triples[:, 1]
                checksums[triples[:, 0]] = triples[:, 2]
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
            out: dict[int, str] = {}
            ids = [int(i) for i in photo_ids]
            for s in range(0, len(ids), 500):
                part = ids[s : s + 500]
                q = f"SELECT id, path FROM photos WHERE id IN ({','.join('?' * len(part))})"
                out.update((i, from_db(p)) for i, p in self._conn.execute(q, part).fetchall())
            return out

    def embedding_of_path(self, path: str | Path) -> tuple[int, np.ndarray] | None:
        """(photo id, (D,) embedding copy) of an indexed photo, or None."""
        with self._lock:
            row = self._conn.execute("SELECT id, row, checksum FROM photos WHERE path=? AND row IS NOT NULL",
                                     (to_db(str(path)),)).fetchone()
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
            c = self._conn
            by_state = dict(c.execute("SELECT state, COUNT(*) FROM photos GROUP BY state").fetchall())
            failures = dict(c.execute("SELECT error, COUNT(*) FROM photos WHERE state=? GROUP BY error", (FAILED,)))
            meta = self._meta()
            owned = c.execute("SELECT COUNT(*) FROM photos WHERE row IS NOT NULL").fetchone()[0]
        n_rows = int(meta.get("n_rows", 0))
        return StoreStats(
            photos=sum(by_state.values()), indexed=by_state.get(INDEXED, 0), pending=by_state.get(PENDING, 0),
            failed=by_state.get(FAILED, 0), failures=failures, rows=n_rows, dead_rows=n_rows - owned,
            model_id=meta.get("model_id"), embed_dim=int(meta["embed_dim"]) if "embed_dim" in meta else None,
        )

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
            live_rows = np.asarray(
                [r for (r,) in self._conn.execute("SELECT row FROM photos WHERE row IS NOT NULL ORDER BY row")],
                dtype=np.int64,
            )
            logger.info("compacting the embedding matrix: %d rows, %d dead", st.rows, st.dead_rows)
            self._switch_matrix(live_rows, st.embed_dim)
            return True

    def check(self) -> list[str]:
        """Consistency problems (empty when healthy): schema, rows in range and unique, states coherent."""
        problems = []
        with self._lock:
            c = self._conn
            if c.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                problems.append("sqlite quick_check failed")
            meta = self._meta()
            if "matrix_file" not in meta:
                return problems
            problem = meta_problem(meta)
            if problem:
                return [*problems, problem]
            dim, n_rows = int(meta["embed_dim"]), int(meta["n_rows"])
            path = self.data_dir / meta["matrix_file"]
            size = path.lstat().st_size if path.is_file() and not path.is_symlink() else -1
            if size < n_rows * dim * self._dtype.itemsize:
                problems.append(f"{path.name} has {'no file' if size < 0 else f'{size} bytes'}, "
                                f"fewer than {n_rows} rows of {dim} floats")
            bad = c.execute("SELECT COUNT(*) FROM photos WHERE row IS NOT NULL AND (row < 0 OR row >= ?)",
                            (n_rows,)).fetchone()[0]
            if bad:
                problems.append(f"{bad} photos point past the {n_rows} committed rows")
            unindexed = c.execute("SELECT COUNT(*) FROM photos WHERE state=? AND row IS NULL", (INDEXED,)).fetchone()[0]
            if unindexed:
                problems.append(f"{unindexed} indexed photos have no embedding row")
            if n_rows and size >= 0:
                try:
                    m = self._matrix_view()
                except StoreError as e:
                    return [*problems, str(e)]
                owned = np.asarray(c.execute("SELECT row, COALESCE(checksum, -1) FROM photos WHERE row IS NOT NULL "
                                             "AND row >= 0 AND row < ?", (m.shape[0],)).fetchall(),
                                   dtype=np.int64).reshape(-1, 2)
                if len(owned):
                    damaged = int((row_checksums(m[owned[:, 0]]) != owned[:, 1]).sum())
                    if damaged:
                        problems.append(f"{damaged} live embedding rows do not match their checksums "
                                        f"(run `python -m app.engine index` to re-encode their photos)")
        return problems

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
