"""Safe photo decoding (any mode to RGB, EXIF orientation, size limits) and the eval preprocessing.

The preprocessing is compression's ``image_transform`` (shortest side to ``image_size`` with PIL
bicubic, centre crop, /255, normalise by mean/std) written with PIL and numpy only, so that the
engine runs where torch does not (a phone with ExecuTorch or Core ML). ``tests/engine/test_decode.py``
checks that both give the same tensor.

Nothing here writes to the photo: files are opened read-only and non-blocking.
"""
from __future__ import annotations

import functools
import logging
import os
import stat
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from app.engine.fingerprint import fingerprint_bytes
from formats.preprocess import RESIZE_POLICY, Preprocess  # noqa: F401 - RESIZE_POLICY: this module's name too

logger = logging.getLogger(__name__)

# How an RGB image becomes the model's input: the one definition, shared with compression and export.
ImagePreprocess = Preprocess

# Reasons a photo is skipped, as counted in index reports.
MISSING = "missing"
PERMISSION_DENIED = "permission denied"
NOT_A_FILE = "not a regular file"
EMPTY_FILE = "empty file"
TOO_LARGE_FILE = "file too large"
NOT_AN_IMAGE = "not an image"
DECOMPRESSION_BOMB = "decompression bomb"
CORRUPT = "corrupt or truncated image"
UNSUPPORTED_MODE = "unsupported colour mode"
CHANGED_WHILE_READING = "changed while reading"
READ_ERROR = "read error"
UNSUPPORTED_FORMAT = "unsupported image format"
SPARSE_FILE = "sparse file (has holes)"
EXIF_ORIENTATION = 0x0112

# What the engine decodes, by content: Pillow is told these formats only (``Image.open(formats=...)``),
# so a file whose bytes are PostScript, TIFF, BMP, ICO, PPM ... is never handed to that decoder (EPS
# would run Ghostscript) whatever its name. HEIF/AVIF count when a plugin registered them.
ENGINE_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "HEIF", "AVIF")
# ... and by name: a file is decoded only if its extension is one of these (the scanner walks for them).
ENGINE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".heic", ".heif", ".avif")


class PhotoDecodeError(Exception):
    """A photo that cannot be turned into pixels; ``reason`` is one of the module's reason strings."""

    def __init__(self, path: str | Path, reason: str, detail: str = ""):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class DecodeLimits:
    """Guards against files that would exhaust memory, and the JPEG fast path."""

    max_file_bytes: int = 256 * 1024 * 1024  # larger files are skipped without reading them
    max_pixels: int = 64_000_000  # pixels to decode (after JPEG draft scaling); more is a "bomb"
    max_aspect: int = 64  # longer sides are cut to this ratio before resizing (see central_window)
    jpeg_draft: bool = True  # decode big JPEGs at a reduced DCT scale, shorter side still >= draft_factor x image_size
    draft_factor: int = 1  # 1: the smallest DCT scale that still covers the model's input (see jpeg_draft)


@dataclass
class LoadedPhoto:
    """A decoded, preprocessed photo and the identity of the exact bytes it came from."""

    pixels: np.ndarray | None  # (3, S, S) float32, normalised; None: the bytes were those already encoded
    size: int  # bytes, from fstat of the file that was read
    mtime_ns: int
    fingerprint: bytes
    ctime_ns: int | None = None


def central_window(image: Image.Image, max_aspect: int) -> Image.Image:
    """The centre of an image longer than ``max_aspect`` x its short side, cut to that ratio.

    Resizing the short side up to the model size first would make the long side grow with it: a
    563-byte 500000x1 PNG became a 2.8 GB intermediate. The centre crop keeps only the middle, so
    the rest is dropped before resizing; the output size is then at most ``max_aspect`` x S x S.
    """
    w, h = image.size
    if max(w, h) <= max_aspect * min(w, h):
        return image
    if w > h:
        keep = max_aspect * h
        left = (w - keep) // 2
        return image.crop((left, 0, left + keep, h))
    keep = max_aspect * w
    top = (h - keep) // 2
    return image.crop((0, top, w, top + keep))


