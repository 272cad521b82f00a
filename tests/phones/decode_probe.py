"""Decodes a fixed set of photos with the engine and prints what came out, as JSON (run in two environments
and compared by test_phone_libs.py): `python decode_probe.py REPO WORKDIR [--write]`. With --write it
first writes the photos (once, in one environment, so both decode the same bytes)."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    repo, work = Path(sys.argv[1]), Path(sys.argv[2])
    sys.path.insert(0, str(repo))
    import numpy as np
    from PIL import Image

    from app.engine.clip_split import clip_split
    from app.engine.decode import DecodeLimits, ImagePreprocess, PhotoDecodeError, load_photo
    from app.thumbnails import ThumbnailCache

    write = "--write" in sys.argv[3:]
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    photos = {}
    base = Image.fromarray(rng.integers(0, 256, size=(45, 61, 3), dtype=np.uint8), "RGB")
    for name, make in {
        "rgb.png": lambda p: base.save(p),
        "wide.jpg": lambda p: base.resize((90, 30)).save(p, quality=92),
        "tall.png": lambda p: base.resize((20, 70)).save(p),
        "palette.png": lambda p: base.convert("P").save(p),
        "la.png": lambda p: base.convert("LA").save(p),
        "rgba.png": lambda p: base.convert("RGBA").save(p),
        "cmyk.jpg": lambda p: base.convert("CMYK").save(p, quality=95),
        "grey16.png": lambda p: Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257).save(p),
        "rotated.jpg": lambda p: _with_orientation(base, p, 6),
        "truncated.jpg": lambda p: p.write_bytes(_jpeg_bytes(base)[:300]),
    }.items():
        path = work / name
        if write:
            make(path)
        photos[name] = path
    pre = ImagePreprocess(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    out: dict[str, object] = {}
    for name, path in photos.items():
        try:
            pixels = load_photo(path, pre, DecodeLimits()).pixels
            out[name] = {"shape": list(pixels.shape), "values": np.round(pixels.astype(float), 4).ravel().tolist()}
        except PhotoDecodeError as e:
            out[name] = {"error": e.reason}
    thumbs = ThumbnailCache(work / f"thumbs-{np.__version__}")
    out["thumbnail"] = list(Image.open(thumbs.get(photos["wide.jpg"], max_side=24)).size)
    out["split"] = clip_split("it's a RED circle, isn't it? 🐱 東京 123")
    out["pillow"] = Image.__version__ if hasattr(Image, "__version__") else __import__("PIL").__version__
    out["numpy"] = np.__version__
    print(json.dumps(out))
    return 0


def _jpeg_bytes(image) -> bytes:
    from io import BytesIO

    buf = BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _with_orientation(image, path: Path, orientation: int) -> None:
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, quality=92, exif=exif.tobytes())


if __name__ == "__main__":
    sys.exit(main())
