"""The photos table's statements: what a scan and an encoded batch record, and the lookups the indexer and
readers make. Each function takes the caller's connection; the store holds the locks around it."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

import numpy as np

from app.engine.pathnames import from_db, to_db
from app.engine.scanner import KnownPhoto, ScanPlan
from app.engine.store_records import FailedPhoto, IndexedPhoto, StoreStats, UnchangedPhoto
from app.engine.store_schema import FAILED, INDEXED, PENDING, read_meta, write_meta

ID_CHUNK = 500  # ids per ``IN (...)`` query, well under SQLite's bound-parameter limit


def known_photos(conn: sqlite3.Connection) -> dict[str, KnownPhoto]:
    """path -> KnownPhoto for every photo in the store (one query)."""
    rows = conn.execute("SELECT path, id, size, mtime_ns, fingerprint, ctime_ns FROM photos").fetchall()
    return {from_db(p): KnownPhoto(i, s, m, f, c) for p, i, s, m, f, c in rows}


def record_plan(conn: sqlite3.Connection, plan: ScanPlan) -> None:
    """A scan's findings in one transaction: new photos queued, changed ones queued again (keeping their
    old embedding searchable until re-encoded), moves renamed, deletions removed."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("DELETE FROM photos WHERE id=?", [(i,) for i in plan.deleted])
        conn.executemany(
            "INSERT INTO photos(path, size, mtime_ns, ctime_ns, state) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, "
            "ctime_ns=excluded.ctime_ns, state=excluded.state",
            [(to_db(f.path), f.size, f.mtime_ns, f.ctime_ns, PENDING) for f in plan.new],
        )
        conn.executemany("UPDATE photos SET size=?, mtime_ns=?, ctime_ns=?, state=?, error=NULL WHERE id=?",
                         [(f.size, f.mtime_ns, f.ctime_ns, PENDING, i) for i, f in plan.changed])
        conn.executemany("UPDATE photos SET path=?, mtime_ns=?, ctime_ns=? WHERE id=?",
                         [(to_db(f.path), f.mtime_ns, f.ctime_ns, i) for i, f in plan.moved])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def record_batch(conn: sqlite3.Connection, indexed: Sequence[IndexedPhoto], checksums: np.ndarray,
                 failed: Sequence[FailedPhoto], gone: Iterable[int], unchanged: Sequence[UnchangedPhoto],
                 n_rows: int) -> None:
    """In one transaction: ``indexed`` photos own rows n_rows, n_rows + 1, ... (already written and
    fsync'ed, with these ``checksums``), ``failed`` ones lose their row, ``unchanged`` ones are indexed
    again on their old row, ``gone`` ones are removed, and meta counts the new rows."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "UPDATE photos SET state=?, row=?, size=?, mtime_ns=?, ctime_ns=COALESCE(?, ctime_ns), fingerprint=?, "
            "checksum=?, error=NULL WHERE id=?",
            [(INDEXED, n_rows + k, p.size, p.mtime_ns, p.ctime_ns, p.fingerprint, int(cs), p.id)
             for k, (p, cs) in enumerate(zip(indexed, checksums.tolist()))],
        )
        conn.executemany(
            "UPDATE photos SET state=?, error=?, size=COALESCE(?, size), mtime_ns=COALESCE(?, mtime_ns), "
            "row=NULL, checksum=NULL, fingerprint=NULL WHERE id=?",
            [(FAILED, f.reason, f.size, f.mtime_ns, f.id) for f in failed],
        )
        conn.executemany(
            "UPDATE photos SET state=?, size=?, mtime_ns=?, ctime_ns=COALESCE(?, ctime_ns), error=NULL "
            "WHERE id=? AND row IS NOT NULL",
            [(INDEXED, u.size, u.mtime_ns, u.ctime_ns, u.id) for u in unchanged],
        )
        conn.executemany("DELETE FROM photos WHERE id=?", [(i,) for i in gone])
        write_meta(conn, n_rows=n_rows + len(indexed))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def requeue_failed(conn: sqlite3.Connection) -> int:
    """Queue every skipped photo again; returns how many."""
    return conn.execute("UPDATE photos SET state=?, error=NULL WHERE state=?", (PENDING, FAILED)).rowcount


def count_pending(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM photos WHERE state=?", (PENDING,)).fetchone()[0]


def pending_after(conn: sqlite3.Connection, after_id: int, limit: int) -> list[tuple[int, str, int, int]]:
    """Up to ``limit`` pending photos with id > after_id: [(id, path, size, mtime_ns)], by id."""
    rows = conn.execute(
        "SELECT id, path, size, mtime_ns FROM photos WHERE state=? AND id>? ORDER BY id LIMIT ?",
        (PENDING, after_id, limit),
    ).fetchall()
    return [(i, from_db(p), s, m) for i, p, s, m in rows]


def select_by_ids(conn: sqlite3.Connection, columns: str, photo_ids: Sequence[int], where: str = "") -> list[tuple]:
    """``SELECT columns FROM photos`` for these photo ids (and ``where``, when given), ID_CHUNK ids a query."""
    ids = [int(i) for i in photo_ids]
    out: list[tuple] = []
    for s in range(0, len(ids), ID_CHUNK):
        part = ids[s : s + ID_CHUNK]
        q = f"SELECT {columns} FROM photos WHERE {where + ' AND ' if where else ''}id IN ({','.join('?' * len(part))})"
        out.extend(conn.execute(q, part).fetchall())
    return out


def embedding_row_of(conn: sqlite3.Connection, path: str) -> tuple[int, int, int | None] | None:
    """(photo id, row, row checksum or None) of the photo at ``path`` if it has an embedding row, else None."""
    return conn.execute("SELECT id, row, checksum FROM photos WHERE path=? AND row IS NOT NULL",
                        (to_db(path),)).fetchone()


def row_owners(conn: sqlite3.Connection, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_rows,) int64 owning photo ids and (n_rows,) int64 row checksums of the first n_rows rows; -1 where
    a row has no owner (dead) or no checksum."""
    owned = conn.execute("SELECT row, id, COALESCE(checksum, -1) FROM photos WHERE row IS NOT NULL AND row < ?",
                         (n_rows,)).fetchall()
    ids = np.full(n_rows, -1, dtype=np.int64)
    checksums = np.full(n_rows, -1, dtype=np.int64)
    if owned:
        triples = np.asarray(owned, dtype=np.int64)
        ids[triples[:, 0]] = triples[:, 1]
        checksums[triples[:, 0]] = triples[:, 2]
    return ids, checksums


