"""Image files for the dataset tests: small real images, and PNG headers that declare any size."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from PIL import Image


def make_image(
    path: Path, size: tuple[int, int] = (8, 6), color=(200, 30, 40), fmt: str | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)
    return path


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height; the pixel data is not there (header only)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )
