"""Checks every hostile case makes: bounded time, trees byte-identical, an empty sandbox."""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Raise TimeoutError in the main thread after ``seconds`` (interrupts blocking system calls too)."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def tree_fingerprint(root: Path, skip: tuple[Path, ...] = ()) -> dict[bytes, tuple]:
    """Every entry under ``root`` without following links: path -> (kind, size, mtime_ns, sha256 or target).

    Regular files are hashed; links are recorded by target (never followed: one may point at /dev/zero);
    FIFOs and devices by their mode only (reading them could block).
    """
    out: dict[bytes, tuple] = {}
    skipped = {os.fsencode(s) for s in skip}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skipped]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[path] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    while block := f.read(1 << 20):
                        h.update(block)
                out[path] = ("file", st.st_size, st.st_mtime_ns, h.hexdigest())
            else:
                out[path] = ("other", stat.S_IFMT(st.st_mode), st.st_mtime_ns)
    return out


def sandbox_is_empty(box: Path) -> list[str]:
    return [str(p) for p in box.rglob("*") if p.is_file() or p.is_symlink()]
