"""Opening the index database: the one-writer lock, a reader's checked connection, and a writer's connection
to a healthy database, an unreadable file being moved aside (``index.sqlite.corrupt-<time>``) for a fresh one.

The gallery is never touched, so a rebuilt index loses nothing that re-indexing does not restore.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from app.engine.store_matrix import MATRIX_PREFIX, MATRIX_SUFFIX, meta_problem
from app.engine.store_records import StoreBusyError, StoreError
from app.engine.store_schema import DB_NAME, SCHEMA, SCHEMA_VERSION, migrate, read_meta

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: single-writer is then the caller's business
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK_NAME = "writer.lock"


def acquire_writer_lock(data_dir: Path) -> int | None:
    """The descriptor holding the flock on ``data_dir``'s writer lock (None where flock does not exist);
    StoreBusyError when another process holds it. Closing the descriptor releases it."""
    if fcntl is None:
        return None
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        os.close(fd)
        raise StoreBusyError(f"another process is writing the index in {data_dir} (lock {LOCK_NAME})") from e
    return fd


def connect(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None, timeout=10.0)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _newer_schema(db_path: Path, version: int) -> StoreError:
    return StoreError(f"{db_path} has schema version {version}, newer than this engine's {SCHEMA_VERSION}; "
                      f"update the app or use another --data-dir")


def check_schema_version(conn: sqlite3.Connection, data_dir: Path) -> int:
    """The schema version of a reader's database; StoreError unless it is exactly this engine's."""
    db_path = data_dir / DB_NAME
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{db_path} is not a readable index ({e}); open it for writing to rebuild") from e
    if version > SCHEMA_VERSION:
        raise _newer_schema(db_path, version)
    if version == 0:
        raise StoreError(f"no index in {data_dir} yet (being created): run `python -m app.engine index` first")
    if version != SCHEMA_VERSION:
        raise StoreError(f"{db_path} has schema version {version}; open it for writing to rebuild it")
    return version


def damaged_index(data_dir: Path, problem: str) -> StoreError:
    return StoreError(f"the index in {data_dir} is damaged ({problem}); run `python -m app.engine index` to rebuild it")


def open_reader(data_dir: Path) -> sqlite3.Connection:
    """A reader's connection (no lock taken, nothing written); StoreError when there is no index yet, its
    schema is not this engine's, or its meta table is damaged."""
    if not (data_dir / DB_NAME).is_file():
        raise StoreError(f"no index in {data_dir}: run `python -m app.engine index --gallery DIR` first")
    conn = connect(data_dir / DB_NAME)
    try:
        check_schema_version(conn, data_dir)
        problem = meta_problem(read_meta(conn))
    except BaseException:
        conn.close()
        raise
    if problem:
        conn.close()
        raise damaged_index(data_dir, problem)
    return conn


def open_or_rebuild(data_dir: Path, attempt: int = 0) -> tuple[sqlite3.Connection, str | None]:
    """A writer's connection to a healthy database of this schema (created, or migrated in place), and a
    message when a corrupt or foreign file had to be moved aside (None otherwise)."""
    db_path = data_dir / DB_NAME
    problem = None
    conn = None
    try:
        conn = connect(db_path)
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            problem = f"integrity check failed: {check}"
        else:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if version > SCHEMA_VERSION:
                conn.close()
                raise _newer_schema(db_path, version)
            if version == 0 and not tables:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(f"BEGIN; {SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
            elif version == 0 or not {"photos", "meta"} <= tables:
                problem = f"schema version {version} with tables {sorted(tables)} is not this engine's {SCHEMA_VERSION}"
            else:
                migrate(conn, version)
                problem = meta_problem(read_meta(conn))
    except sqlite3.DatabaseError as e:
        problem = f"{type(e).__name__}: {e}"
    if problem is None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        return conn, None
    if conn is not None:
        conn.close()
    if attempt > 0:  # a fresh database fails too: the folder, not the index, is the problem
        raise StoreError(f"cannot create an index in {data_dir}: {problem}")
    moved = db_path.with_name(f"{DB_NAME}.corrupt-{int(time.time())}")
    recovered = f"index {db_path} was unreadable ({problem}); moved to {moved.name}, re-indexing from scratch"
    logger.warning(recovered)
    os.replace(db_path, moved)
    for suffix in ("-wal", "-shm"):
        side = db_path.with_name(DB_NAME + suffix)
        if side.exists():
            os.replace(side, moved.with_name(moved.name + suffix))
    for f in data_dir.glob(f"{MATRIX_PREFIX}*{MATRIX_SUFFIX}"):
        f.unlink()
    conn, _ = open_or_rebuild(data_dir, attempt + 1)
    return conn, recovered
