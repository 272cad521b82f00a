"""Decoding hostile files: foreign formats in disguise never reach their decoder, output sizes are bounded."""
import io
import tracemalloc

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from app.engine import decode
from app.engine.decode import DecodeLimits, ImagePreprocess, PhotoDecodeError, load_photo

PRE = ImagePreprocess(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
EPS_LOOP = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\n"
EPS_WRITER = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n(out.txt) (w) file\n"


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("payload", [EPS_LOOP, EPS_WRITER], ids=["endless-loop", "file-writer"])
def test_postscript_named_jpg_never_reaches_ghostscript(tmp_path, monkeypatch, payload):
    """Pillow sniffs content: without ``formats=`` an EPS named .jpg went to Ghostscript (a hang, a
    write). Here Ghostscript is replaced by a recorder, so the test holds whether or not gs is installed."""
    calls = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append(a) or Image.new("RGB", (10, 10)))
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", lambda: True)
    path = tmp_path / "x.jpg"
    path.write_bytes(payload)
    with pytest.raises(PhotoDecodeError) as e:
        load_photo(path, PRE)
    assert e.value.reason == decode.NOT_AN_IMAGE
    assert calls == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jpg"]


@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "ICO", "PPM", "TGA", "PCX"])
def test_other_formats_disguised_as_jpg_are_not_decoded(tmp_path, fmt):
    path = tmp_path / "disguised.jpg"
    path.write_bytes(_encoded(fmt))
    with pytest.raises(PhotoDecodeError) as e:
        load_photo(path, PRE)
    assert e.value.reason == decode.NOT_AN_IMAGE


@pytest.mark.parametrize("name", ["photo.tif", "photo.eps", "photo", "photo.jpg.exe"])
def test_a_supported_image_under_a_foreign_name_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(_encoded("PNG"))
    with pytest.raises(PhotoDecodeError) as e:
        load_photo(path, PRE)
    assert e.value.reason == decode.UNSUPPORTED_FORMAT


@pytest.mark.parametrize("fmt, name", [("PNG", "a.png"), ("JPEG", "a.JPG"), ("WEBP", "a.webp"), ("GIF", "a.gif"),
                                       ("PNG", "png-named.jpg")])
def test_supported_formats_still_decode(tmp_path, fmt, name):
    path = tmp_path / name
    path.write_bytes(_encoded(fmt))
    assert load_photo(path, PRE).pixels.shape == (3, 32, 32)


@pytest.mark.parametrize("size", [(500_000, 1), (1, 500_000), (3_000_000, 2)])
def test_extreme_aspect_ratio_never_resizes_to_a_huge_intermediate(tmp_path, monkeypatch, png_bomb, size):
    """A 563-byte 500000x1 PNG used to be resized to 16,000,000x32 (2.8 GB at 224 px) before cropping."""
    path = tmp_path / "strip.png"
    Image.new("L", size, 120).save(path)
    assert path.stat().st_size < 20_000
    requested = []
    real_resize = Image.Image.resize

    def recording_resize(self, new_size, *a, **k):
        requested.append(new_size[0] * new_size[1])
        return real_resize(self, new_size, *a, **k)

    monkeypatch.setattr(Image.Image, "resize", recording_resize)
    pixels = load_photo(path, PRE).pixels
    assert pixels.shape == (3, 32, 32) and np.isfinite(pixels).all()
    assert max(requested) <= DecodeLimits().max_aspect * 32 * 32


def test_preprocess_of_a_long_image_equals_that_of_its_centre():
    """What is cut away by :func:`central_window` is what the centre crop would have dropped anyway."""
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, size=(20, 20 * 200, 3), dtype=np.uint8), "RGB")
    cut = decode.preprocess_image(im, PRE, max_aspect=64)
    full = decode.preprocess_image(im, PRE, max_aspect=10**9)
    assert np.abs(cut - full).max() < 1e-5


def test_16_bit_grey_is_converted_without_whole_image_float_copies(tmp_path):
    """A 124 KB 16-bit 7999x7999 PNG cost 1.6 GB in float64 copies; here: 2000x2000, measured."""
    arr = (np.arange(2000 * 2000, dtype=np.uint32) % 65536).astype(np.uint16).reshape(2000, 2000)
    image = Image.frombytes("I;16", (2000, 2000), arr.astype("<u2").tobytes())
    tracemalloc.start()
    try:
        rgb = decode.to_rgb(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * arr.size, f"peak {peak / arr.size:.1f} bytes per pixel"
    got = np.asarray(rgb)[..., 0]
    np.testing.assert_array_equal(got, np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8))
