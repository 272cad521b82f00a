"""Fixtures for the engine's tests: a fast numpy-only fake encoder, image writers, a random student on disk."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.engine.decode import ImagePreprocess
from app.engine.runtimes.base import Encoders, l2_normalize
from app.engine.tokenizer import QueryTokenizer

FAKE_DIM = 16
FAKE_SIZE = 16


class FakeEncoders(Encoders):
    """Deterministic, numpy only: an image's embedding is a fixed projection of its 4x4 mean colours;
    a text's is a projection of its token ids. Counts calls so tests can tell what was encoded."""

    backend = "fake"

    def __init__(self, dim: int = FAKE_DIM, model_id: str = "fake-v1", image_batch_size: int = 8):
        rng = np.random.default_rng(0)
        self.embed_dim = dim
        self.model_id = model_id
        self.image_batch_size = image_batch_size
        self.preprocess = ImagePreprocess(FAKE_SIZE, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        self._w_img = rng.normal(size=(3 * 4 * 4, dim)).astype(np.float32)
        self._w_txt = rng.normal(size=(64, dim)).astype(np.float32)
        self.tokenizer = QueryTokenizer(self._tokenize, context_length=16)
        self.images_encoded = 0

    @staticmethod
    def _tokenize(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 16), dtype=np.int64)
        for i, t in enumerate(texts):
            ids = [62] + [1 + (b % 60) for b in t.lower().encode("utf-8")][:14] + [63]
            out[i, : len(ids)] = ids
        return out

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        b = pixels.shape[0]
        self.images_encoded += b
        pooled = pixels.reshape(b, 3, 4, FAKE_SIZE // 4, 4, FAKE_SIZE // 4).mean(axis=(3, 5)).reshape(b, -1)
        return l2_normalize(pooled @ self._w_img)

    def encode_tokens(self, tokens: np.ndarray) -> np.ndarray:
        hist = np.zeros((tokens.shape[0], 64), dtype=np.float32)
        for i, row in enumerate(tokens):
            np.add.at(hist[i], row[row > 0], 1.0)
        return l2_normalize(hist @ self._w_txt)


@pytest.fixture
def fake_encoders() -> FakeEncoders:
    return FakeEncoders()


@pytest.fixture
def fake_encoders_class() -> type[FakeEncoders]:
    return FakeEncoders


def write_image(path: Path, size=(24, 24), colour=(200, 30, 30), fmt: str | None = None, mode: str = "RGB",
                seed: int | None = None) -> Path:
    """A small image file; ``seed`` adds noise so that images differ."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    arr = np.empty((h, w, 3), dtype=np.uint8)
    arr[...] = colour
    if seed is not None:
        rng = np.random.default_rng(seed)
        arr = np.clip(arr.astype(int) + rng.integers(-60, 60, size=arr.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        im = im.convert(mode)
    im.save(path, format=fmt)
    return path


@pytest.fixture
def make_gallery(tmp_path):
    """make_gallery(n, name="gallery") -> folder of n distinct small JPEG/PNG photos."""

    def make(n: int, name: str = "gallery") -> Path:
        root = tmp_path / name
        for i in range(n):
            ext = ".png" if i % 3 == 0 else ".jpg"
            colour = ((37 * i) % 256, (91 * i) % 256, (53 * i + 100) % 256)
            write_image(root / f"album{i % 2}" / f"photo{i:04d}{ext}", (24 + i % 5, 20 + i % 7), colour, seed=i)
        return root

    return make


def tree_state(root: Path) -> dict[str, tuple[int, int, str]]:
    """path -> (size, mtime_ns, sha256) of every file under root (to prove the gallery is never written)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.is_symlink() and not p.exists():
                continue
            try:
                st = p.stat()
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError:
                continue
            out[str(p)] = (st.st_size, st.st_mtime_ns, digest)
    return out


@pytest.fixture(scope="session")
def random_student_dir(tmp_path_factory) -> Path:
    """A student checkpoint with random weights (synthclip-micro teacher, tiny ViT), written like
    compression.pipeline writes one: enough for the PyTorch runtime, CLI and crash tests, no training."""
    import torch

    from compression.checkpoint import save_student
    from compression.models.student import create_student
    from compression.models.teacher import create_teacher, teacher_preprocess

    torch.manual_seed(0)
    teacher = create_teacher("synthclip-micro", None)
    student = create_student(teacher, "vit_tiny_patch16_224", 2,
                             image_backbone_kwargs={"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1,
                                                    "num_heads": 2})
    run_dir = tmp_path_factory.mktemp("random-student")
    ctx = int(teacher.positional_embedding.shape[0])
    save_student(student.eval(), run_dir, {
        "preprocess": teacher_preprocess(teacher).to_dict(),
        "tokenizer": {"kind": "open_clip", "model": "synthclip-micro", "context_length": ctx},
        "teacher": "synthclip-micro",
    })
    return run_dir


@pytest.fixture
def image_writer():
    """The ``write_image(path, size, colour, fmt, mode, seed)`` helper."""
    return write_image


@pytest.fixture
def gallery_state():
    """The ``tree_state(root)`` helper: path -> (size, mtime_ns, sha256) of every file."""
    return tree_state


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels but holds almost no data (a decompression bomb)."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


@pytest.fixture
def png_bomb():
    """The ``png_header_only(width, height)`` helper."""
    return png_header_only


@pytest.fixture
def fake_bundle(tmp_path, random_student_dir):
    """A bundle as export.bundle writes one, with placeholder programs (enough for everything but running)."""
    from export.bundle import write_manifest, write_tokenizer_files

    meta = json.loads((random_student_dir / "student.json").read_text())
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "student_image_xnnpack_fp32.pte").write_bytes(b"not really a program")
    (root / "student_text_xnnpack_fp32.pte").write_bytes(b"not really a program either")
    tokenizer = write_tokenizer_files(meta["tokenizer"], root)
    write_manifest(root, {
        "backend": "executorch-xnnpack", "precision": "fp32", "embedding_dim": meta["spec"]["embed_dim"],
        "image": {"program": "student_image_xnnpack_fp32.pte", "input": {"name": "image", "shape": [1, 3, 32, 32]},
                  "output": {"name": "embedding"}, **meta["preprocess"]},
        "text": {"program": "student_text_xnnpack_fp32.pte", "input": {"name": "tokens", "shape": [1, "L"]},
                 "output": {"name": "embedding"}, "context_length": meta["tokenizer"]["context_length"],
                 "lengths": {"kind": "range", "min": 2, "max": meta["tokenizer"]["context_length"]}},
        "tokenizer": tokenizer,
        "source": {"weights_sha256": "ab" * 32},
    })
    return root
