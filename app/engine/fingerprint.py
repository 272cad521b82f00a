"""A content fingerprint of a photo file: a hash of all its bytes, so that no edit passes for a move.

An earlier version hashed 64 KiB at each end: a big photo edited in the middle and moved kept its
fingerprint and was taken for the old photo moved. The whole file is hashed now; the indexer has
the bytes in memory anyway, and the scanner hashes only new files whose size equals that of a photo
that vanished in the same scan. SHA-256 (cut to 16 bytes) because CPUs hash it in hardware: on this
machine it took about half the time of BLAKE2b, a few ms for a 3 MB photo against ~25 ms to decode it.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK = 1024 * 1024  # bytes read at a time by fingerprint_file


def fingerprint_bytes(data: bytes | memoryview) -> bytes:
    """16 bytes of SHA-256 of (tag, size, every byte); equals :func:`fingerprint_file` of the same bytes."""
    h = _start(len(data))
    h.update(data)
    return h.digest()[:16]


def _start(size: int):
    h = hashlib.sha256(b"pocketclip-fingerprint-v2")
    h.update(size.to_bytes(8, "little"))
    return h


def fingerprint_file(path: str | Path) -> bytes:
    """:func:`fingerprint_bytes` of a file, read in chunks. Raises OSError."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        h = _start(size)
        offset = 0
        while offset < size:
            chunk = os.pread(fd, min(CHUNK, size - offset), offset)
            if not chunk:
                break
            h.update(chunk)
            offset += len(chunk)
        return h.digest()[:16]
    finally:
        os.close(fd)