def preprocess_image(image: Image.Image, pre: ImagePreprocess, max_aspect: int = DecodeLimits.max_aspect) -> np.ndarray:
    """RGB PIL image -> (3, S, S) float32: torchvision Resize(S, bicubic) + CenterCrop(S) + ToTensor + Normalize.

    Exactly that for aspect ratios up to ``max_aspect``; beyond, the centre is cut out first
    (:func:`central_window`), which keeps memory bounded and the result equal up to edge pixels.
    """
    if image.mode != "RGB":
        raise ValueError(f"preprocess_image expects an RGB image, got mode {image.mode!r}")
    s = pre.image_size
    image = central_window(image, max_aspect)
    w, h = image.size
    if w <= h:
        new_w, new_h = s, int(s * h / w)
    else:
        new_w, new_h = int(s * w / h), s
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), getattr(Image, "Resampling", Image).BICUBIC)  # Resampling: Pillow 9.1+
    top, left = round((new_h - s) / 2.0), round((new_w - s) / 2.0)  # as torchvision center_crop
    image = image.crop((left, top, left + s, top + s))
    x = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255)
    x = (x - np.asarray(pre.mean, dtype=np.float32)) / np.asarray(pre.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB: alpha composited on white, 16/32-bit and float scaled to 8 bits.

    Raises ValueError for a mode PIL cannot convert (e.g. LAB without a colour profile).
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _wide_grey_to_l(image).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, ...


def _wide_grey_to_l(image: Image.Image, rows_per_block: int = 256) -> Image.Image:
    """16/32-bit or float grey -> 8-bit L, a block of rows at a time: never a float64 copy of the whole
    image (a 124 KB 16-bit 7999x7999 PNG used to cost 1.6 GB here)."""
    arr = np.asarray(image)
    mode = image.mode
    if mode == "F":
        scale = 255.0 if arr.size and np.nanmax(arr) <= 1.0 else 1.0
    elif mode.startswith("I;16") or (arr.size and arr.max() > 255):
        scale = 1.0 / 257.0  # 16-bit range to 8-bit
    else:
        scale = 1.0
    out = np.empty(arr.shape, dtype=np.uint8)
    for r in range(0, arr.shape[0], rows_per_block):
        block = arr[r : r + rows_per_block].astype(np.float32) * np.float32(scale)
        np.rint(block, out=block)
        np.clip(np.nan_to_num(block, copy=False), 0, 255, out=block)
        out[r : r + rows_per_block] = block
    return Image.fromarray(out, mode="L")


def read_photo_bytes(path: str | Path, limits: DecodeLimits) -> tuple[bytes, int, int]:
    """(content, size, mtime_ns) of a regular file, read once, read-only. Raises PhotoDecodeError."""
    data, st = _read_regular_file(path, limits)
    return data, st.st_size, st.st_mtime_ns


def _has_holes(fd: int, size: int) -> bool:
    """A file with holes (sparse) is never a photo a camera or an app wrote; reading it costs its
    full size for zeros. Where the file system cannot tell, assume none."""
    try:
        return os.lseek(fd, 0, getattr(os, "SEEK_HOLE", 4)) < size
    except OSError:
        return False


def _read_regular_file(path: str | Path, limits: DecodeLimits) -> tuple[bytes, os.stat_result]:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as e:
        raise PhotoDecodeError(path, MISSING) from e
    except PermissionError as e:
        raise PhotoDecodeError(path, PERMISSION_DENIED) from e
    except OSError as e:  # ELOOP, ENAMETOOLONG, EIO ...
        raise PhotoDecodeError(path, READ_ERROR, e.strerror or str(e)) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PhotoDecodeError(path, NOT_A_FILE)
        if st.st_size == 0:
            raise PhotoDecodeError(path, EMPTY_FILE)
        if st.st_size > limits.max_file_bytes:
            raise PhotoDecodeError(path, TOO_LARGE_FILE, f"{st.st_size} bytes > {limits.max_file_bytes}")
        if _has_holes(fd, st.st_size):
            raise PhotoDecodeError(path, SPARSE_FILE)
        os.lseek(fd, 0, os.SEEK_SET)
        chunks, remaining = [], st.st_size + 1  # one byte more: notices a file that grew
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 8 * 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        after = os.fstat(fd)
    except PermissionError as e:
        raise PhotoDecodeError(path, PERMISSION_DENIED) from e
    except OSError as e:
        raise PhotoDecodeError(path, READ_ERROR, e.strerror or str(e)) from e
    finally:
        os.close(fd)
    if len(data) != st.st_size or after.st_mtime_ns != st.st_mtime_ns or after.st_size != st.st_size:
        raise PhotoDecodeError(path, CHANGED_WHILE_READING)
    return data, st


def register_optional_plugins() -> None:
    """Let Pillow open HEIC/HEIF (iPhone photos) when pillow-heif is installed; a no-op otherwise."""
    try:
        import pillow_heif
    except ImportError:
        return
    pillow_heif.register_heif_opener()


@functools.cache
def engine_formats() -> tuple[str, ...]:
    """:data:`ENGINE_FORMATS` that the installed Pillow (and its plugins) can open."""
    register_optional_plugins()
    Image.init()
    return tuple(f for f in ENGINE_FORMATS if f in Image.OPEN)


def check_extension(path: str | Path) -> None:
    """Refuse a file whose name does not say it is a photo of a supported kind. Raises PhotoDecodeError."""
    ext = os.path.splitext(os.fsdecode(path))[1].lower()
    if ext not in ENGINE_EXTENSIONS:
        raise PhotoDecodeError(path, UNSUPPORTED_FORMAT, f"extension {ext or '(none)'!r}")


def jpeg_draft(image: Image.Image, min_side: int) -> tuple[int, int]:
    """Make a JPEG (not yet loaded) decode at the smallest DCT scale, 1/1, 1/2, 1/4 or 1/8, whose shorter
    side is still >= ``min_side``; returns the size it will decode to (other formats: unchanged).

    libjpeg then skips most of the inverse DCT and never holds the full-size pixels: a 12-MP photo for a
    224-px model decodes at 500x375 (1/8), 64x fewer pixels. The preprocessing's bicubic resize does the
    rest, as it would from the full size (tests/engine/test_decode.py bounds the difference).
    """
    if image.format not in ("JPEG", "MPO") or min_side <= 0:
        return image.size
    image.draft(image.mode, (min_side, min_side))  # Pillow: the largest scale with both sides >= min_side
    return image.size


def decode_rgb(data: bytes, path: str | Path, limits: DecodeLimits, target_size: int | None = None) -> Image.Image:
    """Encoded bytes -> RGB PIL image, EXIF orientation applied; first frame of animations.

    ``target_size`` (the model's image size) enables the JPEG draft fast path. Raises PhotoDecodeError.
    """
    check_extension(path)
    try:
        image = Image.open(BytesIO(data), formats=engine_formats())
    except Image.DecompressionBombError as e:
        raise PhotoDecodeError(path, DECOMPRESSION_BOMB, str(e)) from e
    except Image.UnidentifiedImageError as e:
        raise PhotoDecodeError(path, NOT_AN_IMAGE, "not one of " + ", ".join(engine_formats())) from e
    except Exception as e:
        raise PhotoDecodeError(path, CORRUPT, f"{type(e).__name__}: {e}") from e
    try:
        if limits.jpeg_draft and target_size:
            jpeg_draft(image, limits.draft_factor * target_size)
        w, h = image.size
        if w <= 0 or h <= 0 or w * h > limits.max_pixels:
            raise PhotoDecodeError(path, DECOMPRESSION_BOMB, f"{w}x{h} pixels > {limits.max_pixels}")
        image.load()
    except PhotoDecodeError:
        raise
    except MemoryError as e:
        raise PhotoDecodeError(path, DECOMPRESSION_BOMB, "out of memory while decoding") from e
    except Exception as e:
        raise PhotoDecodeError(path, CORRUPT, f"{type(e).__name__}: {e}") from e
    try:
        if image.getexif().get(EXIF_ORIENTATION, 1) != 1:  # exif_transpose copies even an upright image
            image = ImageOps.exif_transpose(image)
    except Exception as e:  # noqa: BLE001 - a malformed EXIF block must not cost the photo: keep it unrotated
        logger.debug("%s: ignoring unreadable EXIF orientation (%s)", path, e)
    try:
        return to_rgb(image)
    except (ValueError, OSError) as e:
        raise PhotoDecodeError(path, UNSUPPORTED_MODE, f"mode {image.mode}: {e}") from e


def load_photo(path: str | Path, pre: ImagePreprocess, limits: DecodeLimits | None = None,
               unless_fingerprint: bytes | None = None) -> LoadedPhoto:
    """Read, decode and preprocess one photo. Raises PhotoDecodeError with a countable reason.

    If the bytes read have fingerprint ``unless_fingerprint`` (those already encoded: a ``touch``),
    nothing is decoded and ``pixels`` is None.
    """
    limits = limits or DecodeLimits()
    check_extension(path)
    data, st = _read_regular_file(path, limits)
    size, mtime_ns = st.st_size, st.st_mtime_ns
    fingerprint = fingerprint_bytes(data)
    if unless_fingerprint is not None and fingerprint == unless_fingerprint:
        return LoadedPhoto(None, size, mtime_ns, fingerprint, st.st_ctime_ns)
    image = decode_rgb(data, path, limits, target_size=pre.image_size)
    try:
        pixels = preprocess_image(image, pre, limits.max_aspect)
    except (ValueError, OSError) as e:
        raise PhotoDecodeError(path, CORRUPT, f"{type(e).__name__}: {e}") from e
    return LoadedPhoto(pixels=pixels, size=size, mtime_ns=mtime_ns, fingerprint=fingerprint, ctime_ns=st.st_ctime_ns)
