"""Bounded fuzzing (hypothesis) of what reads untrusted bytes: photo decoding, query tokenizing, bundle manifests.

Each property: the code returns a well-formed answer or raises its one user-facing error, nothing
else, within a time bound. ``FUZZ_EXAMPLES`` scales the run (default: a few hundred per target, seconds).
"""
import io
import json
import os
import shutil
import time

import numpy as np
import pytest
from hostile_gallery import encoded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.engine.decode import DecodeLimits, ImagePreprocess, PhotoDecodeError, decode_rgb, preprocess_image
from app.engine.runtimes import ModelLoadError
from app.engine.runtimes.bundle import manifest_problems, read_bundle
from app.engine.tokenizer import QueryError

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
PRE = ImagePreprocess(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
LIMITS = DecodeLimits(max_pixels=4_000_000)  # small, so that fuzzed headers claiming more are refused fast
SEEDS = {name: encoded(fmt, size=(24, 17), seed=1) for name, fmt in
         [("a.png", "PNG"), ("a.jpg", "JPEG"), ("a.gif", "GIF"), ("a.webp", "WEBP")]}
SEEDS["b.png"] = encoded("PNG", size=(24, 17), mode="RGBA", seed=2)
SEEDS["c.jpg"] = encoded("JPEG", size=(40, 9), mode="CMYK", seed=3)
SLOWEST_ALLOWED_S = 10.0  # one decode of a fuzzed 24x17 photo; a hang never ends


@st.composite
def mutated_photo(draw):
    """A seed photo with byte flips, insertions, deletions and truncation; or plain random bytes."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    if draw(st.integers(0, 9)) == 0:
        return name, draw(st.binary(min_size=0, max_size=4096))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 12))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80]))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "cut":
            del data[pos:]
    return name, bytes(data)


@FUZZ
@given(mutated_photo())
def test_fuzz_decode(case):
    name, data = case
    start = time.monotonic()
    try:
        image = decode_rgb(data, name, LIMITS, target_size=32)
    except PhotoDecodeError:
        pass
    else:
        assert image.mode == "RGB" and image.size[0] * image.size[1] <= LIMITS.max_pixels
        pixels = preprocess_image(image, PRE)
        assert pixels.shape == (3, 32, 32) and np.isfinite(pixels).all()
    assert time.monotonic() - start < SLOWEST_ALLOWED_S


@pytest.fixture(scope="module")
def bundle_tokenizer(tmp_path_factory, random_student_dir):
    """The bundle reader's own BPE tokenizer (the one phones run), built from a written bundle."""
    from export.bundle import write_tokenizer_files

    meta = json.loads((random_student_dir / "student.json").read_text())
    root = tmp_path_factory.mktemp("tok")
    info = write_tokenizer_files(meta["tokenizer"], root)
    from app.engine.bpe import BpeTokenizer
    from app.engine.tokenizer import QueryTokenizer

    return QueryTokenizer(BpeTokenizer.from_bundle(root), info["context_length"], info)


@FUZZ
@given(st.one_of(st.text(max_size=300), st.text(alphabet=st.characters(codec="utf-8"), max_size=2000),
                 st.binary(max_size=300).map(lambda b: b.decode("utf-8", "surrogateescape"))))
def test_fuzz_tokenizer(bundle_tokenizer, text):
    try:
        ids = bundle_tokenizer.encode_query(text)
    except QueryError:
        return
    ctx = bundle_tokenizer.context_length
    assert ids.dtype == np.int64 and ids.shape[0] == 1 and 2 <= ids.shape[1] <= ctx
    assert ids.min() >= 0 and ids[0, -1] == ids.max()  # ends with <end_of_text>, the highest id


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def mutated_manifest(draw, base: dict):
    """The fake bundle's real manifest with keys replaced, removed or added by arbitrary JSON values."""
    m = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 5))):
        section = draw(st.sampled_from([None, "image", "text", "tokenizer", "files", "source"]))
        target = m if section is None or not isinstance(m.get(section), dict) else m[section]
        keys = sorted(target) + ["program", "embedding_dim", "context_length", "../../etc/passwd", "bpe_file"]
        key = draw(st.sampled_from(keys))
        if draw(st.booleans()) and key in target:
            del target[key]
        else:
            target[key] = draw(json_values)
    return m


def test_fuzz_manifest(fake_bundle, tmp_path):
    base = json.loads((fake_bundle / "manifest.json").read_text())
    outcomes = {"loaded": 0, "refused": 0}

    @settings(FUZZ, max_examples=max(1, EXAMPLES // 3))  # each example copies and verifies a bundle
    @given(mutated_manifest(base))
    def check(manifest):
        assert isinstance(manifest_problems(manifest), list)
        root = tmp_path / "b"
        if root.exists():
            shutil.rmtree(root)
        shutil.copytree(fake_bundle, root)
        (root / "manifest.json").write_text(json.dumps(manifest))
        try:
            info = read_bundle(root)
        except ModelLoadError as e:
            assert "\n" not in str(e)
            outcomes["refused"] += 1
        else:
            assert 1 <= info.embed_dim <= 65536 and info.image_program.resolve().is_relative_to(root.resolve())
            outcomes["loaded"] += 1

    check()
    assert outcomes["refused"] > 0


def test_seed_photos_decode():
    """The fuzzer's seeds are valid photos, so mutations start from deep inside each decoder."""
    for name, data in SEEDS.items():
        assert decode_rgb(data, name, LIMITS, 32).size == Image.open(io.BytesIO(data)).size
