"""A new generation of the embedding matrix, for compaction and model changes: the new file is written and
fsync'ed first, then photos and ``meta.matrix_file`` are repointed in one transaction, so a process killed
at any instant leaves one whole generation in use (the unused one is deleted on the next open)."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np

from app.engine.store_matrix import MATRIX_PREFIX, fsync_dir, write_matrix
from app.engine.store_schema import INDEXED, PENDING, read_meta, write_meta


def write_generation(conn: sqlite3.Connection, data_dir: Path, suffix: str, old: np.ndarray | None,
                     rows: np.ndarray | None, dim: int, extra_meta: dict | None = None,
                     requeue: bool = False) -> tuple[int, str | None, str]:
    """Write the next generation holding ``old[rows]`` (``rows``: old row numbers to keep, in order;
    None keeps none, and every photo loses its row, queued again if ``requeue``), then switch to it.
    Returns (descriptor of the new file, open for appending; old file name or None; new file name).
    The caller deletes the old file once it no longer maps it."""
    meta = read_meta(conn)
    old_name = meta.get("matrix_file")
    gen = int(meta.get("generation", "0")) + 1
    new_name = f"{MATRIX_PREFIX}{gen}{suffix}"
    new_path = data_dir / new_name
    new_path.unlink(missing_ok=True)  # a stray file or link of that name is replaced, never written through
    fd = write_matrix(new_path, old, rows)
    fsync_dir(data_dir)
    n_new = 0 if rows is None else len(rows)
    try:
        conn.execute("BEGIN IMMEDIATE")
        if rows is None:
            if requeue:
                conn.execute("UPDATE photos SET state=? WHERE state=?", (PENDING, INDEXED))
            conn.execute("UPDATE photos SET row=NULL, checksum=NULL WHERE row IS NOT NULL")
        else:
            owners = dict(conn.execute("SELECT row, id FROM photos WHERE row IS NOT NULL").fetchall())
            # new row numbers are ranks of the old ones, so updating in increasing order never collides
            conn.executemany("UPDATE photos SET row=? WHERE id=?",
                             [(i, owners[int(r)]) for i, r in enumerate(rows.tolist())])
        write_meta(conn, **{"embed_dim": dim, **(extra_meta or {}), "matrix_file": new_name, "generation": gen,
                            "n_rows": n_new})
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        os.close(fd)
        new_path.unlink(missing_ok=True)
        raise
    return fd, old_name, new_name
