"""A gallery of hostile entries, one builder per case: what an attacker or a careless user puts in a photo folder.

Each case writes its entries under a gallery folder and says which of them are real photos (the
only paths a search may ever return); everything else must be skipped or never walked.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

EPS_LOOP = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\n"
EPS_WRITER = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n(out.txt) (w) file\n"


def encoded(fmt: str, size=(16, 16), mode="RGB", seed: int = 0, **save) -> bytes:
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8), "RGB")
    if mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 10))
            + _png_chunk(b"IEND", b""))


def png_with_text_bomb() -> bytes:
    """A valid 16x16 PNG carrying a zTXt chunk that inflates to 200 MB."""
    png = encoded("PNG")
    bomb = _png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"\0" * (200 * 1024 * 1024), 9))
    return png[:33] + bomb + png[33:]  # after the IHDR chunk


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims ``width`` x ``height`` pixels."""
    data = bytearray(encoded("JPEG", (16, 16)))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def gif_many_frames(n: int) -> bytes:
    frames = [Image.new("P", (8, 8), i % 256) for i in range(n)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=10)
    return buf.getvalue()


def grey16_png(side: int) -> bytes:
    arr = np.zeros((side, side), dtype="<u2")
    buf = io.BytesIO()
    Image.frombytes("I;16", (side, side), arr.tobytes()).save(buf, format="PNG")
    return buf.getvalue()


def _write(path: Path | bytes, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


# case -> builder(gallery) returning the real photos it wrote (paths as str)
Builder = Callable[[Path], list[str]]


def _file(name: str, data: Callable[[], bytes], real: bool = False) -> Builder:
    def build(g: Path) -> list[str]:
        _write(g / name, data())
        return [str(g / name)] if real else []
    return build


def _raw_name(raw: bytes) -> Builder:
    def build(g: Path) -> list[str]:
        path = os.fsencode(g) + b"/" + raw
        _write(path, encoded("JPEG", seed=7))
        return [os.fsdecode(path)]
    return build


def _fifo(g: Path) -> list[str]:
    os.mkfifo(g / "fifo.jpg")
    return []


def _link(name: str, target: str) -> Builder:
    def build(g: Path) -> list[str]:
        os.symlink(target, g / name)
        return []
    return build


def _loop(g: Path) -> list[str]:
    (g / "sub").mkdir()
    os.symlink(g, g / "sub" / "loop")
    return []


def _folder_named_jpg(g: Path) -> list[str]:
    (g / "folder.jpg").mkdir()
    _write(g / "folder.jpg" / "inner.png", encoded("PNG", seed=3))
    return [str(g / "folder.jpg" / "inner.png")]


def _deep(g: Path) -> list[str]:
    d = g.joinpath(*["d"] * 60)
    d.mkdir(parents=True)
    _write(d / "deep.png", encoded("PNG", seed=4))
    return [str(d / "deep.png")]


def _nomedia_and_hidden(g: Path) -> list[str]:
    for folder in ("private", ".hidden"):
        (g / folder).mkdir()
        _write(g / folder / "p.png", encoded("PNG", seed=5))
    (g / "private" / ".nomedia").write_bytes(b"")
    return []


def _sparse_case(name: str, size: int) -> Builder:
    def build(g: Path) -> list[str]:
        _sparse(g / name, size)
        return []
    return build


def _many_entries(g: Path) -> list[str]:
    """A folder of 2,000 entries that are not photos (text files named .jpg, other extensions)."""
    d = g / "junk"
    d.mkdir()
    for i in range(1000):
        (d / f"{i}.jpg").write_bytes(b"junk")
        (d / f"{i}.txt").write_bytes(b"junk")
    return []


CASES: dict[str, Builder] = {
    "eps-endless-loop-named-jpg": _file("eps-loop.jpg", lambda: EPS_LOOP),
    "eps-file-writer-named-jpg": _file("eps-writer.jpg", lambda: EPS_WRITER),
    "tiff-named-jpg": _file("tiff.jpg", lambda: encoded("TIFF")),
    "bmp-named-jpg": _file("bmp.jpg", lambda: encoded("BMP")),
    "ico-named-jpg": _file("ico.jpg", lambda: encoded("ICO")),
    "ppm-named-jpg": _file("ppm.jpg", lambda: encoded("PPM")),
    "png-named-jpg": _file("png-named.jpg", lambda: encoded("PNG"), real=True),
    "uppercase-extension": _file("UPPER.JPG", lambda: encoded("JPEG", seed=8), real=True),
    "latin1-name": _raw_name(b"caf\xe9.jpg"),
    "invalid-utf8-name": _raw_name(b"\xff\xfe\x80.jpg"),
    "newline-in-name": _file("fake\n 1.0000  evil.png", lambda: encoded("PNG", seed=9), real=True),
    "ansi-escape-in-name": _file("red\x1b[31mALERT\x1b[0m.png", lambda: encoded("PNG", seed=10), real=True),
    "extreme-aspect-500000x1": _file("strip.png", lambda: encoded("PNG", size=(500_000, 1)), real=True),
    "grey16-3000x3000": _file("grey16.png", lambda: grey16_png(3000), real=True),
    "png-bomb-header": _file("bomb.png", lambda: png_header_only(100_000, 100_000)),
    "jpeg-claiming-65000x65000": _file("huge-dims.jpg", lambda: jpeg_claiming(65000, 65000)),
    "png-text-chunk-bomb": _file("ztxt.png", png_with_text_bomb, real=True),
    "gif-2000-frames": _file("frames.gif", lambda: gif_many_frames(2000), real=True),
    "zero-bytes": _file("zero.jpg", lambda: b""),
    "truncated-jpeg": _file("truncated.jpg", lambda: encoded("JPEG", (64, 64))[:200]),
    "text-named-png": _file("text.png", lambda: b"not an image\n" * 50),
    "fifo": _fifo,
    "link-to-dev-zero": _link("zero-device.jpg", "/dev/zero"),
    "link-to-dev-urandom": _link("urandom.jpg", "/dev/urandom"),
    "broken-link": _link("broken.jpg", "/nonexistent/target.jpg"),
    "link-to-root-folder": _link("root-link", "/"),
    "folder-link-loop": _loop,
    "folder-named-jpg": _folder_named_jpg,
    "60-folders-deep": _deep,
    "nomedia-and-hidden-folders": _nomedia_and_hidden,
    "sparse-200MB": _sparse_case("sparse.jpg", 200 * 1024 * 1024),
    "sparse-300MB-over-size-limit": _sparse_case("huge.jpg", 300 * 1024 * 1024),
    "2000-junk-entries": _many_entries,
}


def build_case(case: str, gallery: Path) -> list[str]:
    """Write ``case`` into ``gallery`` (created); returns the real photos it holds."""
    gallery.mkdir(parents=True, exist_ok=True)
    return CASES[case](gallery)
