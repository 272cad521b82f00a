"""The embedding matrix file: its names, element types and checks, and the durable writes it relies on.

Row r of ``embeddings-<generation>.f32`` is bytes [r*D*4, (r+1)*D*4) (``.f16``: the same rows as little-endian
float16). Only names matching :data:`MATRIX_NAME` are ever joined to the data directory, so nothing the
database says can point the engine at a file elsewhere.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from app.engine.store_records import StoreError

MATRIX_PREFIX = "embeddings-"
MATRIX_SUFFIX = ".f32"
MATRIX_NAME = re.compile(r"embeddings-[0-9]{1,18}\.f(32|16)")  # the only matrix file names meta may hold
MAX_EMBED_DIM = 65536
DTYPE = np.dtype("<f4")
# how the matrix stores each embedding: name -> (dtype, file suffix); float32 unless asked at creation
EMBEDDING_DTYPES = {"float32": (np.dtype("<f4"), ".f32"), "float16": (np.dtype("<f2"), ".f16")}
NORM_TOLERANCE = 1e-2  # stored embeddings are L2-normalised; farther from 1 is an encoder failure
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def fdatasync(fd: int) -> None:
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _whole(value: str | None, low: int, high: int) -> bool:
    return value is not None and value.isascii() and value.isdigit() and low <= int(value) <= high


def meta_problem(meta: dict[str, str]) -> str | None:
    """What is wrong with the meta table, or None. The matrix file must be a bare name this engine
    writes (never a path: it is joined to the data directory), sizes must be whole numbers."""
    name = meta.get("matrix_file")
    if name is None:
        return None
    if not MATRIX_NAME.fullmatch(name):
        return f"matrix_file {name!r} is not an embedding file name of this engine"
    if not _whole(meta.get("embed_dim"), 1, MAX_EMBED_DIM):
        return f"embed_dim {meta.get('embed_dim')!r} is not a whole number from 1 to {MAX_EMBED_DIM}"
    if not _whole(meta.get("n_rows"), 0, 1 << 40) or not _whole(meta.get("generation", "0"), 0, 1 << 60):
        return f"n_rows {meta.get('n_rows')!r} / generation {meta.get('generation')!r} are not whole numbers"
    return None


def dtype_name_of(matrix_file: str) -> str:
    """"float32" or "float16": what a matrix file of this name holds (its suffix says)."""
    return "float16" if matrix_file.endswith(".f16") else "float32"


def map_matrix(path: Path, dim: int, rows: int) -> np.ndarray:
    """(n, dim) read-only memmap of the first n <= ``rows`` rows of the matrix file at ``path``: fewer
    when the file is short, none when it is missing. Never follows a link."""
    dtype = EMBEDDING_DTYPES[dtype_name_of(path.name)][0]
    try:
        with open(os.open(path, os.O_RDONLY | NOFOLLOW), "rb") as f:
            n = min(rows, os.fstat(f.fileno()).st_size // (dim * dtype.itemsize))
            if n:
                return np.memmap(f, dtype=dtype, mode="r", shape=(n, dim))
    except FileNotFoundError:
        pass
    except OSError as e:
        raise StoreError(f"cannot read the embedding file {path}: {e.strerror or e}") from e
    return np.empty((0, dim), dtype=dtype)


def write_matrix(path: Path, old: np.ndarray | None, rows: np.ndarray | None) -> int:
    """Create the matrix file ``path`` holding ``old[rows]`` in that order (``rows`` None or empty: no
    rows), fsync'ed; returns its descriptor, open for appending. On failure the file is removed."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | NOFOLLOW, 0o644)
    try:
        if old is not None and rows is not None and len(rows):
            offset, chunk = 0, 4096
            for s in range(0, len(rows), chunk):
                block = np.ascontiguousarray(old[rows[s : s + chunk]], dtype=old.dtype).tobytes()
                pwrite_all(fd, block, offset)
                offset += len(block)
        fdatasync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    return fd


def storable_block(embeddings: list[np.ndarray], dim: int, dtype: np.dtype) -> np.ndarray:
    """(len(embeddings), dim) in the matrix's ``dtype``, refusing what an encoder failure produces: the
    wrong size, non-finite values, vectors that are not L2-normalised. float16: what is returned is
    what is stored, so it is what the row checksums must cover."""
    block = np.stack([np.asarray(e, dtype=DTYPE).reshape(-1) for e in embeddings])
    if block.shape[1] != dim:
        raise StoreError(f"embeddings of size {block.shape[1]} do not fit the index's {dim}")
    if not np.isfinite(block).all():
        raise StoreError("refusing to store non-finite embeddings (encoder failure?)")
    norms = np.linalg.norm(block, axis=1)
    if np.abs(norms - 1).max() > NORM_TOLERANCE:
        raise StoreError(f"refusing to store embeddings that are not L2-normalised (norms "
                         f"{norms.min():.4g} to {norms.max():.4g}; encoder failure?)")
    return block.astype(dtype)