def live_rows(conn: sqlite3.Connection) -> np.ndarray:
    """(n_live,) int64 the rows some photo owns, in increasing order."""
    return np.asarray([r for (r,) in conn.execute("SELECT row FROM photos WHERE row IS NOT NULL ORDER BY row")],
                      dtype=np.int64)


def read_stats(conn: sqlite3.Connection) -> StoreStats:
    """Photos by state, skip reasons, and rows (all, and dead: owned by no photo)."""
    by_state = dict(conn.execute("SELECT state, COUNT(*) FROM photos GROUP BY state").fetchall())
    failures = dict(conn.execute("SELECT error, COUNT(*) FROM photos WHERE state=? GROUP BY error", (FAILED,)))
    meta = read_meta(conn)
    owned = conn.execute("SELECT COUNT(*) FROM photos WHERE row IS NOT NULL").fetchone()[0]
    n_rows = int(meta.get("n_rows", 0))
    return StoreStats(
        photos=sum(by_state.values()), indexed=by_state.get(INDEXED, 0), pending=by_state.get(PENDING, 0),
        failed=by_state.get(FAILED, 0), failures=failures, rows=n_rows, dead_rows=n_rows - owned,
        model_id=meta.get("model_id"), embed_dim=int(meta["embed_dim"]) if "embed_dim" in meta else None,
    )
