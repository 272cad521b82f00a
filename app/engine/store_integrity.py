"""The matrix and the rows kept in agreement: a writer cuts the matrix to the committed rows when it opens the
index and verifies every row's checksum; ``check()`` verifies everything.

Rows past ``meta.n_rows`` are what a killed process left before its commit: garbage, cut off. A matrix
shorter than the committed rows (a lost tail) or a row that no longer matches its checksum
(``photos.checksum``, :mod:`app.engine.row_checksum`) sends its photos back to the queue, to be encoded again.
"""
from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.engine.row_checksum import row_checksums
from app.engine.store_matrix import EMBEDDING_DTYPES, MATRIX_PREFIX, NOFOLLOW, meta_problem
from app.engine.store_records import StoreError
from app.engine.store_schema import INDEXED, PENDING, read_meta, write_meta

logger = logging.getLogger(__name__)


def recover_matrix(conn: sqlite3.Connection, data_dir: Path, dtype: np.dtype) -> tuple[int | None, str | None]:
    """Make the matrix file agree with the committed row count and drop unused generations. Returns the
    matrix file's descriptor, open for appending (None before the index has a matrix), and a message when
    committed rows were missing (their photos are queued again)."""
    meta = read_meta(conn)
    current = meta.get("matrix_file")
    for f in [f for _, suffix in EMBEDDING_DTYPES.values() for f in data_dir.glob(f"{MATRIX_PREFIX}*{suffix}")]:
        if f.name != current:
            logger.info("removing unused embedding file %s", f)
            f.unlink()
    if current is None:
        return None, None
    message = None
    dim, n_rows = int(meta["embed_dim"]), int(meta["n_rows"])
    path = data_dir / current
    row_bytes = dim * dtype.itemsize
    have = path.lstat().st_size if path.is_file() and not path.is_symlink() else 0
    if have < n_rows * row_bytes:
        usable = have // row_bytes
        message = (f"embedding file {path.name} holds {usable} of {n_rows} committed rows; "
                   f"the photos of the missing rows will be encoded again")
        logger.warning(message)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE photos SET state=?, row=NULL WHERE row >= ?", (PENDING, usable))
        write_meta(conn, n_rows=usable)
        conn.execute("COMMIT")
        n_rows = usable
    if path.is_symlink():
        path.unlink()  # never written through: a link could point anywhere
    fd = os.open(path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o644)
    if have > n_rows * row_bytes:
        logger.info("cutting %d uncommitted bytes off %s", have - n_rows * row_bytes, path.name)
        os.ftruncate(fd, n_rows * row_bytes)
    return fd, message


def verify_rows(conn: sqlite3.Connection, matrix_view: Callable[[], np.ndarray]) -> tuple[bool, str | None]:
    """Checksum every live row; queue the photos of damaged rows again (their rows die). Rows without a
    checksum yet (an index from schema 1) get the checksum of what they hold. Returns whether any photo
    row changed, and a message when rows were damaged."""
    n_rows = int(read_meta(conn).get("n_rows", 0))
    if not n_rows:
        return False, None
    matrix = matrix_view()
    owned = np.asarray(conn.execute(
        "SELECT id, row, COALESCE(checksum, -1) FROM photos WHERE row IS NOT NULL AND row < ? ORDER BY row",
        (matrix.shape[0],)).fetchall(), dtype=np.int64).reshape(-1, 3)
    if not len(owned):
        return False, None
    ids, rows, stored = owned.T
    actual = row_checksums(matrix)[rows]  # all rows, in place: cheaper than gathering the live ones
    adopt = stored < 0
    damaged = ~adopt & (actual != stored)
    if not (adopt.any() or damaged.any()):
        return False, None
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("UPDATE photos SET checksum=? WHERE id=?", zip(actual[adopt].tolist(), ids[adopt].tolist()))
    conn.executemany("UPDATE photos SET state=?, row=NULL, checksum=NULL WHERE id=?",
                     [(PENDING, i) for i in ids[damaged].tolist()])
    conn.execute("COMMIT")
    if not damaged.any():
        return True, None
    message = (f"{int(damaged.sum())} of {len(rows)} embedding rows do not match their checksums "
               f"(damaged or foreign matrix); their photos will be encoded again")
    logger.warning(message)
    return True, message


def index_problems(conn: sqlite3.Connection, data_dir: Path, dtype: np.dtype,
                   matrix_view: Callable[[], np.ndarray]) -> list[str]:
    """Consistency problems (empty when healthy): schema, rows in range and unique, states coherent,
    live rows matching their checksums."""
    problems = []
    if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
        problems.append("sqlite quick_check failed")
    meta = read_meta(conn)
    if "matrix_file" not in meta:
        return problems
    problem = meta_problem(meta)
    if problem:
        return [*problems, problem]
    dim, n_rows = int(meta["embed_dim"]), int(meta["n_rows"])
    path = data_dir / meta["matrix_file"]
    size = path.lstat().st_size if path.is_file() and not path.is_symlink() else -1
    if size < n_rows * dim * dtype.itemsize:
        problems.append(f"{path.name} has {'no file' if size < 0 else f'{size} bytes'}, "
                        f"fewer than {n_rows} rows of {dim} floats")
    bad = conn.execute("SELECT COUNT(*) FROM photos WHERE row IS NOT NULL AND (row < 0 OR row >= ?)",
                       (n_rows,)).fetchone()[0]
    if bad:
        problems.append(f"{bad} photos point past the {n_rows} committed rows")
    unindexed = conn.execute("SELECT COUNT(*) FROM photos WHERE state=? AND row IS NULL", (INDEXED,)).fetchone()[0]
    if unindexed:
        problems.append(f"{unindexed} indexed photos have no embedding row")
    if n_rows and size >= 0:
        try:
            m = matrix_view()
        except StoreError as e:
            return [*problems, str(e)]
        owned = np.asarray(conn.execute("SELECT row, COALESCE(checksum, -1) FROM photos WHERE row IS NOT NULL "
                                        "AND row >= 0 AND row < ?", (m.shape[0],)).fetchall(),
                           dtype=np.int64).reshape(-1, 2)
        if len(owned):
            damaged = int((row_checksums(m[owned[:, 0]]) != owned[:, 1]).sum())
            if damaged:
                problems.append(f"{damaged} live embedding rows do not match their checksums "
                                f"(run `python -m app.engine index` to re-encode their photos)")
    return problems
