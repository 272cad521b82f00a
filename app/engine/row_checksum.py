"""A 32-bit checksum per embedding row, vectorised, so a damaged or foreign matrix row is never ranked.

checksum(row) = sum_j word_j * m_j mod 2**32 over the row's float32 words, with a fixed odd
multiplier m_j per column. Changing any one word changes the sum (an odd multiplier is invertible
mod 2**32), so every single byte flip is caught; rows swapped or taken from another index differ
unless their embeddings are equal. numpy computes it for a whole block of rows at memory speed.
"""
from __future__ import annotations

import functools

import numpy as np

_BLOCK_ROWS = 16384  # rows per vectorised block: bounds the temporary to 64 KiB x D


@functools.cache
def _multipliers(dim: int) -> np.ndarray:
    j = np.arange(1, dim + 1, dtype=np.uint64)
    return (((j * np.uint64(2654435761)) % np.uint64(1 << 32)) | np.uint64(1)).astype("<u4")


def row_checksums(rows: np.ndarray) -> np.ndarray:
    """(N, D) float32 or float16 -> (N,) int64 checksums in [0, 2**32).

    uint32 products and sums wrap mod 2**32 in numpy, which is exactly the arithmetic wanted. float16
    rows are summed over their own 16-bit words (widened), so checking them never converts floats.
    """
    half = np.asarray(rows).dtype == np.float16
    rows = np.ascontiguousarray(rows, dtype="<f2" if half else "<f4")
    n, dim = rows.shape
    mult = _multipliers(dim)
    out = np.empty(n, dtype=np.int64)
    words = rows.view("<u2" if half else "<u4")
    for s in range(0, n, _BLOCK_ROWS):
        out[s : s + _BLOCK_ROWS] = (words[s : s + _BLOCK_ROWS] * mult).sum(axis=1, dtype=np.uint32)
    return out
