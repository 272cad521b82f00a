"""The index database's schema: the photos and meta tables, row states, the ladder that migrates older
versions in place, and reading and writing meta."""
from __future__ import annotations

import logging
import sqlite3

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
DB_NAME = "index.sqlite"

PENDING, INDEXED, FAILED = 0, 1, 2  # photos.state

SCHEMA = """
CREATE TABLE photos (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    fingerprint BLOB,            -- of the bytes that were encoded (NULL until then)
    state INTEGER NOT NULL,      -- 0 pending, 1 indexed, 2 failed (skipped)
    row INTEGER,                 -- embedding row, NULL when the photo has none yet
    error TEXT,                  -- skip reason when failed
    checksum INTEGER,            -- row_checksum of the embedding at ``row``
    ctime_ns INTEGER             -- inode change time when scanned: edits that keep mtime change it
);
CREATE INDEX photos_state ON photos(state, id);
CREATE UNIQUE INDEX photos_row ON photos(row);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Schema ladder: version -> statements that bring the previous version to it.
MIGRATIONS = {
    2: "ALTER TABLE photos ADD COLUMN checksum INTEGER; ALTER TABLE photos ADD COLUMN ctime_ns INTEGER;",
}


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring a database of an older schema version up to :data:`SCHEMA_VERSION`, in one transaction."""
    if version >= SCHEMA_VERSION:
        return
    steps = "".join(MIGRATIONS[v] for v in range(version + 1, SCHEMA_VERSION + 1))
    logger.info("migrating the index from schema %d to %d", version, SCHEMA_VERSION)
    conn.executescript(f"BEGIN; {steps} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    """The meta table as a dict (all values are stored as text)."""
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def write_meta(conn: sqlite3.Connection, **values: object) -> None:
    """Set meta keys (as text), inside the caller's transaction."""
    conn.executemany(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        [(k, str(v)) for k, v in values.items()],
    )
