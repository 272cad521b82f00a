"""Decoding and preprocessing: agreement with the training transform, every colour mode, EXIF, bad files."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from app.engine import decode
from app.engine.decode import DecodeLimits, ImagePreprocess, PhotoDecodeError, load_photo, preprocess_image
from compression.data.captioned import FileImages
from compression.data.transforms import image_transform
from compression.models.teacher import Preprocess

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def training_transform(size: int):
    return image_transform(Preprocess(size, OPENAI_MEAN, OPENAI_STD))


@pytest.mark.parametrize("image_size", [32, 224])
@pytest.mark.parametrize("wh", [(32, 32), (40, 31), (31, 77), (500, 333), (20, 20), (7, 300), (224, 224), (225, 224)])
def test_preprocess_equals_the_training_transform(image_size, wh):
    rng = np.random.default_rng(sum(wh) + image_size)
    im = Image.fromarray(rng.integers(0, 256, size=(wh[1], wh[0], 3), dtype=np.uint8), "RGB")
    ours = preprocess_image(im, ImagePreprocess(image_size, OPENAI_MEAN, OPENAI_STD))
    theirs = training_transform(image_size)(im)
    assert ours.shape == (3, image_size, image_size) and ours.dtype == np.float32
    torch.testing.assert_close(torch.from_numpy(ours), theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("fmt, ext", [("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp")])
def test_load_photo_equals_the_training_file_path(tmp_path, image_writer, fmt, ext):
    """A file read by the app and by compression's FileImages + image_transform gives the same tensor
    (draft decoding is off for this: the image is not larger than 4x the model size anyway)."""
    path = image_writer(tmp_path / f"p{ext}", size=(61, 45), seed=3, fmt=fmt)
    pre = ImagePreprocess(32, OPENAI_MEAN, OPENAI_STD)
    ours = load_photo(path, pre, DecodeLimits(jpeg_draft=False)).pixels
    theirs = training_transform(32)(FileImages([path]).load(0))
    torch.testing.assert_close(torch.from_numpy(ours), theirs, rtol=0, atol=1e-6)


def test_jpeg_draft_decoding_stays_close_to_full_decoding(tmp_path):
    """Big JPEGs are decoded at a reduced DCT scale (>= 4x the model size): a fast path whose
    result must stay close to full decoding + bicubic resize."""
    x = np.linspace(0, 1, 1600)
    arr = (np.stack(np.meshgrid(x, x[:1200]), -1).sum(-1, keepdims=True) * np.array([90, 60, 30])) % 255
    path = tmp_path / "big.jpg"
    Image.fromarray(arr.astype(np.uint8), "RGB").save(path, quality=90)
    pre = ImagePreprocess(32, OPENAI_MEAN, OPENAI_STD)
    fast = load_photo(path, pre).pixels
    full = load_photo(path, pre, DecodeLimits(jpeg_draft=False)).pixels
    assert np.abs(fast - full).mean() < 0.02 and np.abs(fast - full).max() < 0.2


def _decoded(path) -> Image.Image:
    return decode.decode_rgb(path.read_bytes(), path, DecodeLimits())


def test_every_mode_becomes_rgb(tmp_path):
    cases = {}
    base = Image.new("RGB", (8, 8), (10, 200, 30))
    base.convert("CMYK").save(tmp_path / "cmyk.jpg")
    cases["cmyk.jpg"] = (10, 200, 30)
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([255, 0, 0, 0, 0, 255])
    pal.info["transparency"] = 0  # index 0 transparent -> white
    pal.save(tmp_path / "palette.png", transparency=0)
    cases["palette.png"] = (255, 255, 255)
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    cases["clear.png"] = (255, 255, 255)
    Image.new("RGBA", (8, 8), (0, 0, 255, 255)).save(tmp_path / "opaque.webp", lossless=True)
    cases["opaque.webp"] = (0, 0, 255)
    Image.new("LA", (8, 8), (0, 255)).save(tmp_path / "la.png")
    cases["la.png"] = (0, 0, 0)
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(tmp_path / "grey16.png")
    cases["grey16.png"] = (255, 255, 255)
    Image.fromarray(np.full((8, 8), 32896, dtype=np.uint16)).save(tmp_path / "mid16.png")
    cases["mid16.png"] = (128, 128, 128)
    Image.new("L", (8, 8), 77).save(tmp_path / "grey.jpg", quality=100)
    cases["grey.jpg"] = (77, 77, 77)
    Image.new("1", (8, 8), 1).save(tmp_path / "bw.png")
    cases["bw.png"] = (255, 255, 255)
    for name, colour in cases.items():
        im = _decoded(tmp_path / name)
        assert im.mode == "RGB", name
        got = np.asarray(im)[4, 4].tolist()
        assert np.abs(np.array(got) - colour).max() <= 3, (name, got, colour)


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    im = _decoded(tmp_path / "anim.gif")
    assert im.mode == "RGB" and np.asarray(im)[0, 0].tolist() == [255, 0, 0]


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 10, 20))  # blue on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = _decoded(tmp_path / "rot.jpg")
    assert out.size == (20, 40)
    assert np.asarray(out)[2, 10, 2] > 200  # the blue stripe is now on top


def test_bad_files_raise_a_countable_reason(tmp_path, image_writer, png_bomb):
    pre = ImagePreprocess(16, OPENAI_MEAN, OPENAI_STD)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not a photo\n" * 10)
    good = image_writer(tmp_path / "good.jpg", size=(64, 64), seed=1).read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 2])
    goodpng = image_writer(tmp_path / "good.png", size=(64, 64), seed=1, fmt="PNG").read_bytes()
    (tmp_path / "truncated.png").write_bytes(goodpng[: len(goodpng) - 40])
    (tmp_path / "bomb.png").write_bytes(png_bomb(100_000, 100_000))  # Pillow's own bomb check
    (tmp_path / "big.png").write_bytes(png_bomb(9000, 9000))  # 81 MP declared: over our limit
    expected = {
        "empty.jpg": decode.EMPTY_FILE, "text.jpg": decode.NOT_AN_IMAGE, "truncated.jpg": decode.CORRUPT,
        "truncated.png": decode.CORRUPT, "bomb.png": decode.DECOMPRESSION_BOMB, "big.png": decode.DECOMPRESSION_BOMB,
        "missing.jpg": decode.MISSING,
    }
    for name, reason in expected.items():
        with pytest.raises(PhotoDecodeError) as info:
            load_photo(tmp_path / name, pre)
        assert info.value.reason == reason, (name, info.value)
        assert name in str(info.value)
    with pytest.raises(PhotoDecodeError, match="file too large"):
        load_photo(tmp_path / "good.png", pre, DecodeLimits(max_file_bytes=100))
    os.mkdir(tmp_path / "folder.jpg")
    with pytest.raises(PhotoDecodeError, match="not a regular file"):
        load_photo(tmp_path / "folder.jpg", pre)


def test_unreadable_permissions(tmp_path, image_writer, monkeypatch):
    path = image_writer(tmp_path / "secret.jpg")
    real_open = os.open

    def deny(p, *a, **k):  # chmod 000 does not stop root, so the refusal is simulated where it happens
        if str(p) == str(path):
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, *a, **k)

    monkeypatch.setattr(decode.os, "open", deny)
    with pytest.raises(PhotoDecodeError) as info:
        load_photo(path, ImagePreprocess(16, OPENAI_MEAN, OPENAI_STD))
    assert info.value.reason == decode.PERMISSION_DENIED


def test_file_replaced_while_reading_is_detected(tmp_path, image_writer, monkeypatch):
    path = image_writer(tmp_path / "p.jpg", seed=2)
    real_fstat = os.fstat
    calls = []

    def fstat(fd):
        st = real_fstat(fd)
        calls.append(1)
        if len(calls) == 2:  # the second look, after reading: pretend the file was modified meanwhile
            return os.stat_result((*st[:8], st.st_mtime + 5, st.st_ctime))
        return st

    monkeypatch.setattr(decode.os, "fstat", fstat)
    with pytest.raises(PhotoDecodeError, match="changed while reading"):
        load_photo(path, ImagePreprocess(16, OPENAI_MEAN, OPENAI_STD))


def test_fingerprint_of_bytes_equals_fingerprint_of_file(tmp_path):
    from app.engine.fingerprint import fingerprint_bytes, fingerprint_file

    for n in (0, 10, 65536, 65537, 200_000):
        data = os.urandom(n)
        (tmp_path / "f").write_bytes(data)
        assert fingerprint_bytes(data) == fingerprint_file(tmp_path / "f")


def test_preprocess_rejects_unknown_resize_policy():
    with pytest.raises(ValueError, match="unsupported resize policy"):
        ImagePreprocess.from_dict({"image_size": 32, "mean": [0, 0, 0], "std": [1, 1, 1], "resize": "stretch"})
    assert ImagePreprocess.from_dict(Preprocess(32, OPENAI_MEAN, OPENAI_STD).to_dict()).image_size == 32


def test_decode_never_writes(tmp_path, image_writer):
    path = image_writer(tmp_path / "p.jpg", seed=5)
    before = (path.stat().st_mtime_ns, path.read_bytes())
    load_photo(path, ImagePreprocess(16, OPENAI_MEAN, OPENAI_STD))
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


def test_decoding_and_thumbnails_work_with_the_phones_pillow(tmp_path, image_writer, monkeypatch):
    """python-for-android's Pillow recipe is 8.4.0 and kivy-ios's 8.2.0: no ``Image.Resampling`` (Pillow 9.1+).
    Without it here, a photo that needs resizing still decodes to the same pixels, and its thumbnail is made."""
    import app.thumbnails
    from app.thumbnails import ThumbnailCache

    class Pillow8Image:  # PIL.Image as the phones' Pillow has it: everything but Resampling
        def __getattr__(self, name):
            if name == "Resampling":
                raise AttributeError("module 'PIL.Image' has no attribute 'Resampling'")
            return getattr(Image, name)

    path = image_writer(tmp_path / "p.png", size=(61, 45), seed=5, fmt="PNG")
    pre = ImagePreprocess(32, OPENAI_MEAN, OPENAI_STD)
    expected = load_photo(path, pre, DecodeLimits()).pixels
    monkeypatch.setattr(decode, "Image", Pillow8Image())
    monkeypatch.setattr(app.thumbnails, "Image", Pillow8Image())
    np.testing.assert_array_equal(load_photo(path, pre, DecodeLimits()).pixels, expected)
    thumb = ThumbnailCache(tmp_path / "thumbs").get(path, max_side=16)
    assert thumb is not None and max(Image.open(thumb).size) == 16


@pytest.mark.parametrize("model_size, decoded", [(32, (224, 168)), (224, (448, 336)), (700, (1792, 1344))])
def test_jpeg_decodes_at_the_smallest_dct_scale_that_covers_the_model_input(tmp_path, model_size, decoded):
    """1792x1344: 1/8 is 224x168, 1/4 448x336, 1/2 896x672. The shorter side must stay >= the model's size,
    and no larger scale than that is decoded (a 224-px model used to get the full size)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 255, (1344, 1792, 3), dtype=np.uint8)).save(path, quality=90)
    assert decode.decode_rgb(path.read_bytes(), path, DecodeLimits(), model_size).size == decoded
    pre = ImagePreprocess(model_size, OPENAI_MEAN, OPENAI_STD)
    assert load_photo(path, pre).pixels.shape == (3, model_size, model_size)


def test_draft_decoding_for_a_224px_model_stays_close_to_full_decoding(tmp_path):
    x = np.linspace(0, 1, 2000)
    arr = (np.stack(np.meshgrid(x, x[:1500]), -1).sum(-1, keepdims=True) * np.array([90, 60, 30])) % 255
    path = tmp_path / "big.jpg"
    Image.fromarray(arr.astype(np.uint8), "RGB").save(path, quality=90)
    pre = ImagePreprocess(224, OPENAI_MEAN, OPENAI_STD)
    fast = load_photo(path, pre).pixels  # decoded at 1/4: 500x375
    full = load_photo(path, pre, DecodeLimits(jpeg_draft=False)).pixels
    assert np.abs(fast - full).mean() < 0.02 and np.abs(fast - full).max() < 0.5
