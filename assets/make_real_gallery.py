"""Write ``assets/real_gallery``: the real-photo check set and clip art test drawings, with captions and credits.

    python assets/make_real_gallery.py            # 19 photos + 40 drawings, about 2 MB

The desktop app's default gallery: pictures of the kind the offline default model (``make run``: the
clip art + real photo student) was trained on, none of them seen in training. ``photos/`` holds the 19
captioned photos of ``compression.data.real_photos.CHECK_SET`` (longest side at most 640 px, JPEG),
``clipart/`` drawings spread evenly over the Open Clip Art Library's *test* split (at most 320 px,
transparent parts flattened on white as in training, PNG). ``captions.tsv`` (``path<TAB>caption``)
feeds ``python -m app.engine eval --captions``; ``CREDITS.md`` names every file's source and licence.
The output is a pure function of the installed packages (same bytes on a re-run). A development
script: it imports the data readers, which the app itself never does.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from PIL import Image

from compression.data.openclipart import OPENCLIPART_ROOT, load_openclipart
from compression.data.real_photos import CHECK_SET, real_photo_check

PHOTO_SIDE = 640  # longest side of a photo, px
DRAWING_SIDE = 320  # longest side of a drawing, px
JPEG_QUALITY = 85

# licence of each package's photos, as compression/data/real_photos.py records them
PHOTO_LICENCES = {
    "skimage": "CC0 or public domain, as its `skimage.data` docstring states",
    "matplotlib": "public domain (US Navy photograph)",
    "sklearn": "CC-BY 2.0, https://creativecommons.org/licenses/by/2.0/",
}
SKLEARN_CREDITS = {  # CC-BY asks for the credit line
    "china.jpg": 'Some rights reserved by danielbuechele',
    "flower.jpg": 'Some rights reserved by Flickr user vultilion',
}


def _shrink(image: Image.Image, side: int) -> Image.Image:
    """``image`` with its longest side at most ``side`` px (aspect kept; never enlarged)."""
    if max(image.size) <= side:
        return image
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def write_photos(out: Path) -> list[tuple[str, str, str]]:
    """The check set's photos as ``out/photos/<name>.jpg``; (relative path, caption, credit) each."""
    (out / "photos").mkdir(parents=True)
    check = real_photo_check()
    rows = []
    for i, (package, relative, caption) in enumerate(CHECK_SET):
        name = f"photos/{PurePosixPath(relative).stem}.jpg"
        _shrink(check.images.load(i), PHOTO_SIDE).save(out / name, format="JPEG", quality=JPEG_QUALITY,
                                                        optimize=True)
        credit = f"{package}: `{relative}`; {PHOTO_LICENCES[package]}"
        if PurePosixPath(relative).name in SKLEARN_CREDITS:
            credit += f'; "{SKLEARN_CREDITS[PurePosixPath(relative).name]}"'
        rows.append((name, caption, credit))
    return rows


def write_drawings(out: Path, count: int, root: Path = OPENCLIPART_ROOT) -> list[tuple[str, str, str]]:
    """``count`` drawings spread evenly over the clip art test split as ``out/clipart/<key>.png``."""
    (out / "clipart").mkdir(parents=True)
    test = load_openclipart(root).splits["test"]
    if not 0 < count <= len(test):
        raise SystemExit(f"--count must be between 1 and {len(test)} (the clip art test split's size), got {count}")
    rows = []
    for i in (k * len(test) // count for k in range(count)):
        key = test.names[i]
        name = f"clipart/{key.replace('/', '-')}.png"
        _shrink(test.images.load(i), DRAWING_SIDE).save(out / name, format="PNG", optimize=True)
        rows.append((name, test.captions[i][0],
                     f"Open Clip Art Library (Debian openclipart-png/-svg): `{key}`; public domain"))
    return rows


def credits_markdown(rows: list[tuple[str, str, str]]) -> str:
    """``CREDITS.md``: where each file comes from and under which licence."""
    head = f"""# Real gallery: sources and licences

Made by `python assets/make_real_gallery.py` from files that installed packages carry:

- `photos/`: the real-photo check set of `compression/data/real_photos.py`, shrunk to at most {PHOTO_SIDE} px,
  JPEG quality {JPEG_QUALITY}: scikit-image's data folder (NASA, SpaceX, Stefan van der Walt, Rachel Michetti,
  Lav Varshney, CC0Textures, Brooklyn Museum), matplotlib's `grace_hopper.jpg` and scikit-learn's
  `china.jpg` and `flower.jpg` (CC-BY 2.0: shrunk and re-encoded here, credited in the table).
- `clipart/`: drawings of the Open Clip Art Library's test split (Debian packages `openclipart-png` and
  `openclipart-svg`), public domain; shrunk to at most {DRAWING_SIDE} px and flattened on white.
- `captions.tsv`: the photos' captions were written for this project; the drawings' come from their SVG
  metadata (`compression/data/clipart_captions.py`).

| file | source; licence |
|---|---|
"""
    return head + "".join(f"| `{name}` | {credit} |\n" for name, _, credit in rows)


def write_real_gallery(out: Path, count: int = 40, clipart_root: Path = OPENCLIPART_ROOT) -> list[tuple[str, str]]:
    """Replace ``out`` with the gallery; returns its (relative path, caption) rows as in ``captions.tsv``."""
    if out.exists():
        shutil.rmtree(out)
    rows = write_photos(out) + write_drawings(out, count, clipart_root)
    (out / "captions.tsv").write_text("".join(f"{name}\t{caption}\n" for name, caption, _ in rows), encoding="utf-8")
    (out / "CREDITS.md").write_text(credits_markdown(rows), encoding="utf-8")
    return [(name, caption) for name, caption, _ in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=40, help="clip art drawings to write (default: 40)")
    p.add_argument("--out", type=Path, default=HERE / "real_gallery", help="output folder (replaced)")
    p.add_argument("--clipart-root", type=Path, default=OPENCLIPART_ROOT,
                   help=f"the Open Clip Art Library's folder, holding png/ and svg/ (default: {OPENCLIPART_ROOT})")
    args = p.parse_args(argv)
    rows = write_real_gallery(args.out, args.count, args.clipart_root)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"wrote {len(rows)} pictures, captions.tsv and CREDITS.md to {args.out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
