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
